// sd_notify for the static agent. Debian ships libsystemd only as a shared library, which a
// fully static binary cannot use, so the agent speaks the documented protocol itself: one
// datagram ("READY=1", "STATUS=...", "WATCHDOG=1") to the unix socket named by $NOTIFY_SOCKET.
// Does nothing when not run by systemd. (The hub, dynamically linked, uses libsystemd.)
#pragma once

#include <cstdint>
#include <string>

namespace rx::agent {

class Notifier {
 public:
  Notifier();  // reads and then unsets $NOTIFY_SOCKET so children never inherit it
  bool enabled() const { return !path_.empty(); }
  void send(const std::string& state) const;
  // The watchdog interval systemd asked for ($WATCHDOG_USEC), 0 when none.
  uint64_t watchdog_usec() const { return watchdog_usec_; }

 private:
  std::string path_;
  uint64_t watchdog_usec_ = 0;
};

}  // namespace rx::agent
