#include "protocol/viewer.h"

#include "protocol/limits.h"

namespace rx::protocol::viewer {
namespace {

// The hub's messages carry a full 64 KiB chunk plus opcode and offset.
constexpr size_t kMaxServerMessage = kMaxViewerMessage + 16;

std::vector<uint8_t> with_opcode(Opcode op, size_t payload, size_t headroom) {
  std::vector<uint8_t> out;
  out.reserve(headroom + 1 + payload);
  out.resize(headroom);
  out.push_back(op);
  return out;
}

Status check_size(std::span<const uint8_t> m, size_t cap) {
  if (m.empty()) return make_error("empty_message", "message is empty");
  if (m.size() > cap)
    return make_error("message_too_large",
                      "message of " + std::to_string(m.size()) + " bytes is over the limit of " + std::to_string(cap));
  return Ok{};
}

}  // namespace

Result<ClientMessage> decode_client(std::span<const uint8_t> m) {
  if (auto s = check_size(m, kMaxViewerMessage); !s) return s.error();
  auto payload = m.subspan(1);
  switch (m[0]) {
    case kInput:
      return ClientMessage{Input{payload}};
    case kResize: {
      if (payload.size() != 4)
        return make_error("bad_length", "resize payload must be 4 bytes, got " + std::to_string(payload.size()));
      Resize r{uint16_t((payload[0] << 8) | payload[1]), uint16_t((payload[2] << 8) | payload[3])};
      if (r.cols == 0 || r.rows == 0) return make_error("bad_value", "resize to 0 columns or rows");
      return ClientMessage{r};
    }
    case kOutput:
    case kEvent:
      return make_error("wrong_direction", "opcode " + std::to_string(m[0]) + " is sent by the hub, not a client");
    default:
      return ClientMessage{UnknownOp{m[0]}};
  }
}

Result<ServerMessage> decode_server(std::span<const uint8_t> m) {
  if (auto s = check_size(m, kMaxServerMessage); !s) return s.error();
  auto payload = m.subspan(1);
  switch (m[0]) {
    case kOutput: {
      if (payload.size() < 8)
        return make_error("bad_length", "output needs an 8-byte offset, got " + std::to_string(payload.size()) + " bytes");
      uint64_t offset = 0;
      for (size_t i = 0; i < 8; ++i) offset = (offset << 8) | payload[i];
      return ServerMessage{Output{offset, payload.subspan(8)}};
    }
    case kEvent: {
      if (payload.empty()) return make_error("bad_length", "event without a JSON object");
      std::string_view json(reinterpret_cast<const char*>(payload.data()), payload.size());
      if (!valid_utf8(json)) return make_error("bad_utf8", "event is not valid UTF-8");
      return ServerMessage{Event{json}};
    }
    case kInput:
    case kResize:
      return make_error("wrong_direction", "opcode " + std::to_string(m[0]) + " is sent by a client, not the hub");
    default:
      return ServerMessage{UnknownOp{m[0]}};
  }
}

std::vector<uint8_t> encode_input(std::span<const uint8_t> bytes, size_t headroom) {
  auto out = with_opcode(kInput, bytes.size(), headroom);
  out.insert(out.end(), bytes.begin(), bytes.end());
  return out;
}

std::vector<uint8_t> encode_resize(uint16_t cols, uint16_t rows, size_t headroom) {
  auto out = with_opcode(kResize, 4, headroom);
  out.insert(out.end(), {uint8_t(cols >> 8), uint8_t(cols), uint8_t(rows >> 8), uint8_t(rows)});
  return out;
}

std::vector<uint8_t> encode_output(uint64_t offset, std::span<const uint8_t> bytes, size_t headroom) {
  return encode_output(offset, bytes, {}, headroom);
}

std::vector<uint8_t> encode_output(uint64_t offset, std::span<const uint8_t> first, std::span<const uint8_t> second,
                                   size_t headroom) {
  auto out = with_opcode(kOutput, 8 + first.size() + second.size(), headroom);
  for (int s = 56; s >= 0; s -= 8) out.push_back(uint8_t(offset >> s));
  out.insert(out.end(), first.begin(), first.end());
  out.insert(out.end(), second.begin(), second.end());
  return out;
}

std::vector<uint8_t> encode_event(std::string_view json, size_t headroom) {
  auto out = with_opcode(kEvent, json.size(), headroom);
  out.insert(out.end(), json.begin(), json.end());
  return out;
}

bool valid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  size_t n = text.size();
  for (size_t i = 0; i < n;) {
    uint8_t c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;  // continuation byte, overlong lead (0xc0, 0xc1) or beyond U+10FFFF
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;  // overlong
    if (cp >= 0xd800 && cp <= 0xdfff) return false;                            // surrogate
    if (cp > 0x10ffff) return false;
    i += len;
  }
  return true;
}

}  // namespace rx::protocol::viewer
