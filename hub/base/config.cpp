#include "hub/base/config.h"

#include <charconv>
#include <fstream>
#include <sstream>

namespace rx::hub {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

Result<int64_t> integer(std::string_view key, std::string_view value, int64_t min, int64_t max) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || end != value.data() + value.size() || v < min || v > max)
    return make_error("bad_config", std::string(key) + ": \"" + std::string(value) + "\" is not an integer between " +
                                        std::to_string(min) + " and " + std::to_string(max));
  return v;
}

}  // namespace

const std::vector<std::string_view>& config_keys() {
  static const std::vector<std::string_view> keys{"listen",        "data-dir",      "tls-cert",
                                                  "tls-key",       "max-body",      "rate-requests",
                                                  "rate-terminal-creates", "rate-auth-failures",
                                                  "viewers-per-terminal",
                                                  "docker-socket", "agent-binary", "container-quota",
                                                  "warm-pool",     "session-ttl",  "web-dir",
                                                  "public-url",    "downloads-dir",
                                                  "gpu-idle-release", "gpu-idle-grace"};
  return keys;
}

Status apply_setting(HubConfig& c, std::string_view key, std::string_view value) {
  auto set_int = [&](auto& field, int64_t min, int64_t max) -> Status {
    auto v = integer(key, value, min, max);
    if (!v) return v.error();
    field = static_cast<std::remove_reference_t<decltype(field)>>(*v);
    return Ok{};
  };
  if (key == "listen") {
    // HOST:PORT or [V6]:PORT; the port a number (0: any free one), never silently 0 from "abc".
    auto colon = value.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return make_error("bad_config", "listen: expected HOST:PORT");
    auto port = integer("listen port", value.substr(colon + 1), 0, 65535);
    if (!port) return port.error();
    c.listen = value;
  } else if (key == "data-dir") {
    c.data_dir = value;
  } else if (key == "tls-cert") {
    c.tls_cert = value;
  } else if (key == "tls-key") {
    c.tls_key = value;
  } else if (key == "max-body") {
    return set_int(c.max_body, 1024, int64_t(1) << 30);
  } else if (key == "rate-requests") {
    return set_int(c.rate_requests, 0, 1000000);
  } else if (key == "rate-terminal-creates") {
    return set_int(c.rate_terminal_creates, 0, 1000000);
  } else if (key == "rate-auth-failures") {
    return set_int(c.rate_auth_failures, 0, 1000000);
  } else if (key == "viewers-per-terminal") {
    return set_int(c.viewers_per_terminal, 1, 10000);
  } else if (key == "docker-socket") {
    c.docker_socket = value;
  } else if (key == "agent-binary") {
    c.agent_binary = value;
  } else if (key == "warm-pool") {
    c.warm_pool = value;
  } else if (key == "session-ttl") {
    return set_int(c.session_ttl_s, 60, int64_t(365) * 24 * 3600);
  } else if (key == "gpu-idle-release") {
    return set_int(c.gpu_idle_release_s, 0, int64_t(365) * 24 * 3600);
  } else if (key == "gpu-idle-grace") {
    return set_int(c.gpu_idle_grace_s, 0, int64_t(30) * 24 * 3600);
  } else if (key == "web-dir") {
    c.web_dir = value;
  } else if (key == "public-url") {
    if (!value.starts_with("http://") && !value.starts_with("https://"))
      return make_error("bad_config", "public-url: expected http://HOST[:PORT] or https://...");
    c.public_url = value;
    while (!c.public_url.empty() && c.public_url.back() == '/') c.public_url.pop_back();
  } else if (key == "downloads-dir") {
    if (value.empty()) return make_error("bad_config", "downloads-dir: expected a directory");
    c.downloads_dir = value;
    while (c.downloads_dir.size() > 1 && c.downloads_dir.back() == '/') c.downloads_dir.pop_back();
  } else if (key == "container-quota") {
    return set_int(c.container_quota, 0, 100000);
  } else {
    return make_error("bad_config", "unknown setting \"" + std::string(key) + "\"");
  }
  return Ok{};
}

Result<std::vector<std::pair<std::string, std::string>>> parse_config_text(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
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
    out.emplace_back(key, value);
  }
  return out;
}

Result<HubConfig> load_config(const std::string& path, const std::vector<std::pair<std::string, std::string>>& flags) {
  HubConfig c;
  if (!path.empty()) {
    std::ifstream in(path);
    if (!in) return make_error("bad_config", "cannot read config file " + path);
    std::stringstream text;
    text << in.rdbuf();
    auto entries = parse_config_text(text.str());
    if (!entries) return make_error("bad_config", path + ": " + entries.error().message);
    for (const auto& [k, v] : *entries)
      if (auto s = apply_setting(c, k, v); !s) return make_error("bad_config", path + ": " + s.error().message);
  }
  for (const auto& [k, v] : flags)
    if (auto s = apply_setting(c, k, v); !s) return make_error("bad_config", "--" + s.error().message);
  return c;
}

}  // namespace rx::hub
