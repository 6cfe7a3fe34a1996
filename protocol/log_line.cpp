#include "protocol/log_line.h"

namespace rx {
namespace {

void append_value(std::string& out, std::string_view v) {
  bool plain = !v.empty();
  for (unsigned char c : v)
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) plain = false;
  if (plain) {
    out += v;
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (unsigned char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < ' ' || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += char(c);  // UTF-8 passes through
    }
  }
  out += '"';
}

}  // namespace

std::string format_log_line(std::string_view level, std::string_view event, std::initializer_list<LogField> fields) {
  std::string out = "level=";
  out += level;
  out += " event=";
  append_value(out, event);
  for (const auto& [k, v] : fields) {
    out += ' ';
    out += k;
    out += '=';
    append_value(out, v);
  }
  out += '\n';
  return out;
}

std::string redact(std::string_view token) {
  auto underscore = token.find('_');
  if (underscore == std::string_view::npos || underscore > 4) return "…";
  return std::string(token.substr(0, underscore + 1)) + "…";
}

}  // namespace rx
