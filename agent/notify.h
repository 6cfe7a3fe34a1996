// sd_notify for the static agent. Debian ships libsystemd only as a shared library, which a
// fully static binary cannot use, so the agent speaks the documented protocol itself: one
// datagram ("READY=1", "STATUS=...", "WATCHDOG=1") to the unix socket named by $NOTIFY_SOCKET,
// with file descriptors attached (SCM_RIGHTS) for systemd's fd store ("FDSTORE=1", handover.h),
// and "BARRIER=1" to know systemd has read everything before the agent exits.
// Does nothing when not run by systemd. (The hub, dynamically linked, uses libsystemd.)
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace rx::agent {

class Notifier {
 public:
  Notifier();  // reads and then unsets $NOTIFY_SOCKET so children never inherit it
  bool enabled() const { return !path_.empty(); }
  // Never blocks: a message systemd has no room for is dropped (the loop must not stall).
  void send(const std::string& state) const;
  // One message with `fds` attached; waits up to 3 s for room if `wait`. False if not sent.
  bool send_fds(const std::string& state, std::span<const int> fds, bool wait = true) const;
  // sd_notify_barrier(): true once systemd has processed every message sent before it.
  bool barrier(std::chrono::milliseconds timeout) const;
  // The watchdog interval systemd asked for ($WATCHDOG_USEC), 0 when none.
  uint64_t watchdog_usec() const { return watchdog_usec_; }
  // The variables a re-exec'd agent needs to go on talking to systemd (NOTIFY_SOCKET=...).
  std::vector<std::string> environment() const;

 private:
  std::string path_;
  uint64_t watchdog_usec_ = 0;
};

}  // namespace rx::agent
