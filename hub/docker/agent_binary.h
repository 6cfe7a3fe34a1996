// The static rexec-agent that container terminals run (bind-mounted read-only into each
// container). A container cannot run a missing file, a script, a dynamically linked build or one
// for another CPU: it would exit at once with code 126 or 127. The hub checks before it asks
// Docker for anything, so a create answers 503 agent_binary_missing naming the path and the
// reason, and nothing is left behind.
#pragma once

#include <string>

#include "protocol/error.h"

namespace rx::hub {

// Where the hub looks when --agent-binary is not given: beside its own install prefix
// (<prefix>/lib/rexec/rexec-agent: /usr/lib/... for the .deb, /usr/local/lib/... for make
// install), the first that exists; else the first candidate, so the error names a path.
std::string default_agent_binary();

// Ok when `path` is a regular, executable, statically linked ELF for this machine's CPU.
Status check_agent_binary(const std::string& path);

}  // namespace rx::hub
