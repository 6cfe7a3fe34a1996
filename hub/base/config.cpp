#include "hub/base/config.h"

#include <fstream>
#include <sstream>

namespace rx::hub {
namespace {

struct ConfigLine {
  std::string key, value;
  int line;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Each entry keeps its line number, so a bad value in the file names its line.
Result<std::vector<ConfigLine>> parse_config_lines(std::string_view text) {
  std::vector<ConfigLine> out;
  int number = 0;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++number;
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    auto where = "line " + std::to_string(number) + ": ";
    if (line[0] == '[') return make_error("bad_config", where + "sections are not used; write key = value");
    auto eq = line.find('=');
    if (eq == std::string_view::npos) return make_error("bad_config", where + "expected key = value");
    std::string_view key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    if (key.empty()) return make_error("bad_config", where + "missing key before =");
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    out.push_back({std::string(key), std::string(value), number});
  }
  return out;
}

}  // namespace

std::vector<std::string_view> config_keys() {
  std::vector<std::string_view> keys;
  for (const auto& o : config_options()) keys.push_back(o.key);
  return keys;
}

Status apply_setting(HubConfig& c, std::string_view key, std::string_view value) {
  for (const auto& o : config_options()) {
    if (o.key != key) continue;
    if (auto s = o.set(c, value); !s)
      return make_error("bad_config", std::string(key) + ": \"" + std::string(value) + "\" " + s.error().message);
    return Ok{};
  }
  return make_error("bad_config", "unknown setting \"" + std::string(key) + "\"");
}

Result<std::vector<std::pair<std::string, std::string>>> parse_config_text(std::string_view text) {
  auto lines = parse_config_lines(text);
  if (!lines) return lines.error();
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& l : *lines) out.emplace_back(std::move(l.key), std::move(l.value));
  return out;
}

Result<HubConfig> load_config(const std::string& path, const std::vector<std::pair<std::string, std::string>>& flags) {
  HubConfig c;
  if (!path.empty()) {
    std::ifstream in(path);
    if (!in) return make_error("bad_config", "cannot read config file " + path);
    std::stringstream text;
    text << in.rdbuf();
    auto lines = parse_config_lines(text.str());
    if (!lines) return make_error("bad_config", path + ": " + lines.error().message);
    for (const auto& l : *lines)
      if (auto s = apply_setting(c, l.key, l.value); !s)
        return make_error("bad_config", path + ": line " + std::to_string(l.line) + ": " + s.error().message);
  }
  for (const auto& [k, v] : flags)
    if (auto s = apply_setting(c, k, v); !s) return make_error("bad_config", "--" + s.error().message);
  return c;
}

}  // namespace rx::hub
