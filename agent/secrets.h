// Secrets on disk: the enrollment token (read once, from a file or stdin) and the agent's own
// credential (written 0600, atomically, by the agent after enrolling). Never from argv, never
// into the environment of anything the agent spawns.
#pragma once

#include <string>

#include "protocol/error.h"

namespace rx::agent {

// Reads a secret from `path` ("-" = standard input): the first line, trimmed. Errors:
// secret_unreadable, secret_empty, secret_insecure (a credential file others can read).
Result<std::string> read_secret(const std::string& path, bool require_private);

// Writes `secret` to `path` with mode 0600 via a temporary file and rename, so a crash never
// leaves a half-written credential.
Status write_secret(const std::string& path, const std::string& secret);

}  // namespace rx::agent
