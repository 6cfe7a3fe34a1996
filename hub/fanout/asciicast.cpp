#include "hub/fanout/asciicast.h"

#include <charconv>
#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "hub/base/json_text.h"
#include "protocol/utf8.h"

namespace rx::hub {
namespace {

// One event line. The time is written by hand: json_text would write 1.5, not 1.500000.
std::string event(double t, std::string_view code, std::string_view data) {
  return "[" + asciicast_time(t) + ", " + json_text(std::string(code)) + ", " + json_text(std::string(data)) + "]\n";
}

// Text events from raw bytes: the carry keeps a split character for the next call, clean_utf8
// turns what can never be UTF-8 into U+FFFD (json_text would too, but the line must not depend
// on it).
std::string text_event(Utf8Carry& carry, double t, std::string_view code, std::string_view bytes) {
  std::string whole = carry.take(bytes);
  if (whole.empty()) return "";
  return event(t, code, protocol::clean_utf8(whole));
}

}  // namespace

std::string asciicast_time(double t) {
  if (!std::isfinite(t) || t < 0) t = 0;
  // The largest double is 309 digits before the point; fixed notation never overflows this.
  char buf[400];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, t, std::chars_format::fixed, 6);
  if (ec != std::errc()) return "0.000000";
  return std::string(buf, end);
}

std::string AsciicastEncoder::header(const AsciicastHeader& h) {
  // Written field by field so the keys keep the order of the spec's examples (nlohmann's object
  // sorts them); every string still goes through json_text.
  return "{\"version\":2,\"width\":" + std::to_string(h.width) + ",\"height\":" + std::to_string(h.height) +
         ",\"timestamp\":" + std::to_string(h.timestamp) + ",\"title\":" + json_text(h.title) +
         ",\"env\":{\"TERM\":" + json_text(h.term) + "}}\n";
}

std::string AsciicastEncoder::output(double t, std::string_view bytes) {
  return text_event(output_carry_, t, "o", bytes);
}

std::string AsciicastEncoder::input(double t, std::string_view bytes) {
  return text_event(input_carry_, t, "i", bytes);
}

std::string AsciicastEncoder::resize(double t, int cols, int rows) {
  return event(t, "r", std::to_string(cols) + "x" + std::to_string(rows));
}

std::string AsciicastEncoder::marker(double t, std::string_view label) {
  return event(t, "m", protocol::clean_utf8(label));
}

std::string AsciicastEncoder::exit(double t, int code) { return event(t, "x", std::to_string(code)); }

std::string AsciicastEncoder::output_rest(double t) {
  std::string rest = output_carry_.rest();
  if (rest.empty()) return "";
  return event(t, "o", protocol::clean_utf8(rest));
}

}  // namespace rx::hub
