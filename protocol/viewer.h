// The viewer protocol (subprotocol rexec.term.v1) used by browsers, the CLI and embeds: one byte of
// opcode, then the payload. Simple enough to implement in an afternoon; SPEC.md has the table.
// Decoded messages are views into the caller's buffer: keep it alive while you use them.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include "protocol/error.h"

namespace rx::protocol::viewer {

enum Opcode : uint8_t {
  kInput = 0x01,   // client -> hub: raw bytes
  kResize = 0x02,  // client -> hub: u16 BE cols, u16 BE rows
  kOutput = 0x81,  // hub -> client: u64 BE offset of the first byte, then raw bytes
  kEvent = 0x82,   // hub -> client: UTF-8 JSON object
};

struct Input { std::span<const uint8_t> bytes; };
struct Resize { uint16_t cols = 0; uint16_t rows = 0; };
struct Output { uint64_t offset = 0; std::span<const uint8_t> bytes; };
struct Event { std::string_view json; };
struct UnknownOp { uint8_t opcode = 0; };  // ignored by receivers, like unknown frame types

using ClientMessage = std::variant<Input, Resize, UnknownOp>;
using ServerMessage = std::variant<Output, Event, UnknownOp>;

// Errors: empty_message, message_too_large (over kMaxViewerMessage, checked first),
// bad_length (resize not exactly 4 bytes of payload, output shorter than its offset),
// bad_value (resize with 0 cols or rows), bad_utf8 (event not valid UTF-8),
// wrong_direction (a server opcode sent by a client or the reverse).
Result<ClientMessage> decode_client(std::span<const uint8_t> message);
Result<ServerMessage> decode_server(std::span<const uint8_t> message);

// Encoders put `headroom` zero bytes first (LWS_PRE for libwebsockets).
std::vector<uint8_t> encode_input(std::span<const uint8_t> bytes, size_t headroom = 0);
std::vector<uint8_t> encode_resize(uint16_t cols, uint16_t rows, size_t headroom = 0);
std::vector<uint8_t> encode_output(uint64_t offset, std::span<const uint8_t> bytes, size_t headroom = 0);
// Output straight from a ReplayRing view (two pieces when the bytes wrap around the ring).
std::vector<uint8_t> encode_output(uint64_t offset, std::span<const uint8_t> first, std::span<const uint8_t> second,
                                   size_t headroom);
std::vector<uint8_t> encode_event(std::string_view json, size_t headroom = 0);

// True when `text` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view text);

}  // namespace rx::protocol::viewer
