// peek_data (codec.h): the relay's DATA fast path, canonical bytes read by hand without msgpack-c.
// Apart from codec_decode.cpp, which has the final word: the fuzzer checks that the two agree.
#include "protocol/codec.h"

#include <optional>

#include "protocol/limits.h"

namespace rx::protocol {

namespace {
// Reads a msgpack unsigned integer in the smallest encoding msgpack-c's packer would choose
// (so only canonical frames take the fast path).
bool read_uint(std::span<const uint8_t> b, size_t& i, uint64_t& v) {
  if (i >= b.size()) return false;
  uint8_t t = b[i++];
  if (t <= 0x7f) {
    v = t;
    return true;
  }
  size_t n = t == 0xcc ? 1 : t == 0xcd ? 2 : t == 0xce ? 4 : t == 0xcf ? 8 : 0;
  if (n == 0 || i + n > b.size()) return false;
  v = 0;
  for (size_t k = 0; k < n; ++k) v = (v << 8) | b[i++];
  uint64_t min = n == 1 ? 0x80 : n == 2 ? 0x100 : n == 4 ? 0x10000 : 0x100000000ull;
  return v >= min;
}
}  // namespace

std::optional<DataView> peek_data(std::span<const uint8_t> b) {
  if (b.size() < 7 || b.size() > kMaxFrameBytes || b[0] != 0x95 || b[1] != uint8_t(FrameType::kData)) return std::nullopt;
  size_t i = 2;
  uint64_t channel = 0, stream = 0, offset = 0;
  if (!read_uint(b, i, channel) || channel > UINT32_MAX) return std::nullopt;
  if (!read_uint(b, i, stream) || stream > kMaxStream) return std::nullopt;
  if (!read_uint(b, i, offset)) return std::nullopt;
  if (i >= b.size()) return std::nullopt;
  uint8_t t = b[i++];
  size_t n = t == 0xc4 ? 1 : t == 0xc5 ? 2 : t == 0xc6 ? 4 : 0;
  if (n == 0 || i + n > b.size()) return std::nullopt;
  uint64_t len = 0;
  for (size_t k = 0; k < n; ++k) len = (len << 8) | b[i++];
  uint64_t min = n == 1 ? 0 : n == 2 ? 0x100 : 0x10000;
  if (len < min || len > kMaxChunk || len != b.size() - i || UINT64_MAX - offset < len) return std::nullopt;
  return DataView{uint32_t(channel), Stream(stream), offset, b.subspan(i)};
}

}  // namespace rx::protocol
