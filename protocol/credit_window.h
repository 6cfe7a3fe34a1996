// Per-channel, per-stream flow control of the agent link (SPEC.md, "Credit flow control").
// CreditWindow is the sender's side: at most `window` bytes may be sent and not yet acknowledged.
// When it is full the sender stops reading its source (a PTY stays unread, so the kernel blocks the
// program writing to it); only this stream slows. ReceiveCursor is the receiver's side: it drops
// bytes it already has after a resend, notices gaps, and says when an ACK is due.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "protocol/error.h"

namespace rx::protocol {

class CreditWindow {
 public:
  explicit CreditWindow(uint32_t window, uint64_t start = 0);

  uint32_t window() const { return window_; }
  uint64_t sent() const { return sent_; }    // offset of the next byte to send
  uint64_t acked() const { return acked_; }  // every byte below was acknowledged
  size_t in_flight() const { return static_cast<size_t>(sent_ - acked_); }
  // May send this many now; 0 while a shrunk window is still over-full.
  size_t available() const { return in_flight() >= window_ ? 0 : window_ - in_flight(); }

  // Records n more bytes sent. Error "window_exceeded" (and no change) when n > available().
  Status on_sent(size_t n);

  // Applies a cumulative ACK. An offset below acked() is stale and ignored; one beyond sent()
  // is a peer bug: error "ack_beyond_sent" and no change.
  Status on_ack(uint64_t offset);

  // After a reconnect the peer says it has every byte below `offset`: resend from there.
  // Moves both acked and sent to `offset` (which may be lower than acked if the peer lost state).
  void rewind(uint64_t offset);

  // Changes the window (e.g. from OPEN); in-flight bytes may exceed a smaller window for a while.
  void set_window(uint32_t window);

 private:
  uint32_t window_;
  uint64_t sent_;
  uint64_t acked_;
};

class ReceiveCursor {
 public:
  // What to do with `len` bytes that arrived at `offset`.
  struct Accept {
    size_t skip = 0;     // leading bytes already received before (a resend): drop them
    uint64_t gap = 0;    // bytes missing before these (the sender no longer had them)
  };

  explicit ReceiveCursor(uint32_t window, uint64_t start = 0);

  uint64_t received() const { return received_; }  // offset of the next expected byte
  uint64_t consumed() const { return consumed_; }
  uint64_t acked() const { return acked_; }

  // Classifies and records bytes [offset, offset+len). After it, received() = max(received, offset+len).
  Accept on_data(uint64_t offset, size_t len);

  // The consumer has taken every byte below `offset` (clamped to received()).
  void on_consumed(uint64_t offset);

  // The offset to ACK now, or nothing. An ACK is due once a quarter of the window has been
  // consumed since the last one: then the sender always has at least three quarters of its
  // credit, so it never waits, and a keystroke echo costs no ACK frame at all. `force` ACKs
  // whatever was consumed (when the stream ends, so the sender can finish). Calling it records
  // the ACK as sent.
  std::optional<uint64_t> take_ack(bool force = false);

  // A fresh link: nothing acknowledged on it yet, next expected byte unchanged.
  void rewind_acks() { acked_ = consumed_; }

 private:
  uint32_t window_;
  uint64_t received_;
  uint64_t consumed_;
  uint64_t acked_;
};

}  // namespace rx::protocol
