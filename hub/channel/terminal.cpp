#include "hub/channel/terminal.h"

#include <algorithm>
#include <ctime>

#include "protocol/limits.h"

namespace rx::hub {

using protocol::Stream;

Terminal::Terminal(std::string id, std::string agent_id, uint32_t channel, uint32_t window)
    : id_(std::move(id)),
      agent_id_(std::move(agent_id)),
      channel_(channel),
      output_(protocol::kReplayBytes),
      out_cursor_(window),
      input_(kInputBuffer),
      in_window_(window) {}

Terminal::~Terminal() { drop_viewers("terminal deleted"); }

void Terminal::attach_agent(AgentPort* port, uint64_t agent_input_received) {
  agent_ = port;
  sent_cols_ = sent_rows_ = 0;  // a new link: the next resize goes whatever it is
  // The agent has every input byte below agent_input_received; resend the rest. An agent ahead
  // of our buffer means the hub restarted and lost it: continue numbering from the agent's count.
  if (agent_input_received > input_.end()) input_.reset(agent_input_received);
  input_.trim(agent_input_received);
  in_window_.rewind(std::max(agent_input_received, input_.start()));
  out_cursor_.rewind_acks();
  if (status_ == TerminalStatus::kOffline || status_ == TerminalStatus::kStarting) set_status(TerminalStatus::kRunning);
  pump_input();
  maybe_ack();
}

void Terminal::detach_agent() {
  agent_ = nullptr;
  if (status_ == TerminalStatus::kRunning || status_ == TerminalStatus::kStarting) set_status(TerminalStatus::kOffline);
}

void Terminal::on_data(uint64_t offset, std::span<const uint8_t> bytes) {
  auto accept = out_cursor_.on_data(offset, bytes.size());
  if (accept.skip >= bytes.size()) return;  // all of it is a resend we already have
  uint64_t first = offset + accept.skip;
  last_activity_ = int64_t(std::time(nullptr));
  if (first != output_.end()) {
    // The agent no longer had the bytes in between (or the hub lost its ring in a restart):
    // start the ring afresh where the data begins; viewers behind it get a gap event.
    output_.reset(first);
  }
  auto now = clock_();
  for (auto& [v, cursor] : viewers_)
    if (cursor >= output_.end()) fed_[v] = now;  // it was caught up: output waits for it from now
  output_.append(bytes.subspan(accept.skip));
  for (auto& [v, cursor] : viewers_) v->wake();
  maybe_ack();
}

void Terminal::on_input_ack(uint64_t offset) {
  if (in_window_.on_ack(offset).ok()) {
    input_.trim(offset);
    pump_input();
  }
}

void Terminal::on_exit(int32_t code, const std::string& signal) {
  if (exit_code_) return;  // a repeat after a reconnect: the same event
  exit_code_ = code;
  exit_signal_ = signal;
  set_status(TerminalStatus::kExited);
  maybe_ack();
  broadcast({{"type", "exit"}, {"code", code}, {"signal", signal}});
}

void Terminal::drop_viewers(const std::string& reason) {
  auto viewers = std::move(viewers_);
  viewers_.clear();
  fed_.clear();
  for (auto& [v, cursor] : viewers) v->terminal_gone(reason);
}

void Terminal::drop_share_viewers(const std::string& share_id, const std::string& reason) {
  std::vector<OutputSink*> gone;
  for (auto& [v, cursor] : viewers_)
    if (!share_id.empty() && v->share_id() == share_id) gone.push_back(v);
  for (auto* v : gone) {
    viewers_.erase(v);
    fed_.erase(v);
    v->terminal_gone(reason);
  }
  if (!gone.empty()) broadcast_viewers();
}

size_t Terminal::viewer_count() const {
  size_t n = 0;
  for (const auto& [v, cursor] : viewers_) n += v->is_viewer();
  return n;
}

void Terminal::broadcast_viewers() { broadcast({{"type", "viewers"}, {"count", viewer_count()}}); }

void Terminal::set_status(TerminalStatus status) {
  if (status == status_) return;
  status_ = status;
  broadcast({{"type", "status"}, {"status", to_string(status)}});
}

void Terminal::broadcast(const nlohmann::json& event) {
  for (auto& [v, cursor] : viewers_) v->queue_event(event);
}

void Terminal::add_viewer(OutputSink* v, std::optional<uint64_t> since) {
  viewers_[v] = since.value_or(output_.start());
  fed_[v] = clock_();
  if (since)
    v->queue_event({{"type", "replay"}, {"since", *since}, {"start", output_.start()}, {"end", output_.end()}});
  v->queue_event({{"type", "status"}, {"status", to_string(status_)}});
  if (exit_code_) v->queue_event({{"type", "exit"}, {"code", *exit_code_}, {"signal", exit_signal_}});
  if (v->is_viewer()) broadcast_viewers();
  v->wake();
}

void Terminal::remove_viewer(OutputSink* v) {
  bool viewer = v->is_viewer();
  fed_.erase(v);
  if (viewers_.erase(v) == 0) return;
  if (viewer) broadcast_viewers();
  maybe_ack();  // the slowest viewer may just have left
}

Terminal::Chunk Terminal::take_output(OutputSink* v, size_t max_bytes) {
  auto it = viewers_.find(v);
  if (it == viewers_.end()) return {};
  uint64_t& cursor = it->second;
  if (cursor < output_.start()) {
    v->queue_event({{"type", "gap"}, {"from", cursor}, {"to", output_.start()}});
    cursor = output_.start();
  }
  // A cursor beyond the ring's end (a viewer resuming before the agent has replayed after a hub
  // restart) simply waits for the bytes to arrive.
  if (cursor >= output_.end()) return {};
  auto view = output_.view(cursor, max_bytes);
  if (!view.ok() || view->size() == 0) return {};
  Chunk chunk{cursor, view->first, view->second};
  cursor += view->size();
  fed_[v] = clock_();
  maybe_ack();
  return chunk;
}

bool Terminal::has_output_for(OutputSink* v) const {
  auto it = viewers_.find(v);
  return it != viewers_.end() && it->second < output_.end();
}

void Terminal::maybe_ack() {
  // Consumed = what the slowest sink has taken; with none attached, everything received. A
  // stalled viewer is left out while another keeps up (kStallAfter).
  uint64_t consumed = out_cursor_.received();
  auto now = clock_();
  bool keeping_up = false;
  for (const auto& [v, cursor] : viewers_) keeping_up = keeping_up || (v->is_viewer() && !stalled(v, cursor, now));
  for (const auto& [v, cursor] : viewers_)
    if (!(keeping_up && v->is_viewer() && stalled(v, cursor, now))) consumed = std::min(consumed, std::max(cursor, output_.start()));
  out_cursor_.on_consumed(consumed);
  if (!agent_) return;
  // After the exit, everything held is ACKed at once: the agent waits for that to send CLOSE.
  if (auto ack = out_cursor_.take_ack(exit_code_.has_value())) agent_->send(protocol::Ack{channel_, Stream::kOutput, *ack});
}

bool Terminal::stalled(OutputSink* v, uint64_t cursor, Clock::time_point now) const {
  auto it = fed_.find(v);
  return cursor < output_.end() && it != fed_.end() && now - it->second >= kStallAfter;
}

Status Terminal::send_input(std::span<const uint8_t> bytes) {
  if (ended(status_))
    return make_error("not_running", "the terminal is " + to_string(status_) + ": its input goes nowhere (" +
                                         std::to_string(bytes.size()) + " bytes dropped)");
  if (input_.size() + bytes.size() > input_.capacity())
    return make_error("input_dropped", "the terminal's agent is not taking input; " + std::to_string(bytes.size()) +
                                           " bytes dropped");
  last_activity_ = int64_t(std::time(nullptr));
  input_.append(bytes);
  for (auto& [v, cursor] : viewers_) v->typed(bytes);
  pump_input();
  return Ok{};
}

void Terminal::pump_input() {
  if (!agent_) return;
  while (in_window_.available() > 0 && in_window_.sent() < input_.end()) {
    size_t n = std::min({in_window_.available(), protocol::kMaxChunk, size_t(input_.end() - in_window_.sent())});
    auto view = input_.view(in_window_.sent(), n);
    if (!view.ok()) return;
    std::vector<uint8_t> chunk(view->first.begin(), view->first.end());
    chunk.insert(chunk.end(), view->second.begin(), view->second.end());
    agent_->send_data(channel_, Stream::kInput, in_window_.sent(), chunk);
    (void)in_window_.on_sent(chunk.size());
  }
}

void Terminal::resize(uint16_t cols, uint16_t rows) {
  cols = std::clamp<uint16_t>(cols, 1, kMaxSize);
  rows = std::clamp<uint16_t>(rows, 1, kMaxSize);
  if (cols != cols_ || rows != rows_) {
    cols_ = cols;
    rows_ = rows;
    for (auto& [v, cursor] : viewers_) v->resized(cols, rows);
  }
  if (!agent_ || (cols == sent_cols_ && rows == sent_rows_)) return;
  sent_cols_ = cols;
  sent_rows_ = rows;
  agent_->send(protocol::Resize{channel_, cols, rows});
}

void Terminal::send_signal(const std::string& name) {
  if (agent_) agent_->send(protocol::Signal{channel_, name});
}

}  // namespace rx::hub
