#include "protocol/labels.h"

#include "protocol/utf8.h"

namespace rx::protocol {
namespace {

bool key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-' || c == '/';
}

// A key as it may appear in a message: a bad one may be any bytes, so it is cut and cleaned.
std::string shown(std::string_view s) { return "\"" + clean_utf8(s.substr(0, 64)) + "\""; }

std::optional<Error> check_label(std::string_view key, std::string_view value) {
  auto bad = [&](const std::string& why) { return make_error("bad_labels", "label " + shown(key) + ": " + why); };
  if (key.empty()) return make_error("bad_labels", "a label has an empty key (expected key=value)");
  if (key.size() > kMaxLabelKey) return bad("the key is over " + std::to_string(kMaxLabelKey) + " bytes");
  bool first_ok = key_char(key[0]) && key[0] != '.' && key[0] != '_' && key[0] != '-' && key[0] != '/';
  for (char c : key)
    if (!key_char(c) || !first_ok)
      return bad("keys are letters, digits and . _ - / (starting with a letter or digit)");
  if (value.size() > kMaxLabelValue) return bad("the value is over " + std::to_string(kMaxLabelValue) + " bytes");
  for (size_t i = 0; i < value.size();) {
    size_t n = utf8_sequence(value.substr(i));
    if (n == 0) return bad("the value is not UTF-8");
    unsigned char c = static_cast<unsigned char>(value[i]);
    if (n == 1 && (c < 0x20 || c == 0x7f)) return bad("the value has a control character");
    i += n;
  }
  return std::nullopt;
}

}  // namespace

std::optional<Error> check_labels(const Labels& labels) {
  if (labels.size() > kMaxLabels)
    return make_error("bad_labels", std::to_string(labels.size()) + " labels are over the limit of " +
                                        std::to_string(kMaxLabels));
  for (const auto& [k, v] : labels)
    if (auto e = check_label(k, v)) return e;
  return std::nullopt;
}

Result<std::pair<std::string, std::string>> parse_label(std::string_view text) {
  auto eq = text.find('=');
  if (eq == std::string_view::npos)
    return make_error("bad_labels", "label " + shown(text) + ": expected key=value");
  std::string key(text.substr(0, eq)), value(text.substr(eq + 1));
  if (auto e = check_label(key, value)) return *e;
  return std::pair{std::move(key), std::move(value)};
}

}  // namespace rx::protocol
