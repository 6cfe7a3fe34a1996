// Encoding and decoding of agent-link frames with msgpack-c. Pure functions: no I/O, no globals.
// decode() never throws and never crashes: the size cap is checked before msgpack sees a byte,
// msgpack's own limits bound every allocation, and every field is type- and range-checked.
// Error codes: empty_frame, frame_too_large, truncated, not_msgpack, trailing_bytes, too_deep,
// too_large, not_an_array, missing_field, bad_type, out_of_range, bad_value (SPEC.md, "Errors").
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "protocol/error.h"
#include "protocol/frame.h"

namespace rx::protocol {

// Encodes `frame` after `headroom` zero bytes (libwebsockets wants LWS_PRE bytes before a payload).
std::vector<uint8_t> encode(const Frame& frame, size_t headroom = 0);

// DATA without building a Data (no copy of the payload into a vector first): the relay's hot path.
std::vector<uint8_t> encode_data(uint32_t channel, Stream stream, uint64_t offset,
                                 std::span<const uint8_t> bytes, size_t headroom = 0);

// Decodes exactly one frame; the whole of `bytes` must be that frame.
Result<Frame> decode(std::span<const uint8_t> bytes);

}  // namespace rx::protocol
