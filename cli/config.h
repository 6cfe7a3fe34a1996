// The CLI's saved hubs: ~/.config/rexec/config.json (or $XDG_CONFIG_HOME/rexec), mode 0600 in a
// 0700 directory, written whole to a temp file and renamed so a crash never leaves half a file.
//   {"current": "work", "profiles": {"work": {"hub": "https://hub:8080", "token": "rxk_..."}}}
// REXEC_HUB and REXEC_TOKEN override what a profile says (CI jobs, containers).
#pragma once

#include <map>
#include <optional>
#include <string>

namespace rx::cli {

struct Profile {
  std::string hub;    // base URL, no trailing slash
  std::string token;  // API token (rxk_...)
};

struct Config {
  std::string current;  // the profile used when --hub-profile is not given
  std::map<std::string, Profile> profiles;
};

// Where the config lives (the directory is created on save).
std::string config_path();
// An absent file is an empty config; a file that is not ours (bad JSON) is a Failure naming it.
Config load_config(const std::string& path);
void save_config(const std::string& path, const Config& config);

// The hub and token a command uses: the named profile (or the current one), then the
// environment on top. Throws a Failure that says how to log in when there is no hub or token.
Profile resolve_profile(const Config& config, const std::optional<std::string>& name);

// "http://host:port[/]" -> "http://host:port"; a Failure for anything but http(s) with a host.
std::string normalize_hub_url(const std::string& url);

}  // namespace rx::cli
