// Channel: one terminal (pty) or exec run on the agent, and everything that must survive a lost
// link: its process, a ReplayRing per output stream (the last 2 MiB, acknowledged or not), the
// credit each stream has with the hub, and input not yet written. Knows nothing of lws: the
// Agent tells it when fds are ready and asks it what to send, so it is tested with plain fds.
//
// Output flow: read only while the stream has credit (ring.end - acked < window); a stream out
// of credit is not read, so the kernel blocks the program writing to the terminal. Exit flow:
// EXIT goes out once the process is reaped and its output is at EOF and sent (or 2 s after the
// reap, if a background job keeps the terminal open); CLOSE once every byte is acknowledged.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "agent/handover.h"
#include "agent/process.h"
#include "agent/user_map.h"
#include "protocol/credit_window.h"
#include "protocol/frame.h"
#include "protocol/replay_ring.h"

namespace rx::agent {

struct ChannelConfig {
  std::optional<Account> account;  // --user: the account of a channel nobody asked another for
  std::string shell;               // --shell: for that default account only (others get their own)
  UserMap user_map;                // --user-map (user_map.h picks the account per OPEN)
  std::string etc = "/etc";        // where OPEN.account is looked up (--etc-root)
  // "lease-required": a channel the hub gave no CUDA_VISIBLE_DEVICES sees no GPU at all.
  std::string gpu_policy = "open";
};

class Channel {
 public:
  using Clock = std::chrono::steady_clock;
  static Result<std::unique_ptr<Channel>> open(const protocol::Open& open, const ChannelConfig& config);
  // A file channel (FILE frame): an exec channel whose child runs file_op (file_op.h) instead of
  // a program, as the account an OPEN with the same user/account would get. Its kind() is exec.
  static Result<std::unique_ptr<Channel>> open(const protocol::FileOpen& file, const ChannelConfig& config);

  uint32_t id() const { return id_; }
  protocol::ChannelKind kind() const { return kind_; }
  bool is_file() const { return file_; }  // opened by a FILE frame
  pid_t pid();

  // --- file descriptors the Agent watches (-1 when there is none / no longer) ---
  int output_fd(protocol::Stream s) const;
  int input_fd() const;
  int pidfd();

  // --- output ---
  // True while the stream is open and has credit to read more.
  bool wants_read(protocol::Stream s) const;
  // Reads what credit allows into the ring.
  void read_output(protocol::Stream s);
  // The next output to send (at most max bytes), across streams, as the encoded DATA frame with
  // `headroom` bytes in front (encoded straight from the ring: no intermediate copy); nullopt
  // when nothing is due. Counts the bytes as sent.
  std::optional<std::vector<uint8_t>> next_frame(size_t max, size_t headroom);
  void on_ack(protocol::Stream s, uint64_t offset);
  // True when next_frame() would return something now.
  bool has_frame() const;
  // After WELCOME: the hub holds everything below `received` (nullopt: the hub named no offset).
  void resume(protocol::Stream s, std::optional<uint64_t> received);

  // --- input ---
  // Bytes from the hub at `offset`; duplicates are dropped. An empty DATA on an exec closes stdin.
  void on_input(uint64_t offset, std::span<const uint8_t> bytes);
  // Writes buffered input; true if some is still waiting for the fd to be writable.
  bool flush_input();
  bool input_pending() const { return !pending_input_.empty(); }
  std::optional<uint64_t> take_input_ack();
  uint64_t input_received() const { return input_.received(); }
  void rewind_input_acks() { input_.rewind_acks(); }

  // --- control ---
  void resize(uint16_t cols, uint16_t rows);
  Status signal(const std::string& name);

  // --- lifecycle ---
  void on_child_event();  // the pidfd is readable: reap
  // The EXIT frame, once, when it is due.
  std::optional<protocol::Exit> take_exit(Clock::time_point now);
  // The EXIT already taken, to repeat after a reconnect (it may have died with the old link).
  std::optional<protocol::Exit> sent_exit() const;
  // True once EXIT went out and every output byte is acknowledged: time for CLOSE.
  bool finished() const;
  // The fd to watch for the process's exit; -1 once it is known, or while an adopted process's
  // status waits for its new parent to reap it (then the Agent's tick asks on_child_event again:
  // the pidfd stays readable and would spin the loop).
  int exit_watch_fd();
  bool awaiting_exit_status() const { return !exit_ && orphan_exit_seen_.has_value(); }

  // --- upgrades (handover.h) ---
  // Only terminals go to a successor: an exec's (or a file channel's) caller, a hub request, ends
  // with the link anyway.
  bool can_hand_over() const { return pty_ != nullptr; }
  ChannelSnapshot snapshot(Clock::time_point now) const;
  // A terminal from a predecessor's snapshot. master or pidfd is -1 when it did not come along
  // (systemd drops a stored fd that hangs up: the shell is gone).
  static std::unique_ptr<Channel> restore(const ChannelSnapshot& s, int master, int pidfd, Clock::time_point now);
  // The successor owns the shell now: destroying this channel leaves it running.
  void release();

 private:
  struct Output {
    explicit Output(uint32_t window);
    protocol::ReplayRing ring;
    protocol::CreditWindow credit;
    bool eof = false;
    bool present = false;
  };
  Channel(uint32_t id, protocol::ChannelKind kind, uint32_t window);
  Output& out(protocol::Stream s) { return s == protocol::Stream::kStderr ? err_ : out_; }
  const Output& out(protocol::Stream s) const { return s == protocol::Stream::kStderr ? err_ : out_; }
  bool all_output_done() const;

  uint32_t id_;
  protocol::ChannelKind kind_;
  bool file_ = false;
  std::unique_ptr<PtyProcess> pty_;
  std::unique_ptr<ExecProcess> exec_;
  Output out_;
  Output err_;
  protocol::ReceiveCursor input_;
  std::vector<uint8_t> pending_input_;
  bool close_stdin_after_flush_ = false;
  std::optional<ExitStatus> exit_;
  Clock::time_point reaped_at_;
  bool exit_sent_ = false;
  std::optional<Clock::time_point> orphan_exit_seen_;  // an adopted process ended, status pending
  protocol::Stream next_stream_ = protocol::Stream::kOutput;  // round-robin between out and err
};

}  // namespace rx::agent
