// TerminalStatus: where a terminal is in its life. The live Terminal holds it as this enum; the
// store and the API carry its name (docs/api.md: "starting", "running", "offline", "exited",
// "lost", "stopped"), spelled in one place here.
#pragma once

#include <string>

namespace rx::hub {

enum class TerminalStatus {
  kStarting,  // made; its shell is not open yet (or its agent has not said HELLO)
  kRunning,
  kOffline,   // its agent is away; it resumes when the agent is back
  kExited,    // its shell ended (exit code known)
  kLost,      // it cannot come back (its agent restarted, its container is gone)
  kStopped,   // a container terminal whose container is stopped
};

inline std::string to_string(TerminalStatus s) {
  switch (s) {
    case TerminalStatus::kStarting: return "starting";
    case TerminalStatus::kRunning: return "running";
    case TerminalStatus::kOffline: return "offline";
    case TerminalStatus::kExited: return "exited";
    case TerminalStatus::kLost: return "lost";
    case TerminalStatus::kStopped: return "stopped";
  }
  return "lost";
}

// True when the terminal can never take input again (nothing would read it).
inline bool ended(TerminalStatus s) {
  return s == TerminalStatus::kExited || s == TerminalStatus::kLost || s == TerminalStatus::kStopped;
}

}  // namespace rx::hub
