// HubConfig: every setting of `rexec-hub serve`, from a config file and flags. The file
// (--config FILE) is INI without sections: `key = value` lines, `#` or `;` comments, values
// optionally in double quotes; each key is a long flag without its dashes (listen, data-dir...).
// Flags override the file. Unknown keys and bad values are errors that name the key, the bad
// value and the line or flag. config_options() is the one list of settings: the file parser, the
// flags and --help (hub/base/command_line.h) are made from it, and a test holds
// docs/configuration.md to it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/error.h"

namespace rx::hub {

struct HubConfig {
  std::string listen = "127.0.0.1:8080";
  std::string data_dir;
  std::string tls_cert;
  std::string tls_key;
  size_t max_body = 1024 * 1024;  // request bodies above this get 413
  int rate_requests = 100;         // API requests per minute, per token and per client IP (0: off)
  int rate_terminal_creates = 10;  // terminal creates per minute, per token
  int rate_auth_failures = 30;     // failed authentications per minute per client IP, then 429 (0: off)
  int viewers_per_terminal = 5;    // viewer sockets one user may hold on one terminal
  std::string docker_socket = "/var/run/docker.sock";
  // The static rexec-agent that container terminals run (bind-mounted read-only as their
  // entrypoint). Empty: the one installed beside the hub (default_agent_binary(), hub/docker/agent_binary.h).
  std::string agent_binary;
  int container_quota = 10;  // container terminals one user may have at once
  std::string warm_pool;     // "IMAGE=N,...": containers started ahead per image (empty: none)
  // GPU leases idle (0 % on every leased GPU) this long get a warning, and are released
  // gpu_idle_grace_s later unless they got busy. 0: never (docs/gpu.md).
  int64_t gpu_idle_release_s = 0;
  int64_t gpu_idle_grace_s = 600;
  int64_t session_ttl_s = 24 * 3600;  // browser sign-in lifetime (never past its token's)
  std::string web_dir;     // serve the dashboard from this directory (development); empty: the built-in copy
  std::string public_url;  // how users reach the hub (share links, install command); empty: from Host
  // The agent binaries GET /downloads/ serves, each with its .sha256 (hub/api/downloads.h); the
  // packages install them here, scripts/stage-downloads.sh fills a directory from a build.
  std::string downloads_dir = "/usr/lib/rexec/agents";
  // Terminals are recorded (asciicast, DATA/recordings/) unless this is off or the terminal
  // was created with "record": false (hub/fanout/recordings.h).
  bool record = true;
  // Retention, oldest recordings first, never one still being written (0: no limit).
  int64_t recordings_max_bytes = int64_t(10) << 30;
  int64_t recordings_max_age_s = 0;
  // The largest upload PUT .../files takes (docs/files.md): more is 413 and nothing is kept.
  int64_t files_max_bytes = int64_t(1) << 30;
};

// One setting: a config-file key and, with "--" before it, a flag of `rexec-hub serve`.
struct ConfigOption {
  std::string_view key;
  std::string_view value_name;  // what --help shows after the flag: HOST:PORT, N, DIR...
  std::string_view help;        // one line of --help
  // Checks and stores a value; the error is the reason alone ("is not ..."): the caller names
  // the key, the value and where it came from.
  Status (*set)(HubConfig&, std::string_view value);
  std::string (*show)(const HubConfig&);  // the value as text; of HubConfig{}: the default
};

// Every setting, in the order --help and docs/configuration.md list them (hub/base/config_options.cpp).
std::span<const ConfigOption> config_options();

// The keys of config_options(), for tests and messages.
std::vector<std::string_view> config_keys();

// Sets one key; the error names the key, the value and what a valid value looks like.
Status apply_setting(HubConfig& config, std::string_view key, std::string_view value);

// `key = value` pairs of a config file's text, in order; errors carry the line number.
Result<std::vector<std::pair<std::string, std::string>>> parse_config_text(std::string_view text);

// The file (when `path` is not empty), then `flags` over it.
Result<HubConfig> load_config(const std::string& path, const std::vector<std::pair<std::string, std::string>>& flags);

}  // namespace rx::hub
