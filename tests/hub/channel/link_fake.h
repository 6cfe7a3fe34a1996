// An agent link for channel-layer unit tests: records what the hub sends, as the agent would
// receive it (the real link, AgentSession over a WebSocket, is tested in tests/integration).
#pragma once

#include <string>
#include <vector>

#include "hub/link/agent_link.h"

namespace rx::hub {

class RecordingLink final : public AgentLink {
 public:
  explicit RecordingLink(AgentRecord agent) : agent_(std::move(agent)) {}
  const AgentRecord& agent() const override { return agent_; }
  void send(const protocol::Frame& frame) override { frames.push_back(frame); }
  void send_data(uint32_t channel, protocol::Stream stream, uint64_t offset, std::span<const uint8_t> bytes) override {
    frames.push_back(protocol::Data{channel, stream, offset, std::vector<uint8_t>(bytes.begin(), bytes.end())});
  }
  void close(uint16_t code, const std::string& reason) override {
    closed_code = code;
    closed_reason = reason;
  }
  // The frames of one kind sent so far.
  template <typename T>
  std::vector<T> sent() const {
    std::vector<T> out;
    for (const auto& f : frames)
      if (auto* x = std::get_if<T>(&f)) out.push_back(*x);
    return out;
  }

  std::vector<protocol::Frame> frames;
  uint16_t closed_code = 0;
  std::string closed_reason;

 private:
  AgentRecord agent_;
};

}  // namespace rx::hub
