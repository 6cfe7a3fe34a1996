// protocol/viewer.cpp: the 1-byte-opcode viewer protocol, byte layouts, every error, UTF-8.
#include "protocol/viewer.h"

#include <gtest/gtest.h>

#include "protocol/limits.h"

namespace rx::protocol::viewer {
namespace {

std::vector<uint8_t> v(std::initializer_list<int> b) {
  std::vector<uint8_t> out;
  for (int x : b) out.push_back(uint8_t(x));
  return out;
}

TEST(Viewer, ExactByteLayouts) {
  EXPECT_EQ(encode_resize(80, 24), v({0x02, 0x00, 0x50, 0x00, 0x18}));
  EXPECT_EQ(encode_input(v({'l', 's'})), v({0x01, 'l', 's'}));
  EXPECT_EQ(encode_output(0x0102030405060708ull, v({'h', 'i'})),
            v({0x81, 1, 2, 3, 4, 5, 6, 7, 8, 'h', 'i'}));
  EXPECT_EQ(encode_event(R"({"type":"exit"})")[0], 0x82);
}

TEST(Viewer, RoundTripsWithHeadroom) {
  auto in = encode_input(v({1, 2, 3}), 16);
  ASSERT_EQ(in.size(), 16u + 4u);
  auto m = decode_client(std::span(in).subspan(16));
  ASSERT_TRUE(m.ok());
  auto* i = std::get_if<Input>(&*m);
  ASSERT_TRUE(i);
  EXPECT_EQ(std::vector<uint8_t>(i->bytes.begin(), i->bytes.end()), v({1, 2, 3}));

  auto rs = encode_resize(65535, 1, 8);
  auto r = decode_client(std::span(rs).subspan(8));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::get<Resize>(*r).cols, 65535);
  EXPECT_EQ(std::get<Resize>(*r).rows, 1);

  auto out = encode_output(UINT64_MAX - 5, v({9}), 4);
  auto o = decode_server(std::span(out).subspan(4));
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(std::get<Output>(*o).offset, UINT64_MAX - 5);
  EXPECT_EQ(std::get<Output>(*o).bytes.size(), 1u);

  auto ev = encode_event(R"({"type":"status","status":"running"})");
  auto e = decode_server(ev);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(std::get<Event>(*e).json, R"({"type":"status","status":"running"})");
}

TEST(Viewer, EmptyInputIsValid) {
  auto m = decode_client(v({0x01}));
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(std::get<Input>(*m).bytes.empty());
}

TEST(Viewer, Errors) {
  EXPECT_EQ(decode_client({}).error().code, "empty_message");
  EXPECT_EQ(decode_server({}).error().code, "empty_message");
  auto e = decode_client(v({0x02, 0, 80, 0}));
  EXPECT_EQ(e.error().code, "bad_length");
  EXPECT_EQ(e.error().message, "resize payload must be 4 bytes, got 3");
  EXPECT_EQ(decode_client(v({0x02, 0, 80, 0, 24, 0})).error().code, "bad_length");
  EXPECT_EQ(decode_client(v({0x02, 0, 0, 0, 24})).error().code, "bad_value");
  EXPECT_EQ(decode_client(v({0x02, 0, 80, 0, 0})).error().code, "bad_value");
  EXPECT_EQ(decode_server(v({0x81, 1, 2, 3})).error().code, "bad_length");
  EXPECT_EQ(decode_server(v({0x82})).error().code, "bad_length");
  EXPECT_EQ(decode_server(v({0x82, 0xed, 0xa0, 0x80})).error().code, "bad_utf8");
  EXPECT_EQ(decode_client(v({0x81, 0, 0, 0, 0, 0, 0, 0, 0})).error().code, "wrong_direction");
  EXPECT_EQ(decode_client(v({0x82, '{', '}'})).error().code, "wrong_direction");
  EXPECT_EQ(decode_server(v({0x01, 'x'})).error().code, "wrong_direction");
  EXPECT_EQ(decode_server(v({0x02, 0, 1, 0, 1})).error().code, "wrong_direction");
}

TEST(Viewer, UnknownOpcodesAreIgnorable) {
  auto c = decode_client(v({0x7f, 1, 2}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(std::get<UnknownOp>(*c).opcode, 0x7f);
  auto s = decode_server(v({0x90}));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(std::get<UnknownOp>(*s).opcode, 0x90);
}

TEST(Viewer, SizeCapIsCheckedFirst) {
  std::vector<uint8_t> at_cap(kMaxViewerMessage, 'a');
  at_cap[0] = kInput;
  EXPECT_TRUE(decode_client(at_cap).ok());
  at_cap.push_back('a');
  EXPECT_EQ(decode_client(at_cap).error().code, "message_too_large");
  // The hub's output of a full chunk (opcode + offset + 64 KiB) is within the server cap.
  auto full = encode_output(0, std::vector<uint8_t>(kMaxChunk, 'x'));
  EXPECT_TRUE(decode_server(full).ok());
  full.resize(kMaxViewerMessage + 17, 'x');
  EXPECT_EQ(decode_server(full).error().code, "message_too_large");
}

TEST(Viewer, Utf8Validator) {
  struct Case {
    std::string text;
    bool valid;
  };
  for (const auto& c : std::vector<Case>{
           {"", true}, {"plain ascii", true}, {"\xe2\x82\xac", true} /* € */, {"\xf0\x9d\x84\x9e", true} /* 𝄞 */,
           {"\xc3\xa9t\xc3\xa9", true}, {"\xef\xbf\xbf", true}, {"\xf4\x8f\xbf\xbf", true} /* U+10FFFF */,
           {"\xc0\xaf", false} /* overlong '/' */, {"\xe0\x80\xaf", false} /* overlong */,
           {"\xed\xa0\x80", false} /* surrogate */, {"\xf4\x90\x80\x80", false} /* > U+10FFFF */,
           {"\xe2\x82", false} /* truncated */, {"\x80", false} /* stray continuation */,
           {"a\xffz", false}, {"\xf8\x88\x80\x80\x80", false}}) {
    EXPECT_EQ(valid_utf8(c.text), c.valid) << "case: " << testing::PrintToString(c.text);
  }
}

}  // namespace
}  // namespace rx::protocol::viewer
