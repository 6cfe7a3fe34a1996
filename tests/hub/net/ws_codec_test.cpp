// hub/net/ws_codec.cpp: the server side of RFC 6455 framing.
#include "hub/net/ws_codec.h"

#include <gtest/gtest.h>

#include <cstring>

namespace rx::hub {
namespace {

// A client frame, masked as a client must.
std::vector<uint8_t> client_frame(uint8_t opcode, std::string_view payload, bool fin = true, bool mask = true,
                                  uint8_t rsv = 0) {
  std::vector<uint8_t> f;
  f.push_back(uint8_t((fin ? 0x80 : 0) | rsv | opcode));
  size_t n = payload.size();
  uint8_t m = mask ? 0x80 : 0;
  if (n < 126) {
    f.push_back(uint8_t(m | n));
  } else if (n <= 0xffff) {
    f.push_back(uint8_t(m | 126));
    f.push_back(uint8_t(n >> 8));
    f.push_back(uint8_t(n));
  } else {
    f.push_back(uint8_t(m | 127));
    for (int i = 7; i >= 0; --i) f.push_back(uint8_t(uint64_t(n) >> (8 * i)));
  }
  const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
  if (mask) f.insert(f.end(), key, key + 4);
  for (size_t i = 0; i < n; ++i) f.push_back(uint8_t(payload[i]) ^ (mask ? key[i & 3] : 0));
  return f;
}

struct Recorder : WsReader::Handler {
  std::vector<std::pair<std::string, bool>> messages;
  std::vector<std::string> pings;
  std::optional<WsClose> close;
  bool on_message(std::span<const uint8_t> m, bool binary) override {
    messages.emplace_back(std::string(m.begin(), m.end()), binary);
    return true;
  }
  void on_ping(std::span<const uint8_t> p) override { pings.emplace_back(p.begin(), p.end()); }
  void on_close(const WsClose& c) override { close = c; }
};

std::optional<WsClose> feed(WsReader& r, Recorder& rec, std::vector<uint8_t> bytes, size_t step = 0) {
  if (step == 0) step = bytes.size();
  for (size_t pos = 0; pos < bytes.size(); pos += step) {
    size_t n = std::min(step, bytes.size() - pos);
    if (auto e = r.feed(bytes.data() + pos, n, rec)) return e;
  }
  return std::nullopt;
}

std::vector<uint8_t> cat(std::initializer_list<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST(WsCodec, MessagesInAnySplitAndFragmentsJoined) {
  std::string big(70000, 'x');
  auto stream = cat({client_frame(ws::kBinary, "one"), client_frame(ws::kText, "t\xc3\xa9", true),
                     client_frame(ws::kBinary, "frag", false), client_frame(ws::kPing, "p"),
                     client_frame(ws::kContinuation, "ment", true), client_frame(ws::kBinary, big),
                     client_frame(ws::kClose, std::string("\x03\xe8" "bye", 5))});
  for (size_t step : {size_t(1), size_t(5), size_t(1000), stream.size()}) {
    WsReader r(100000);
    Recorder rec;
    EXPECT_FALSE(feed(r, rec, stream, step)) << step;
    ASSERT_EQ(rec.messages.size(), 4u) << step;
    EXPECT_EQ(rec.messages[0], std::make_pair(std::string("one"), true));
    EXPECT_EQ(rec.messages[1], std::make_pair(std::string("t\xc3\xa9"), false));
    EXPECT_EQ(rec.messages[2], std::make_pair(std::string("fragment"), true));
    EXPECT_EQ(rec.messages[3].first.size(), big.size());
    EXPECT_EQ(rec.pings, std::vector<std::string>{"p"});
    ASSERT_TRUE(rec.close);
    EXPECT_EQ(rec.close->code, 1000);
    EXPECT_EQ(rec.close->reason, "bye");
    EXPECT_EQ(r.buffered(), 0u);
  }
}

TEST(WsCodec, ViolationsGetTheRfcsCloseCodes) {
  struct Case {
    std::vector<uint8_t> bytes;
    uint16_t code;
  };
  std::vector<Case> cases = {
      {client_frame(ws::kBinary, "x", true, false), 1002},                      // unmasked
      {client_frame(ws::kBinary, "x", true, true, 0x40), 1002},                 // RSV1
      {client_frame(0x3, "x"), 1002},                                           // reserved opcode
      {client_frame(0xB, "x"), 1002},                                           // reserved control opcode
      {client_frame(ws::kPing, "x", false), 1002},                              // fragmented control
      {client_frame(ws::kPing, std::string(126, 'p')), 1002},                   // long control
      {client_frame(ws::kContinuation, "x"), 1002},                             // nothing to continue
      {cat({client_frame(ws::kBinary, "a", false), client_frame(ws::kBinary, "b")}), 1002},
      {client_frame(ws::kText, "\xff"), 1007},                                  // not UTF-8
      {client_frame(ws::kClose, "\x03"), 1002},                                 // one-byte close
      {client_frame(ws::kClose, std::string("\x03\xed", 2)), 1002},             // 1005 may not be sent
      {client_frame(ws::kBinary, std::string(1001, 'x')), 1009},                // over the limit
      {cat({client_frame(ws::kBinary, std::string(600, 'x'), false), client_frame(ws::kContinuation, std::string(600, 'x'))}), 1009},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    WsReader r(1000);
    Recorder rec;
    auto e = feed(r, rec, cases[i].bytes);
    ASSERT_TRUE(e) << "case " << i;
    EXPECT_EQ(e->code, cases[i].code) << "case " << i << ": " << e->reason;
    EXPECT_TRUE(rec.messages.empty()) << "case " << i;
  }
}

TEST(WsCodec, AnOversizedFrameIsRefusedFromItsHeader) {
  // Only the header of a 1 GB frame arrives: refused at once, nothing buffered.
  std::vector<uint8_t> header = {0x82, 0xff, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4};
  WsReader r(64 * 1024);
  Recorder rec;
  auto e = r.feed(header.data(), header.size(), rec);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, 1009);
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(WsCodec, HeaderWriterAndHandshakeKey) {
  uint8_t h[ws::kMaxHeader];
  EXPECT_EQ(ws_frame_header(h, ws::kBinary, 125), 2u);
  EXPECT_EQ(h[0], 0x82);
  EXPECT_EQ(h[1], 125);
  EXPECT_EQ(ws_frame_header(h, ws::kText, 126), 4u);
  EXPECT_EQ(h[1], 126);
  EXPECT_EQ((h[2] << 8) | h[3], 126);
  EXPECT_EQ(ws_frame_header(h, ws::kBinary, 70000), 10u);
  EXPECT_EQ(h[1], 127);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n = (n << 8) | h[2 + i];
  EXPECT_EQ(n, 70000u);
  // RFC 6455 1.3's example.
  EXPECT_EQ(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_TRUE(ws_valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_FALSE(ws_valid_key("dGhl"));
  EXPECT_FALSE(ws_valid_key("not base64 at all!!!!!=="));
}

}  // namespace
}  // namespace rx::hub
