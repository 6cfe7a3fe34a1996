// The hub's settings table: each key written once, with its parser, bounds and help line. The
// defaults are HubConfig's member initializers (config.h); `show` reads them back for --help and
// the docs test, so they are not written a second time here.
#include <array>
#include <charconv>
#include <type_traits>

#include "hub/base/config.h"

namespace rx::hub {
namespace {

Status reason(std::string text) { return make_error("bad_config", std::move(text)); }

// Whole-string integers only: "10x", "", " 5" and out-of-range values are refused, never clamped.
bool parse_integer(std::string_view value, int64_t min, int64_t max, int64_t& out) {
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
  return ec == std::errc() && end == value.data() + value.size() && out >= min && out <= max;
}

template <auto Field>
Status text(HubConfig& c, std::string_view value) {
  c.*Field = std::string(value);
  return Ok{};
}

template <auto Field, int64_t Min, int64_t Max>
Status integer(HubConfig& c, std::string_view value) {
  int64_t v = 0;
  if (!parse_integer(value, Min, Max, v))
    return reason("is not an integer between " + std::to_string(Min) + " and " + std::to_string(Max));
  c.*Field = static_cast<std::remove_reference_t<decltype(c.*Field)>>(v);
  return Ok{};
}

template <auto Field>
Status on_off(HubConfig& c, std::string_view value) {
  if (value != "on" && value != "off") return reason("is not on or off");
  c.*Field = value == "on";
  return Ok{};
}

template <auto Field>
std::string show(const HubConfig& c) {
  if constexpr (std::is_same_v<std::remove_cvref_t<decltype(c.*Field)>, std::string>) return c.*Field;
  else if constexpr (std::is_same_v<std::remove_cvref_t<decltype(c.*Field)>, bool>) return c.*Field ? "on" : "off";
  else return std::to_string(c.*Field);
}

// HOST:PORT or [V6]:PORT; the port a number (0: any free one), never silently 0 from "abc".
Status listen(HubConfig& c, std::string_view value) {
  auto colon = value.rfind(':');
  int64_t port = 0;
  if (colon == std::string_view::npos || colon == 0 || !parse_integer(value.substr(colon + 1), 0, 65535, port))
    return reason("is not HOST:PORT with a port from 0 to 65535");
  c.listen = value;
  return Ok{};
}

Status public_url(HubConfig& c, std::string_view value) {
  if (!value.starts_with("http://") && !value.starts_with("https://"))
    return reason("is not http://HOST[:PORT] or https://HOST[:PORT]");
  c.public_url = value;
  while (!c.public_url.empty() && c.public_url.back() == '/') c.public_url.pop_back();
  return Ok{};
}

Status downloads_dir(HubConfig& c, std::string_view value) {
  if (value.empty()) return reason("is not a directory");
  c.downloads_dir = value;
  while (c.downloads_dir.size() > 1 && c.downloads_dir.back() == '/') c.downloads_dir.pop_back();
  return Ok{};
}

constexpr int64_t kDay = 24 * 3600;

}  // namespace

std::span<const ConfigOption> config_options() {
  using C = HubConfig;
  static constexpr std::array<ConfigOption, 23> options{{
      {"listen", "HOST:PORT", "REST, agents and viewers listen here ([::1]:8080 for IPv6)", listen, show<&C::listen>},
      {"data-dir", "DIR", "the SQLite store and admin.token (required)", text<&C::data_dir>, show<&C::data_dir>},
      {"tls-cert", "FILE", "PEM certificate chain: HTTPS/WSS only (with tls-key)", text<&C::tls_cert>,
       show<&C::tls_cert>},
      {"tls-key", "FILE", "PEM private key of tls-cert", text<&C::tls_key>, show<&C::tls_key>},
      {"max-body", "BYTES", "request bodies above this get 413", integer<&C::max_body, 1024, int64_t(1) << 30>,
       show<&C::max_body>},
      {"rate-requests", "N", "API requests per minute per token and per client IP (0: off)",
       integer<&C::rate_requests, 0, 1000000>, show<&C::rate_requests>},
      {"rate-terminal-creates", "N", "terminal creates per minute per token (0: off)",
       integer<&C::rate_terminal_creates, 0, 1000000>, show<&C::rate_terminal_creates>},
      {"rate-auth-failures", "N", "failed authentications per minute per client IP, then 429 (0: off)",
       integer<&C::rate_auth_failures, 0, 1000000>, show<&C::rate_auth_failures>},
      {"viewers-per-terminal", "N", "viewer sockets one user may hold on one terminal",
       integer<&C::viewers_per_terminal, 1, 10000>, show<&C::viewers_per_terminal>},
      {"docker-socket", "PATH", "the Docker Engine API, for container terminals", text<&C::docker_socket>,
       show<&C::docker_socket>},
      {"agent-binary", "FILE", "the static agent container terminals run (default: the one beside the hub)",
       text<&C::agent_binary>, show<&C::agent_binary>},
      {"container-quota", "N", "container terminals one user may have at once", integer<&C::container_quota, 0, 100000>,
       show<&C::container_quota>},
      {"session-ttl", "SECONDS", "how long a browser sign-in lasts", integer<&C::session_ttl_s, 60, 365 * kDay>,
       show<&C::session_ttl_s>},
      {"gpu-idle-release", "SECONDS", "warn a GPU lease idle this long (0: never)",
       integer<&C::gpu_idle_release_s, 0, 365 * kDay>, show<&C::gpu_idle_release_s>},
      {"gpu-idle-grace", "SECONDS", "then release it this much later unless a GPU got busy",
       integer<&C::gpu_idle_grace_s, 0, 30 * kDay>, show<&C::gpu_idle_grace_s>},
      {"web-dir", "DIR", "serve the dashboard from here instead of the built-in copy", text<&C::web_dir>,
       show<&C::web_dir>},
      {"public-url", "URL", "http(s)://HOST[:PORT] users reach the hub at (default: from Host)", public_url,
       show<&C::public_url>},
      {"downloads-dir", "DIR", "the agent binaries GET /downloads/ serves", downloads_dir, show<&C::downloads_dir>},
      {"warm-pool", "IMAGE=N,...", "containers started ahead per image", text<&C::warm_pool>, show<&C::warm_pool>},
      {"record", "on|off", "record terminals as asciicast in DATA/recordings (per terminal: \"record\": false)",
       on_off<&C::record>, show<&C::record>},
      {"recordings-max-bytes", "BYTES", "delete the oldest ended recordings past this total (0: no limit)",
       integer<&C::recordings_max_bytes, 0, INT64_MAX>, show<&C::recordings_max_bytes>},
      {"recordings-max-age", "SECONDS", "delete ended recordings older than this (0: keep them)",
       integer<&C::recordings_max_age_s, 0, 100LL * 365 * kDay>, show<&C::recordings_max_age_s>},
      {"files-max-bytes", "BYTES", "the largest file an upload to a terminal may bring (413 past it)",
       integer<&C::files_max_bytes, 1, INT64_MAX>, show<&C::files_max_bytes>},
  }};
  return options;
}

}  // namespace rx::hub
