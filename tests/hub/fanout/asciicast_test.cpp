// AsciicastEncoder: every line is one JSON document in the shape asciicast v2 readers expect; a
// character split across chunks comes out whole, bytes that are not UTF-8 come out as U+FFFD,
// and terminal control sequences are kept.
#include "hub/fanout/asciicast.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hub/base/json_text.h"
#include "protocol/utf8.h"

namespace rx::hub {
namespace {

constexpr std::string_view kReplacement = "\xef\xbf\xbd";

// The line, which must be one JSON document ending in exactly one '\n'.
nlohmann::json parse_line(const std::string& line) {
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n') << line;
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line: " << line;
  return nlohmann::json::parse(line);  // throws (fails the test) when it is not JSON
}

// The event [t, code, data] of a line, checked for its shape.
struct Event {
  double t;
  std::string code;
  std::string data;
};
Event parse_event(const std::string& line) {
  auto j = parse_line(line);
  EXPECT_TRUE(j.is_array() && j.size() == 3) << line;
  EXPECT_TRUE(j[0].is_number()) << line;
  EXPECT_TRUE(j[1].is_string() && j[2].is_string()) << line;
  return {j[0].get<double>(), j[1].get<std::string>(), j[2].get<std::string>()};
}

TEST(Asciicast, HeaderFields) {
  AsciicastHeader h;
  h.width = 132;
  h.height = 43;
  h.timestamp = 1700000000;
  h.title = "build \"box\"";
  std::string line = AsciicastEncoder::header(h);
  auto j = parse_line(line);
  EXPECT_EQ(j, nlohmann::json::parse(R"({"version":2,"width":132,"height":43,"timestamp":1700000000,
                                         "title":"build \"box\"","env":{"TERM":"xterm-256color"}})"));
  // Readers sniff the first key: the version comes first.
  EXPECT_EQ(line.rfind("{\"version\":2,", 0), 0u) << line;
  EXPECT_FALSE(j["env"].contains("SHELL"));
}

TEST(Asciicast, HeaderDefaultsAndBadTitle) {
  AsciicastHeader h;
  h.title = "caf\xe9";  // Latin-1, not UTF-8
  h.term = "screen";
  auto j = parse_line(AsciicastEncoder::header(h));
  EXPECT_EQ(j["width"], 80);
  EXPECT_EQ(j["height"], 24);
  EXPECT_EQ(j["timestamp"], 0);
  EXPECT_EQ(j["title"], "caf" + std::string(kReplacement));
  EXPECT_EQ(j["env"]["TERM"], "screen");
}

TEST(Asciicast, OutputEvent) {
  AsciicastEncoder e;
  std::string line = e.output(1.5, "hello\r\n");
  EXPECT_EQ(line, "[1.500000, \"o\", \"hello\\r\\n\"]\n");
  auto ev = parse_event(line);
  EXPECT_DOUBLE_EQ(ev.t, 1.5);
  EXPECT_EQ(ev.code, "o");
  EXPECT_EQ(ev.data, "hello\r\n");
  EXPECT_EQ(e.output(2, ""), "");
  EXPECT_EQ(e.output_rest(3), "");
}

TEST(Asciicast, ControlCharactersAndColoursAreKept) {
  AsciicastEncoder e;
  std::string bytes = "\x1b[31mred\x1b[0m\a\b\t\x01\x7f";
  std::string line = e.output(0.25, bytes);
  EXPECT_NE(line.find("\\u001b[31mred\\u001b[0m"), std::string::npos) << line;
  EXPECT_EQ(line.find('\x1b'), std::string::npos) << "ESC is escaped, not raw: " << line;
  EXPECT_EQ(parse_event(line).data, bytes);
}

// Each character split at every point, over two and three calls: only the call that completes it
// writes a line, and that line holds the character whole.
TEST(Asciicast, SplitCharactersComeOutWhole) {
  for (std::string ch : {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"}) {
    for (size_t cut = 1; cut < ch.size(); ++cut) {
      SCOPED_TRACE(testing::Message() << "char of " << ch.size() << " bytes cut at " << cut);
      AsciicastEncoder e;
      std::string first = e.output(1, "a" + ch.substr(0, cut));
      EXPECT_EQ(parse_event(first).data, "a");
      std::string second = e.output(2, ch.substr(cut) + "b");
      auto ev = parse_event(second);
      EXPECT_EQ(ev.data, ch + "b");
      EXPECT_DOUBLE_EQ(ev.t, 2);
      EXPECT_EQ(second.find(kReplacement), std::string::npos);
      EXPECT_EQ(e.output_rest(3), "");
    }
  }
  // Three calls, nothing but the character's bytes: the first two write nothing.
  AsciicastEncoder e;
  std::string smile = "\xf0\x9f\x98\x80";
  EXPECT_EQ(e.output(1, smile.substr(0, 1)), "");
  EXPECT_EQ(e.output(2, smile.substr(1, 2)), "");
  auto ev = parse_event(e.output(3, smile.substr(3)));
  EXPECT_EQ(ev.data, smile);
  EXPECT_DOUBLE_EQ(ev.t, 3);
}

TEST(Asciicast, InputHasItsOwnCarry) {
  AsciicastEncoder e;
  std::string euro = "\xe2\x82\xac";
  EXPECT_EQ(e.output(1, euro.substr(0, 2)), "");
  auto in = parse_event(e.input(1.1, "x" + euro.substr(0, 1)));
  EXPECT_EQ(in.code, "i");
  EXPECT_EQ(in.data, "x");
  EXPECT_EQ(parse_event(e.output(1.2, euro.substr(2))).data, euro);
  EXPECT_EQ(parse_event(e.input(1.3, euro.substr(1))).data, euro);
}

TEST(Asciicast, InvalidBytesBecomeReplacement) {
  struct Case {
    std::string bytes;
    const char* what;
  };
  for (const auto& c : std::vector<Case>{{"a\xff" "b", "FF"},
                                         {"a\xc0\x80" "b", "overlong C0 80"},
                                         {"a\xed\xa0\x80" "b", "surrogate ED A0 80"},
                                         {"a\x80" "b", "lone continuation"},
                                         {"a\xf4\x90\x80\x80" "b", "above U+10FFFF"}}) {
    SCOPED_TRACE(c.what);
    AsciicastEncoder e;
    std::string line = e.output(1, c.bytes);
    auto data = parse_event(line).data;
    ASSERT_GE(data.size(), 2u);
    EXPECT_EQ(data.front(), 'a');
    EXPECT_EQ(data.back(), 'b');
    std::string middle = data.substr(1, data.size() - 2);
    ASSERT_FALSE(middle.empty());
    for (size_t i = 0; i < middle.size(); i += kReplacement.size())
      EXPECT_EQ(middle.substr(i, kReplacement.size()), kReplacement) << line;
    EXPECT_EQ(e.output_rest(2), "");
  }
  // A surrogate's start at the end of a call is not held (it can never complete): it is written now.
  AsciicastEncoder e;
  auto data = parse_event(e.output(1, "a\xed\xa0")).data;
  EXPECT_EQ(data.substr(0, 1), "a");
  EXPECT_NE(data.find(kReplacement), std::string::npos);
  EXPECT_EQ(e.output_rest(2), "");
}

TEST(Asciicast, RestOfTheCarryAtTheEnd) {
  AsciicastEncoder e;
  EXPECT_EQ(parse_event(e.output(1, "ok\xe2\x82")).data, "ok");
  auto ev = parse_event(e.output_rest(4.5));
  EXPECT_EQ(ev.code, "o");
  EXPECT_DOUBLE_EQ(ev.t, 4.5);
  ASSERT_FALSE(ev.data.empty());
  for (size_t i = 0; i < ev.data.size(); i += kReplacement.size())
    EXPECT_EQ(ev.data.substr(i, kReplacement.size()), kReplacement);
  EXPECT_EQ(e.output_rest(5), "") << "the carry is empty after its rest";
}

TEST(Asciicast, Times) {
  EXPECT_EQ(asciicast_time(1.5), "1.500000");
  EXPECT_EQ(asciicast_time(0.000001), "0.000001");
  EXPECT_EQ(asciicast_time(0.000123), "0.000123");
  EXPECT_EQ(asciicast_time(0), "0.000000");
  EXPECT_EQ(asciicast_time(1e-9), "0.000000");
  EXPECT_EQ(asciicast_time(86400.25), "86400.250000");
  EXPECT_EQ(asciicast_time(1e7), "10000000.000000");
  std::string huge = asciicast_time(1e22);
  EXPECT_EQ(huge, "10000000000000000000000.000000");
  EXPECT_EQ(asciicast_time(1e300).find_first_of("eE+"), std::string::npos);
  EXPECT_EQ(asciicast_time(-1), "0.000000");
  EXPECT_EQ(asciicast_time(std::numeric_limits<double>::quiet_NaN()), "0.000000");
  EXPECT_EQ(asciicast_time(std::numeric_limits<double>::infinity()), "0.000000");
  // An event's time is the same text, and parses back.
  std::string line = AsciicastEncoder::resize(123456.000001, 1, 1);
  EXPECT_EQ(line.rfind("[123456.000001, ", 0), 0u) << line;
  EXPECT_NEAR(parse_event(line).t, 123456.000001, 1e-9);
}

TEST(Asciicast, ResizeMarkerExit) {
  EXPECT_EQ(AsciicastEncoder::resize(2, 120, 40), "[2.000000, \"r\", \"120x40\"]\n");
  auto r = parse_event(AsciicastEncoder::resize(2, 120, 40));
  EXPECT_EQ(r.code, "r");
  EXPECT_EQ(r.data, "120x40");

  auto m = parse_event(AsciicastEncoder::marker(3, "gap: 4096 bytes \"lost\"\n"));
  EXPECT_EQ(m.code, "m");
  EXPECT_EQ(m.data, "gap: 4096 bytes \"lost\"\n");
  EXPECT_EQ(parse_event(AsciicastEncoder::marker(3, "bad \xff")).data, "bad " + std::string(kReplacement));

  EXPECT_EQ(AsciicastEncoder::exit(9.75, 7), "[9.750000, \"x\", \"7\"]\n");
  auto x = parse_event(AsciicastEncoder::exit(9.75, 7));
  EXPECT_EQ(x.code, "x");
  EXPECT_EQ(x.data, "7");
  EXPECT_EQ(parse_event(AsciicastEncoder::exit(1, -1)).data, "-1");
}

TEST(Asciicast, AnyBytesGiveTheTextAndTheExactLineJsonTextWould) {
  // The line's text is written by hand (fast); it must be what json_text writes for the cleaned
  // bytes, byte for byte, whatever the bytes: random ones, weighted to the awkward values.
  std::mt19937 rng(7);
  const unsigned char awkward[] = {0x00, 0x1b, '\n', '\r', '\t', '"', '\\', 0x7f, 0x80, 0xbf, 0xc0, 0xc3, 0xa9,
                                   0xe2, 0x82, 0xac, 0xed, 0xa0, 0xf0, 0x9f, 0x98, 0xf4, 0x90, 0xff, 'a'};
  for (int round = 0; round < 3000; ++round) {
    std::string bytes(rng() % 40, '\0');
    for (auto& b : bytes) b = char(rng() % 3 ? awkward[rng() % sizeof awkward] : rng() % 256);
    AsciicastEncoder e;
    std::string line = e.output(1.0, bytes);
    line += e.output_rest(1.0);  // after output(): it holds what output() carried
    std::string expected;
    std::string cleaned = protocol::clean_utf8(bytes);
    if (!cleaned.empty()) expected = "[1.000000, \"o\", " + json_text(cleaned) + "]\n";
    // The carry may split the text into two lines at the end; compare what they decode to.
    std::string text;
    std::istringstream in(line);
    for (std::string l; std::getline(in, l);) {
      auto j = nlohmann::json::parse(l, nullptr, false);
      ASSERT_FALSE(j.is_discarded()) << l;
      text += j[2].get<std::string>();
    }
    EXPECT_EQ(text, cleaned) << "round " << round;
    if (line.find('\n') == line.size() - 1 && !line.empty()) {
      EXPECT_EQ(line, expected) << "round " << round;  // one line: the very bytes json_text writes
    }
  }
}

}  // namespace
}  // namespace rx::hub
