#include "hub/agent_session.h"

#include "hub/log.h"
#include "protocol/codec.h"
#include "protocol/limits.h"

namespace rx::hub {

using namespace protocol;

AgentSession::AgentSession(Relay& relay, AgentRecord agent, std::optional<std::string> new_credential)
    : relay_(relay), agent_(std::move(agent)), new_credential_(std::move(new_credential)) {}

size_t AgentSession::max_message() const { return kMaxFrameBytes; }

void AgentSession::on_message(WsConn&, std::span<const uint8_t> message, bool binary) {
  if (closed_) return;
  if (!binary) {
    close(1003, "the agent link carries binary frames only");
    return;
  }
  if (welcomed_) {
    if (auto data = peek_data(message)) {  // the hot path: no copy of the payload
      relay_.agent_data(*this, *data);
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
    send(relay_.agent_hello(*this, *hello, new_credential_));
    new_credential_.reset();  // shown once
    welcomed_ = true;
    relay_.agent_ready(*this, *hello);
    return;
  }
  if (std::holds_alternative<Hello>(*frame) || std::holds_alternative<Welcome>(*frame) ||
      std::holds_alternative<Open>(*frame) || std::holds_alternative<Resize>(*frame) ||
      std::holds_alternative<Signal>(*frame)) {
    close(4400, std::string(frame_type_name(frame_type(*frame))) + " is not sent by an agent after HELLO");
    return;
  }
  relay_.agent_frame(*this, *frame);
}

void AgentSession::send(const Frame& frame) { enqueue(encode(frame, kFrameHeadroom)); }

void AgentSession::send_data(uint32_t channel, Stream stream, uint64_t offset, std::span<const uint8_t> bytes) {
  enqueue(encode_data(channel, stream, offset, bytes, kFrameHeadroom));
}

void AgentSession::enqueue(std::vector<uint8_t> frame) {
  if (closed_) return;
  out_.push_back(std::move(frame));
  if (conn_) conn_->want_write();
}

void AgentSession::on_writable(WsConn& conn) {
  // Several frames per callback while the socket takes them (one poll round each is slow).
  for (int budget = 16; budget > 0 && !out_.empty(); --budget) {
    if (!conn.send(out_.front())) {
      close(1011, "write failed");
      return;
    }
    out_.pop_front();
    if (out_.empty() || conn.choked()) break;  // (choked() is a syscall: only when more is queued)
  }
  if (!out_.empty()) conn.want_write();
}

void AgentSession::close(uint16_t code, const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  log("info", "agent.close", {{"agent", agent_.id}, {"code", std::to_string(code)}, {"reason", reason}});
  if (conn_) conn_->close(code, reason);
  relay_.agent_gone(*this);
}

void AgentSession::on_close() {
  conn_ = nullptr;
  closed_ = true;
  relay_.agent_gone(*this);
}

}  // namespace rx::hub
