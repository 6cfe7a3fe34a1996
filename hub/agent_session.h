// AgentSession: one agent's WebSocket (rexec.agent.v1) on the hub. It decodes frames (a
// malformed one closes the link with 4400 and the decoder's reason), insists on HELLO first,
// negotiates the version, and hands everything else to the Relay. Frames to the agent wait in
// a queue until lws says the socket is writable.
#pragma once

#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "hub/relay.h"
#include "hub/server.h"

namespace rx::hub {

class AgentSession final : public WsSession, public AgentLink {
 public:
  // `new_credential` is set when this connection enrolled: WELCOME carries it to the agent.
  AgentSession(Relay& relay, AgentRecord agent, std::optional<std::string> new_credential);

  // WsSession
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
  void enqueue(std::vector<uint8_t> frame);
  Relay& relay_;
  AgentRecord agent_;
  std::optional<std::string> new_credential_;
  WsConn* conn_ = nullptr;
  bool welcomed_ = false;
  bool closed_ = false;
  std::deque<std::vector<uint8_t>> out_;
};

}  // namespace rx::hub
