// Handover: what one agent process gives the next, so an upgrade keeps every shell
// (docs/agent-upgrades.md). Per PTY channel: its id, window, shell pid, output ring and credit,
// input received but not yet written, and exit status; encoded into a memfd ("rexec.state").
// The PTY masters and pidfds go along as file descriptors, each with a name, by one of two roads:
//   - systemd's fd store: FDSTORE=1 + FDNAME=name over $NOTIFY_SOCKET (Notifier::send_fds); the
//     next process started for the unit gets them as LISTEN_FDS/LISTEN_FDNAMES (sd_listen_fds);
//   - re-exec of the binary at its path, the fds inherited, their numbers in REXEC_HANDOVER_FDS
//     ("name=fd,name=fd"; numbers and names only, never a secret).
// Either way the successor finds them by name (InheritedFds) and resumes the same channels.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "protocol/error.h"

namespace rx::agent {

struct ChannelSnapshot {
  uint32_t id = 0;
  uint32_t window = 0;
  int32_t pid = 0;
  // The output stream: the ring holds [ring_start, ring_start + ring.size()).
  uint64_t ring_start = 0;
  std::vector<uint8_t> ring;
  uint64_t acked = 0;  // the hub acknowledged every byte below
  bool eof = false;
  // The input stream: written to the PTY below input_consumed; pending_input follows it.
  uint64_t input_consumed = 0;
  std::vector<uint8_t> pending_input;
  // The exit, once reaped.
  bool exited = false;
  int32_t exit_code = 0;
  std::string exit_signal;
  bool exit_sent = false;
  uint64_t reaped_ms_ago = 0;
  bool operator==(const ChannelSnapshot&) const = default;
};

struct HandoverState {
  std::vector<ChannelSnapshot> channels;
  bool operator==(const HandoverState&) const = default;
};

// "RXHO", u32 version, u32 count, then per channel a u32 record length and the record (fields in
// the order above, little-endian; bytes and strings as u64 length + bytes). A newer agent may append
// fields to a record: an older one skips what it does not know. Errors (bad_handover): bad magic,
// a version this build cannot read, truncation, values out of range.
inline constexpr uint32_t kHandoverVersion = 1;
std::vector<uint8_t> encode_handover(const HandoverState& state);
Result<HandoverState> decode_handover(std::span<const uint8_t> bytes);

inline constexpr const char* kStateFdName = "rexec.state";
std::string master_fd_name(uint32_t channel);  // "rexec.c7.pty"
std::string pid_fd_name(uint32_t channel);     // "rexec.c7.pid"

// A sealed memfd holding `bytes`, close-on-exec; and reading one back (at most max_bytes).
Result<int> write_state_fd(std::span<const uint8_t> bytes);
Result<std::vector<uint8_t>> read_state_fd(int fd, size_t max_bytes = size_t(1) << 32);

// The named descriptors a predecessor left: systemd's (LISTEN_PID = our pid, LISTEN_FDS,
// LISTEN_FDNAMES) or a re-exec's (REXEC_HANDOVER_FDS). Taken once, at startup: the variables are
// cleared and every fd made close-on-exec, so no shell inherits another's terminal. Fds nobody
// took are closed with this object.
class InheritedFds {
 public:
  InheritedFds() = default;  // none
  static InheritedFds take_from_environment();
  ~InheritedFds();
  InheritedFds(InheritedFds&& o) noexcept
      : problem(std::move(o.problem)), fds_(std::move(o.fds_)), from_systemd_(o.from_systemd_) {
    o.fds_.clear();
  }
  InheritedFds& operator=(InheritedFds&&) = delete;
  bool empty() const { return fds_.empty(); }
  bool from_systemd() const { return from_systemd_; }
  std::vector<std::string> names() const;
  int take(const std::string& name);  // -1 when there is none; the caller owns it after
  std::string problem;                // why the environment's list was refused, if it was

 private:
  std::map<std::string, int> fds_;
  bool from_systemd_ = false;
};

// Replaces this process with `path` (argv, env), keeping `fds` open and naming them in
// REXEC_HANDOVER_FDS; every other descriptor closes at exec. Returns only on failure, with every
// descriptor as it was.
Status reexec(const std::string& path, const std::vector<std::string>& argv, std::vector<std::string> env,
              const std::vector<std::pair<std::string, int>>& fds);

}  // namespace rx::agent
