// OutputSink: where a terminal's output goes. A Terminal keeps its output in one ReplayRing and a
// cursor per sink; it wakes a sink when there is more, and the sink takes output at its own pace
// (Terminal::take_output), encoding it for its own wire (ViewerSession: the viewer protocol;
// a recorder: its file). Credit belongs to the terminal, not to any sink: it ACKs the agent up
// to what every sink has taken, so the slowest sink paces the agent by rule, and a sink that
// leaves gives its share back at once.
//
// A sink that is not a viewer (the recorder) is not counted in the terminal's viewers and not
// told of viewer counts; it must take output as soon as it is woken, so it never holds credit.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

namespace rx::hub {

class OutputSink {
 public:
  virtual ~OutputSink() = default;
  virtual void wake() = 0;  // there is output or an event to send
  virtual void queue_event(const nlohmann::json& event) = 0;
  // The terminal was deleted: the sink must drop its pointer to it and close.
  virtual void terminal_gone(const std::string& reason) = 0;
  // The share link this sink came in by (empty: a signed-in user, or not a viewer).
  virtual const std::string& share_id() const = 0;
  // False for sinks that are not people watching (the recorder).
  virtual bool is_viewer() const { return true; }
  // The terminal's size changed (viewers learn it from their own resize; a recorder writes it).
  virtual void resized(uint16_t /*cols*/, uint16_t /*rows*/) {}
  // Input a viewer typed, once the terminal took it (only a recorder asked to keep input cares).
  virtual void typed(std::span<const uint8_t> /*bytes*/) {}
};

}  // namespace rx::hub
