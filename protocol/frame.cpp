#include "protocol/frame.h"

namespace rx::protocol {

std::string_view frame_type_name(uint32_t type) {
  switch (static_cast<FrameType>(type)) {
    case FrameType::kHello: return "HELLO";
    case FrameType::kWelcome: return "WELCOME";
    case FrameType::kOpen: return "OPEN";
    case FrameType::kOpened: return "OPENED";
    case FrameType::kData: return "DATA";
    case FrameType::kAck: return "ACK";
    case FrameType::kResize: return "RESIZE";
    case FrameType::kSignal: return "SIGNAL";
    case FrameType::kExit: return "EXIT";
    case FrameType::kClose: return "CLOSE";
    case FrameType::kStats: return "STATS";
    case FrameType::kError: return "ERROR";
    case FrameType::kFile: return "FILE";
  }
  return "UNKNOWN";
}

namespace {
// The variant's alternatives are in wire-type order (Hello = 1 ... FileOpen = 13, then Unknown);
// the static_asserts keep the two from drifting apart when a type is appended.
static_assert(std::variant_size_v<Frame> == 14);
static_assert(std::is_same_v<std::variant_alternative_t<11, Frame>, ErrorFrame>);
static_assert(std::is_same_v<std::variant_alternative_t<12, Frame>, FileOpen>);
}  // namespace

uint32_t frame_type(const Frame& frame) {
  if (const auto* u = std::get_if<Unknown>(&frame)) return u->type;
  return static_cast<uint32_t>(frame.index()) + 1;
}

uint32_t frame_channel(const Frame& frame) {
  return std::visit([](const auto& f) { return f.channel; }, frame);
}

std::string_view channel_kind_name(ChannelKind kind) {
  return kind == ChannelKind::kExec ? "exec" : "pty";
}

}  // namespace rx::protocol
