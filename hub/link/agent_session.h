// AgentSession: one agent's WebSocket (rexec.agent.v1) on the hub. It decodes frames (a
// malformed one closes the link with 4400 and the decoder's reason), insists on HELLO first,
// negotiates the version, and hands everything else to its LinkHandler (the Relay). Frames to
// the agent wait in a queue until the socket is writable. The queue is bounded (protocol/SPEC.md,
// "Bounds"): RESIZEs of a channel coalesce into the latest, and an agent that lets more than
// kMaxQueuedBytes (or kMaxQueuedControl of frames other than DATA) pile up is closed with 4008;
// it reconnects and resumes, nothing is lost.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "hub/link/agent_link.h"
#include "hub/net/server.h"

namespace rx::hub {

class AgentSession final : public WsSession, public AgentLink {
 public:
  // Input DATA is bounded by credit (a window per channel), the rest is not: a generous cap for
  // all of it, a small one for frames that are not DATA (ACKs, ERRORs, OPENs, RESIZEs).
  static constexpr size_t kMaxQueuedBytes = 64 * 1024 * 1024;
  static constexpr size_t kMaxQueuedControl = 1024 * 1024;

  // `new_credential` is set when this connection enrolled: WELCOME carries it to the agent.
  AgentSession(LinkHandler& handler, AgentRecord agent, std::optional<std::string> new_credential);

  // WsSession (each guarded: an exception closes this link with 1011, nothing else)
  void on_open(WsConn& conn) override { conn_ = &conn; }
  void on_message(WsConn& conn, std::span<const uint8_t> message, bool binary) override;
  void on_writable(WsConn& conn) override;
  void on_close() override;
  size_t max_message() const override;
  bool pending() const override { return !out_.empty(); }
  // 4012: the agent reconnects at once instead of backing off (SPEC 1.8). Not 1012: lws 4.1's
  // client predates that code and turns it into 1002.
  void on_shutdown(WsConn&) override { close(4012, "hub restarting"); }

  // AgentLink
  const AgentRecord& agent() const override { return agent_; }
  void send(const protocol::Frame& frame) override;
  void send_data(uint32_t channel, protocol::Stream stream, uint64_t offset, std::span<const uint8_t> bytes) override;
  void close(uint16_t code, const std::string& reason) override;

 private:
  struct Out {
    std::vector<uint8_t> bytes;  // (sending takes them: the counts below use `size`)
    size_t size = 0;
    bool control = false;        // not DATA: counts against kMaxQueuedControl
    uint32_t resize_channel = 0;  // a RESIZE of this channel (a later one replaces it)
  };
  void handle(WsConn& conn, std::span<const uint8_t> message, bool binary);
  void enqueue(Out out);
  void pop_front();
  LinkHandler& handler_;
  AgentRecord agent_;
  std::optional<std::string> new_credential_;
  WsConn* conn_ = nullptr;
  bool welcomed_ = false;
  bool closed_ = false;
  std::deque<Out> out_;
  uint64_t front_seq_ = 0;  // sequence number of out_.front()
  size_t queued_bytes_ = 0, queued_control_ = 0;
  std::map<uint32_t, uint64_t> queued_resize_;  // channel -> sequence number of its queued RESIZE
};

}  // namespace rx::hub
