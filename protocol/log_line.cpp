#include "protocol/log_line.h"

#include <unistd.h>

#include "protocol/utf8.h"

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
  auto hex = [&](unsigned char c) {
    out += "\\x";
    out += kHex[c >> 4];
    out += kHex[c & 15];
  };
  out += '"';
  for (size_t i = 0; i < v.size();) {
    unsigned char c = static_cast<unsigned char>(v[i]);
    if (c >= 0x80) {
      // Well-formed UTF-8 passes through; a byte that is not part of it is written as \xNN, so a
      // log line is always valid UTF-8 (journald, log shippers) and still shows what came.
      size_t n = protocol::utf8_sequence(v.substr(i));
      if (n == 0) {
        hex(c);
        ++i;
      } else {
        out.append(v.substr(i, n));
        i += n;
      }
      continue;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < ' ' || c == 0x7f) {
      hex(c);
    } else {
      out += char(c);
    }
    ++i;
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

void log(std::string_view level, std::string_view event, std::initializer_list<LogField> fields) {
  std::string line = format_log_line(level, event, fields);
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace rx
