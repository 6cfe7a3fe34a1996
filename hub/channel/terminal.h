// Terminal: the hub's live state of one terminal (a pty channel on an agent link), in the order
// data flows: output from the agent -> ReplayRing -> sinks (viewers); input from viewers -> input
// ring -> agent. Knows nothing of sockets or wire formats: it talks to its agent through
// AgentPort and to its sinks through OutputSink, so it can be tested with plain objects.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <chrono>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "hub/channel/output_sink.h"
#include "hub/channel/terminal_status.h"
#include "hub/link/agent_link.h"
#include "protocol/credit_window.h"
#include "protocol/error.h"
#include "protocol/frame.h"
#include "protocol/replay_ring.h"

namespace rx::hub {

class Terminal {
 public:
  Terminal(std::string id, std::string agent_id, uint32_t channel, uint32_t window);
  ~Terminal();
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  const std::string& id() const { return id_; }
  const std::string& agent_id() const { return agent_id_; }
  uint32_t channel() const { return channel_; }
  TerminalStatus status() const { return status_; }
  std::optional<int32_t> exit_code() const { return exit_code_; }
  const protocol::ReplayRing& output() const { return output_; }
  // Unix time of the last output or input (0: none since the hub started).
  int64_t last_activity() const { return last_activity_; }

  // --- the agent side ---
  // The agent link came up (or came back) and the channel is alive there: resend unacknowledged
  // input from what the agent has, and start flowing again.
  void attach_agent(AgentPort* port, uint64_t agent_input_received);
  // The link went down: keep everything, mark offline.
  void detach_agent();
  // Where the hub wants the agent to resume output from (WELCOME's resume entry).
  uint64_t output_received() const { return out_cursor_.received(); }
  void on_data(uint64_t offset, std::span<const uint8_t> bytes);
  void on_input_ack(uint64_t offset);
  void on_exit(int32_t code, const std::string& signal);
  void set_status(TerminalStatus status);  // tells viewers
  // Closes every viewer's socket with `reason` (the terminal is being replaced).
  void drop_viewers(const std::string& reason);
  // Closes the viewers that came in by share link `share_id` (the link was deleted).
  void drop_share_viewers(const std::string& share_id, const std::string& reason);

  // --- the viewer side ---
  // Attaches a viewer that wants output from `since` (nullopt: all the ring holds). A viewer that
  // gave `since` is told first where the ring starts and output ends ({"type":"replay"}), so an
  // offset at or past the end gets an answer, not silence.
  void add_viewer(OutputSink* v, std::optional<uint64_t> since);
  void remove_viewer(OutputSink* v);
  // Sinks that are viewers (a recorder is a sink, not a viewer).
  size_t viewer_count() const;
  // The next output for `v` (at most max_bytes), taken: empty when `v` is up to date. Queues a
  // gap event first when the sink's offset fell out of the ring. Taking output may return credit
  // to the agent. The bytes are the ring's own: valid until the terminal next gets output.
  struct Chunk {
    uint64_t offset = 0;
    std::span<const uint8_t> first, second;  // two pieces when they wrap around the ring
    size_t size() const { return first.size() + second.size(); }
  };
  Chunk take_output(OutputSink* v, size_t max_bytes);
  bool has_output_for(OutputSink* v) const;
  // Errors: input_dropped when the agent is gone and the input buffer is full; not_running when
  // the terminal is lost, exited or stopped (nothing would ever read it).
  Status send_input(std::span<const uint8_t> bytes);
  // Clamped to 1..kMaxSize (what POST /api/v1/terminals accepts); a repeat of the size last sent
  // is not sent again.
  void resize(uint16_t cols, uint16_t rows);
  static constexpr uint16_t kMaxSize = 1000;
  // The size the terminal was made with (the store's), before any viewer resized it: sinks are
  // told of changes from here.
  void set_size(uint16_t cols, uint16_t rows) { cols_ = cols, rows_ = rows; }
  uint16_t cols() const { return cols_; }
  uint16_t rows() const { return rows_; }
  void send_signal(const std::string& name);

  // Typed input held until the agent ACKs it: a whole window, since the agent ACKs input only
  // every quarter window.
  static constexpr size_t kInputBuffer = 256 * 1024;

  // A viewer that has taken nothing for kStallAfter while output waited for it stops holding the
  // terminal back, as long as another viewer keeps up (protocol/SPEC.md 1.7): the others go on
  // at their pace, and when it reads again what the ring no longer holds is skipped with a gap
  // event. Alone, a viewer still sets the pace (nothing is lost for one slow reader).
  static constexpr std::chrono::milliseconds kStallAfter{2000};
  using Clock = std::chrono::steady_clock;
  // From the hub's housekeeping: a viewer may have stalled since anything last happened here.
  void tick() { maybe_ack(); }
  void set_clock(std::function<Clock::time_point()> clock) { clock_ = std::move(clock); }

 private:
  int64_t last_activity_ = 0;
  void pump_input();
  void maybe_ack();
  void broadcast(const nlohmann::json& event);
  void broadcast_viewers();

  std::string id_;
  std::string agent_id_;
  uint32_t channel_;
  TerminalStatus status_ = TerminalStatus::kOffline;
  std::optional<int32_t> exit_code_;
  std::string exit_signal_;
  AgentPort* agent_ = nullptr;
  uint16_t sent_cols_ = 0, sent_rows_ = 0;  // the last RESIZE sent on this link (0: none yet)
  uint16_t cols_ = 80, rows_ = 24;          // the size sinks were last told of

  protocol::ReplayRing output_;
  protocol::ReceiveCursor out_cursor_;
  protocol::ReplayRing input_;  // typed input not yet acknowledged by the agent
  protocol::CreditWindow in_window_;

  std::map<OutputSink*, uint64_t> viewers_;  // viewer -> offset of the next byte it gets
  std::map<OutputSink*, Clock::time_point> fed_;  // when each was last caught up or took output
  std::function<Clock::time_point()> clock_ = [] { return Clock::now(); };
  bool stalled(OutputSink* v, uint64_t cursor, Clock::time_point now) const;
};

}  // namespace rx::hub
