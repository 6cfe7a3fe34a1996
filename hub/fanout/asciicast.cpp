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

// `bytes` as a JSON string: what is not well-formed UTF-8 becomes U+FFFD, quotes, backslashes and
// control characters are escaped as JSON requires (\u001b for ESC, as json_text writes it), the
// rest is copied in runs. One pass: output lines are nearly all a recording writes, and building a
// json value per chunk for json_text cost the hub ten times the CPU of relaying the bytes.
void append_json_text(std::string& out, std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t run = 0;  // start of the bytes copied as they are
  for (size_t i = 0; i < bytes.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) continue;
    if (c >= 0x80) {
      size_t n = protocol::utf8_sequence(bytes.substr(i));
      if (n > 0) {
        i += n - 1;
        continue;
      }
    }
    out.append(bytes.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c >= 0x80) {
          out += "\xef\xbf\xbd";  // U+FFFD for a byte that starts no well-formed sequence
        } else {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        }
    }
  }
  out.append(bytes.data() + run, bytes.size() - run);
  out.push_back('"');
}

// Text events from raw bytes: the carry keeps a split character for the next call.
std::string text_event(Utf8Carry& carry, double t, std::string_view code, std::string_view bytes) {
  std::string whole = carry.take(bytes);
  if (whole.empty()) return "";
  std::string line;
  line.reserve(whole.size() + whole.size() / 8 + 32);
  line += "[" + asciicast_time(t) + ", \"" + std::string(code) + "\", ";
  append_json_text(line, whole);
  line += "]\n";
  return line;
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
