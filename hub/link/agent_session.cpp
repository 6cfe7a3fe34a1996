#include "hub/link/agent_session.h"

#include "hub/base/guard.h"
#include "protocol/codec.h"
#include "protocol/labels.h"
#include "protocol/limits.h"
#include "protocol/log_line.h"

namespace rx::hub {

using namespace protocol;

AgentSession::AgentSession(LinkHandler& handler, AgentRecord agent, std::optional<std::string> new_credential)
    : handler_(handler), agent_(std::move(agent)), new_credential_(std::move(new_credential)) {}

size_t AgentSession::max_message() const { return kMaxFrameBytes; }

void AgentSession::on_message(WsConn& conn, std::span<const uint8_t> message, bool binary) {
  if (closed_) return;
  if (!guarded("agent.message", [&] { handle(conn, message, binary); })) close(1011, "internal error");
}

void AgentSession::handle(WsConn&, std::span<const uint8_t> message, bool binary) {
  if (!binary) {
    close(1003, "the agent link carries binary frames only");
    return;
  }
  if (welcomed_) {
    if (auto data = peek_data(message)) {  // the hot path: no copy of the payload
      handler_.agent_data(*this, *data);
      return;
    }
  }
  auto frame = decode(message);
  if (!frame) {
    log("warn", "agent.bad_frame", {{"agent", agent_.id}, {"code", frame.error().code}, {"reason", frame.error().message}});
    close(4400, frame.error().code + ": " + frame.error().message);
    return;
  }
  if (!welcomed_) {
    auto* hello = std::get_if<Hello>(&*frame);
    if (!hello) {
      close(4400, "expected HELLO first, got " + std::string(frame_type_name(frame_type(*frame))));
      return;
    }
    if (hello->proto_max < kProtocolVersionMin || hello->proto_min > kProtocolVersionMax) {
      std::string why = "hub speaks " + std::to_string(kProtocolVersionMin) + ".." + std::to_string(kProtocolVersionMax) +
                        ", agent speaks " + std::to_string(hello->proto_min) + ".." + std::to_string(hello->proto_max);
      send(ErrorFrame{0, "unsupported_version", why});
      close(4400, "unsupported_version: " + why);
      return;
    }
    // Labels are shown, stored and logged: an agent that sends bad ones is told why, and the
    // agent checks its own at startup, so this is a bug or a hostile peer, not a typo.
    if (auto e = check_labels(hello->labels)) {
      send(ErrorFrame{0, e->code, e->message});
      close(4400, e->code + ": " + e->message);
      return;
    }
    send(handler_.agent_hello(*this, *hello, new_credential_));
    new_credential_.reset();  // shown once
    welcomed_ = true;
    handler_.agent_ready(*this, *hello);
    return;
  }
  if (std::holds_alternative<Hello>(*frame) || std::holds_alternative<Welcome>(*frame) ||
      std::holds_alternative<Open>(*frame) || std::holds_alternative<Resize>(*frame) ||
      std::holds_alternative<Signal>(*frame)) {
    close(4400, std::string(frame_type_name(frame_type(*frame))) + " is not sent by an agent after HELLO");
    return;
  }
  handler_.agent_frame(*this, *frame);
}

void AgentSession::send(const Frame& frame) {
  if (closed_) return;
  auto bytes = encode(frame, kFrameHeadroom);
  if (!bytes) {
    // Callers check requests against the limits before a frame is made (check_limits); one that
    // still breaks them is a hub bug, and sending it would make the agent drop its whole link.
    log("error", "agent.frame_refused", {{"agent", agent_.id}, {"code", bytes.error().code}, {"reason", bytes.error().message}});
    return;
  }
  auto* resize = std::get_if<Resize>(&frame);
  size_t size = bytes->size();
  enqueue(Out{std::move(bytes).value(), size, true, resize ? resize->channel : 0});
}

void AgentSession::send_data(uint32_t channel, Stream stream, uint64_t offset, std::span<const uint8_t> bytes) {
  auto frame = encode_data(channel, stream, offset, bytes, kFrameHeadroom);
  size_t size = frame.size();
  enqueue(Out{std::move(frame), size, false, 0});
}

void AgentSession::enqueue(Out out) {
  if (closed_) return;
  if (out.resize_channel != 0) {
    // The agent needs only the latest size of a terminal: a queued RESIZE takes the new one.
    if (auto it = queued_resize_.find(out.resize_channel); it != queued_resize_.end()) {
      auto& queued = out_[size_t(it->second - front_seq_)];
      queued_bytes_ = queued_bytes_ - queued.size + out.size;
      queued_control_ = queued_control_ - queued.size + out.size;
      queued.bytes = std::move(out.bytes);
      queued.size = out.size;
      return;
    }
    queued_resize_[out.resize_channel] = front_seq_ + out_.size();
  }
  queued_bytes_ += out.size;
  if (out.control) queued_control_ += out.size;
  out_.push_back(std::move(out));
  if (queued_bytes_ > kMaxQueuedBytes || queued_control_ > kMaxQueuedControl) {
    log("warn", "agent.backlog", {{"agent", agent_.id}, {"bytes", std::to_string(queued_bytes_)},
                                  {"control_bytes", std::to_string(queued_control_)}});
    close(4008, "send queue over its bound: the agent is not reading; reconnect");
    return;
  }
  if (conn_) conn_->want_write();
}

void AgentSession::pop_front() {
  Out& front = out_.front();
  queued_bytes_ -= front.size;
  if (front.control) queued_control_ -= front.size;
  if (front.resize_channel != 0) queued_resize_.erase(front.resize_channel);
  out_.pop_front();
  ++front_seq_;
}

void AgentSession::on_writable(WsConn& conn) {
  bool ok = guarded("agent.writable", [&] {
    // Several frames per callback while the socket takes them (one poll round each is slow).
    for (int budget = 16; budget > 0 && !out_.empty(); --budget) {
      if (!conn.send(out_.front().bytes)) {
        close(1011, "write failed");
        return;
      }
      pop_front();
      if (out_.empty() || conn.choked()) break;  // (choked() is a syscall: only when more is queued)
    }
    if (!out_.empty()) conn.want_write();
  });
  if (!ok) close(1011, "internal error");
}

void AgentSession::close(uint16_t code, const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  // Frames still queued would go out before the close frame: a backlog closed for its size goes now.
  if (code == 4008) {
    out_.clear();
    queued_resize_.clear();
    queued_bytes_ = queued_control_ = 0;
  }
  log("info", "agent.close", {{"agent", agent_.id}, {"code", std::to_string(code)}, {"reason", reason}});
  if (conn_) conn_->close(code, reason);
  guarded("agent.gone", [&] { handler_.agent_gone(*this); });
}

void AgentSession::on_close() {
  conn_ = nullptr;
  closed_ = true;
  guarded("agent.gone", [&] { handler_.agent_gone(*this); });
}

}  // namespace rx::hub
