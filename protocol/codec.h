// Encoding and decoding of agent-link frames with msgpack-c. Pure functions: no I/O, no globals.
// decode() never throws and never crashes: the size cap is checked before msgpack sees a byte,
// msgpack's own limits bound every allocation, and every field is type- and range-checked.
// Error codes: empty_frame, frame_too_large, truncated, not_msgpack, trailing_bytes, too_deep,
// too_large, not_an_array, missing_field, bad_type, out_of_range, bad_value (SPEC.md, "Errors").
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "protocol/error.h"
#include "protocol/frame.h"

namespace rx::protocol {

// Encodes `frame` after `headroom` zero bytes (libwebsockets wants LWS_PRE bytes before a payload).
// A frame the peer's decoder would refuse for its size is refused here instead of produced:
// too_large for a string, bin, array or map over its limit (limits.h; the message names the
// field, e.g. "OPEN.env.PATH: a string of 20000 bytes is over the limit of 16384 bytes"),
// frame_too_large for a whole frame over kMaxFrameBytes. Values are not checked beyond sizes:
// tests build frames with bad values on purpose.
Result<std::vector<uint8_t>> encode(const Frame& frame, size_t headroom = 0);

// What encode() would say, without keeping the bytes (the hub asks before it accepts a request
// that becomes a frame).
Status check_limits(const Frame& frame);

// DATA without building a Data (no copy of the payload into a vector first): the relay's hot path.
// Unchecked: callers cut payloads at kMaxChunk.
std::vector<uint8_t> encode_data(uint32_t channel, Stream stream, uint64_t offset,
                                 std::span<const uint8_t> bytes, size_t headroom = 0);

// DATA straight from a ReplayRing view (two pieces when the bytes wrap around the ring).
std::vector<uint8_t> encode_data(uint32_t channel, Stream stream, uint64_t offset, std::span<const uint8_t> first,
                                 std::span<const uint8_t> second, size_t headroom = 0);

// Decodes exactly one frame; the whole of `bytes` must be that frame.
Result<Frame> decode(std::span<const uint8_t> bytes);

// The relay's fast path: a DATA frame in its canonical encoding, with `bytes` pointing into the
// message instead of a copy. nullopt for anything else (another type, extra fields, a
// non-canonical or malformed encoding): the caller then uses decode(), which has the final word
// and the error message. The fuzzer checks that the two always agree.
struct DataView {
  uint32_t channel = 0;
  Stream stream = Stream::kOutput;
  uint64_t offset = 0;
  std::span<const uint8_t> bytes;
};
std::optional<DataView> peek_data(std::span<const uint8_t> bytes);

}  // namespace rx::protocol
