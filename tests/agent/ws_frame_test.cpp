// agent/ws_frame.cpp: the agent's own client frames must be exactly what RFC 6455 says a masked
// binary frame is, for every length encoding, and unmask back to the payload. (Every integration
// test also sends them to a real hub, whose lws parser is the other half of this check.)
#include "agent/ws_frame.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <vector>

namespace rx::agent {
namespace {

// Parses one client frame the way a server does; returns the unmasked payload.
std::vector<uint8_t> parse(std::span<const uint8_t> f, std::array<uint8_t, 4>* key_out = nullptr) {
  EXPECT_GE(f.size(), 6u);
  EXPECT_EQ(f[0], 0x82) << "FIN + binary opcode, no RSV bits";
  EXPECT_TRUE(f[1] & 0x80) << "a client frame must be masked";
  uint64_t len = f[1] & 0x7f;
  size_t at = 2;
  if (len == 126) {
    len = (uint64_t(f[2]) << 8) | f[3];
    EXPECT_GE(len, 126u) << "shortest length form";
    at = 4;
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | f[2 + size_t(i)];
    EXPECT_GT(len, 0xffffu) << "shortest length form";
    EXPECT_EQ(f[2] & 0x80, 0) << "most significant bit must be 0";
    at = 10;
  }
  std::array<uint8_t, 4> key{f[at], f[at + 1], f[at + 2], f[at + 3]};
  if (key_out) *key_out = key;
  at += 4;
  EXPECT_EQ(f.size(), at + len) << "frame is header + payload, nothing more";
  std::vector<uint8_t> out(f.begin() + long(at), f.end());
  for (size_t i = 0; i < out.size(); ++i) out[i] ^= key[i % 4];
  return out;
}

TEST(ClientFramer, EveryLengthEncodingRoundTrips) {
  std::mt19937 rng(7);
  ClientFramer framer;
  for (size_t len : {0u, 1u, 7u, 8u, 9u, 125u, 126u, 127u, 65535u, 65536u, 70001u}) {
    std::vector<uint8_t> payload(len);
    for (auto& b : payload) b = uint8_t(rng());
    std::vector<uint8_t> buf(16 + len);
    std::copy(payload.begin(), payload.end(), buf.begin() + 16);
    auto frame = framer.frame(std::span(buf).subspan(16), 16);
    ASSERT_FALSE(frame.empty()) << len;
    size_t header = len < 126 ? 6 : len <= 0xffff ? 8 : 14;
    EXPECT_EQ(frame.size(), header + len) << len;
    EXPECT_EQ(frame.data(), buf.data() + 16 - header) << "header sits right before the payload";
    EXPECT_EQ(parse(frame), payload) << len;
  }
}

TEST(ClientFramer, KeysDifferFromFrameToFrame) {
  // Masking keys must be unpredictable; at least they must not repeat or be zero every time.
  ClientFramer framer;
  std::set<std::array<uint8_t, 4>> keys;
  for (int i = 0; i < 200; ++i) {  // crosses several refills of the key batch
    std::vector<uint8_t> buf(16 + 4, 'x');
    std::array<uint8_t, 4> key;
    parse(framer.frame(std::span(buf).subspan(16), 16), &key);
    keys.insert(key);
  }
  EXPECT_GE(keys.size(), 195u);
}

TEST(ClientFramer, TooLittleHeadroomIsRefusedAndLeavesThePayload) {
  ClientFramer framer;
  std::vector<uint8_t> buf(4 + 200, 'a');
  EXPECT_TRUE(framer.frame(std::span(buf).subspan(4), 4).empty());
  EXPECT_EQ(std::count(buf.begin(), buf.end(), 'a'), long(buf.size())) << "nothing masked or written";
}

TEST(MaskPayload, MatchesByteWiseMaskingAtEveryLengthAndAlignment) {
  std::mt19937 rng(3);
  std::array<uint8_t, 4> key{0x12, 0x34, 0x56, 0x78};
  for (size_t offset = 0; offset < 8; ++offset) {
    for (size_t len = 0; len < 40; ++len) {
      std::vector<uint8_t> buf(offset + len);
      for (auto& b : buf) b = uint8_t(rng());
      auto expected = buf;
      for (size_t i = 0; i < len; ++i) expected[offset + i] ^= key[i % 4];
      mask_payload(std::span(buf).subspan(offset), key);
      EXPECT_EQ(buf, expected) << "offset " << offset << " len " << len;
    }
  }
}

}  // namespace
}  // namespace rx::agent
