// The agent link as the layers above see it, and what they implement to hear it. AgentSession
// (agent_session.h) is the one link; the channel layer's Relay is the one handler. Both sides
// meet here so the link needs nothing from above it: frames go up through LinkHandler, and down
// through AgentPort / AgentLink.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "hub/store/store.h"
#include "protocol/codec.h"
#include "protocol/frame.h"

namespace rx::hub {

// What one channel (a Terminal, an exec target) needs from the link it lives on.
class AgentPort {
 public:
  virtual ~AgentPort() = default;
  virtual void send(const protocol::Frame& frame) = 0;
  virtual void send_data(uint32_t channel, protocol::Stream stream, uint64_t offset, std::span<const uint8_t> bytes) = 0;
};

// An agent's live link: its channels' port plus who it is and how to end it.
class AgentLink : public AgentPort {
 public:
  virtual const AgentRecord& agent() const = 0;
  virtual void close(uint16_t code, const std::string& reason) = 0;
};

// Who hears a link: told after a valid HELLO (and answers it), then of every frame until the
// link is gone. Calls come on the hub's loop thread, in the order the agent sent.
class LinkHandler {
 public:
  virtual ~LinkHandler() = default;
  // After a valid HELLO: what to answer. `new_credential` is set when this connection enrolled.
  virtual protocol::Welcome agent_hello(AgentLink& link, const protocol::Hello& hello,
                                        const std::optional<std::string>& new_credential) = 0;
  // After WELCOME went out.
  virtual void agent_ready(AgentLink& link, const protocol::Hello& hello) = 0;
  virtual void agent_frame(AgentLink& link, const protocol::Frame& frame) = 0;
  virtual void agent_data(AgentLink& link, const protocol::DataView& data) = 0;
  virtual void agent_gone(AgentLink& link) = 0;
};

}  // namespace rx::hub
