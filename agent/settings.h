// Settings: what `rexec-agent` is told, from its flags and the file `--config FILE` names
// (/etc/rexec/agent.conf under the unit). The file holds no secrets, only where the hub is and
// who this agent is: `key = value` lines, each key a long flag without its dashes (hub, name,
// label, user, ca-file, credential-file, shell...), `#` comments, values optionally in double
// quotes; `label = k=v` may repeat. Flags override the file; a --label replaces the file's label
// of the same key. Secrets on the command line (--token, --credential) are refused outright.
// setting_options() is the one list of settings: the flags, the file's keys, --help and the
// defaults come from it, and a test holds docs/configuration.md to it. The flags are parsed here,
// not by CLI11 as the hub's and the CLI's are: CLI11 grew the static agent by 143 KB (6,074,664 to
// 6,218,088 bytes), two thirds of its room under the 6 MiB cap, for fourteen --KEY VALUE flags.
#pragma once

#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/error.h"
#include "protocol/labels.h"

namespace rx::agent {

// One setting: a key of the file and, with "--" before it, a flag.
struct SettingOption {
  std::string_view key;
  std::string_view value_name;  // what --help shows after the flag: URL, FILE...
  std::string_view help;        // one line of --help
  std::string_view fallback;    // the value when neither flag nor file gives one; empty: none
  // nullptr: any value. Otherwise the reason a value is refused ("is not ..."); the caller names
  // the key, the value and the line or flag.
  Status (*check)(std::string_view value) = nullptr;
  bool repeats = false;  // label: each occurrence adds one
};

// Every setting, in the order --help and docs/configuration.md list them.
std::span<const SettingOption> setting_options();

struct Settings {
  // "--hub" -> "wss://..."; every key is a known flag. Settings with a fallback always have a value.
  std::map<std::string, std::string> values;
  protocol::Labels labels;  // checked against protocol/labels.h
  bool help = false;
};

// `args` is argv without argv[0]. Errors name the flag or the file's line, and the bad value.
Result<Settings> parse_settings(const std::vector<std::string>& args);

// The flags with their help lines and defaults, made from setting_options().
std::string agent_usage();

}  // namespace rx::agent
