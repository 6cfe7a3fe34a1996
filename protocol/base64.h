// Standard base64 (RFC 4648, with padding): JSON renderings of binary data (test vectors, the exec
// API's output). Decoding is strict: bad characters, bad padding or bad length are errors.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/error.h"

namespace rx::protocol {

std::string base64_encode(std::span<const uint8_t> bytes);
Result<std::vector<uint8_t>> base64_decode(std::string_view text);

}  // namespace rx::protocol
