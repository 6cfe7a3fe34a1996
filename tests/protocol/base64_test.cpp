// protocol/base64.cpp: RFC 4648 vectors, every byte value, random round trips, strict decoding.
#include "protocol/base64.h"

#include <gtest/gtest.h>

#include <random>

namespace rx::protocol {
namespace {

std::vector<uint8_t> b(std::string_view s) { return {s.begin(), s.end()}; }

TEST(Base64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> kVectors[] = {{"", ""},         {"f", "Zg=="},     {"fo", "Zm8="},
                                                          {"foo", "Zm9v"},  {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                                                          {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : kVectors) {
    EXPECT_EQ(base64_encode(b(plain)), encoded);
    auto d = base64_decode(encoded);
    ASSERT_TRUE(d.ok()) << encoded;
    EXPECT_EQ(*d, b(plain));
  }
}

TEST(Base64, EveryByteValueAndRandomDataRoundTrip) {
  std::vector<uint8_t> all(256);
  for (int i = 0; i < 256; ++i) all[size_t(i)] = uint8_t(i);
  EXPECT_EQ(*base64_decode(base64_encode(all)), all);
  std::mt19937_64 rng(99);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> data(rng() % 100);
    for (auto& x : data) x = uint8_t(rng());
    ASSERT_EQ(*base64_decode(base64_encode(data)), data);
  }
}

TEST(Base64, StrictDecoding) {
  for (const char* bad : {"Zg=", "Zm9", "Z===", "Zg==Zg==", "Zm9v!A==", "=Zm9", "Zh==", "Zm9=", "Zm=v", "Zm9v\n"}) {
    auto d = base64_decode(bad);
    EXPECT_FALSE(d.ok()) << bad;
    if (!d.ok()) {
      EXPECT_EQ(d.error().code, "bad_base64") << bad;
    }
  }
}

}  // namespace
}  // namespace rx::protocol
