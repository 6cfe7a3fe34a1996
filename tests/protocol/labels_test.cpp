#include "protocol/labels.h"

#include <gtest/gtest.h>

namespace rx::protocol {
namespace {

TEST(Labels, ParsesKeyEqualsValue) {
  auto l = parse_label("team/ml=gpu=yes");
  ASSERT_TRUE(l.ok()) << l.error().message;
  EXPECT_EQ(l->first, "team/ml");
  EXPECT_EQ(l->second, "gpu=yes");  // only the first = splits
  auto empty = parse_label("spare=");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->second, "");
}

TEST(Labels, RefusesBadOnesWithTheReason) {
  EXPECT_NE(parse_label("novalue").error().message.find("expected key=value"), std::string::npos);
  EXPECT_EQ(parse_label("=v").error().code, "bad_labels");
  EXPECT_EQ(parse_label("-k=v").error().code, "bad_labels");
  EXPECT_EQ(parse_label("k y=v").error().code, "bad_labels");
  EXPECT_EQ(parse_label(std::string(kMaxLabelKey + 1, 'k') + "=v").error().code, "bad_labels");
  EXPECT_TRUE(parse_label(std::string(kMaxLabelKey, 'k') + "=v").ok());
  EXPECT_EQ(parse_label("k=" + std::string(kMaxLabelValue + 1, 'v')).error().code, "bad_labels");
  EXPECT_TRUE(parse_label("k=" + std::string(kMaxLabelValue, 'v')).ok());
  EXPECT_NE(parse_label("k=\xff\xfe").error().message.find("not UTF-8"), std::string::npos);
  EXPECT_NE(parse_label("k=a\nb").error().message.find("control character"), std::string::npos);
  EXPECT_TRUE(parse_label("k=grüße").ok());
}

TEST(Labels, CountIsBounded) {
  Labels many;
  for (size_t i = 0; i < kMaxLabels; ++i) many["k" + std::to_string(i)] = "v";
  EXPECT_EQ(check_labels(many), std::nullopt);
  many["one-more"] = "v";
  auto e = check_labels(many);
  ASSERT_TRUE(e.has_value());
  EXPECT_NE(e->message.find("over the limit of 32"), std::string::npos) << e->message;
}

TEST(Labels, ABadKeyFromAPeerIsShownCleaned) {
  auto e = check_labels({{"\xff\x01", "v"}});
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message.find('\xff'), std::string::npos);
}

}  // namespace
}  // namespace rx::protocol
