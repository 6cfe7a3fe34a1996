// protocol/utf8.cpp: strict UTF-8 (Unicode table 3-7) and its repair.
#include "protocol/utf8.h"

#include <gtest/gtest.h>

#include "protocol/viewer.h"

namespace rx::protocol {
namespace {

TEST(Utf8, SequenceLengths) {
  EXPECT_EQ(utf8_sequence("a"), 1u);
  EXPECT_EQ(utf8_sequence("\xc3\xa9"), 2u);
  EXPECT_EQ(utf8_sequence("\xe2\x82\xac"), 3u);
  EXPECT_EQ(utf8_sequence("\xf0\x9f\x98\x80"), 4u);
  EXPECT_EQ(utf8_sequence(""), 0u);
  for (std::string_view bad : {"\x80", "\xff", "\xc0\x80", "\xc1\xbf", "\xc3", "\xe0\x80\x80", "\xed\xa0\x80",
                               "\xf0\x80\x80\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xe2\x82"})
    EXPECT_EQ(utf8_sequence(bad), 0u) << testing::PrintToString(std::string(bad));
}

TEST(Utf8, CleanReplacesEveryBadByteAndKeepsTheRest) {
  EXPECT_EQ(clean_utf8("plain \xc3\xa9 \xf0\x9f\x98\x80"), "plain \xc3\xa9 \xf0\x9f\x98\x80");
  EXPECT_EQ(clean_utf8("a\xffz"), "a\xef\xbf\xbdz");
  EXPECT_EQ(clean_utf8("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(clean_utf8(std::string_view("\0x", 2)), std::string("\0x", 2));  // NUL is valid UTF-8
  // Whatever goes in, what comes out is valid (every byte value, every two-byte pair).
  std::string all;
  for (int a = 0; a < 256; ++a)
    for (int b = 0; b < 256; ++b) all += {char(a), char(b)};
  EXPECT_TRUE(viewer::valid_utf8(clean_utf8(all)));
}

}  // namespace
}  // namespace rx::protocol
