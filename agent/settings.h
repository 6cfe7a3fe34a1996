// Settings: what `rexec-agent` is told, from its flags and the file `--config FILE` names
// (/etc/rexec/agent.conf under the unit). The file holds no secrets, only where the hub is and
// who this agent is: `key = value` lines, each key a long flag without its dashes (hub, name,
// label, user, ca-file, credential-file, shell...), `#` comments, values optionally in double
// quotes; `label = k=v` may repeat. Flags override the file; a --label replaces the file's label
// of the same key. Secrets on the command line (--token, --credential) are refused outright.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "protocol/error.h"
#include "protocol/labels.h"

namespace rx::agent {

struct Settings {
  std::map<std::string, std::string> values;  // "--hub" -> "wss://..."; every key is a known flag
  protocol::Labels labels;                    // checked against protocol/labels.h
  bool help = false;
};

// `args` is argv without argv[0]. Errors name the flag or the file's line.
Result<Settings> parse_settings(const std::vector<std::string>& args);

}  // namespace rx::agent
