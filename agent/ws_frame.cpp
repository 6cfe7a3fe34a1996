#include "agent/ws_frame.h"

#include <sys/random.h>

#include <cstring>
#include <random>

namespace rx::agent {

void mask_payload(std::span<uint8_t> data, std::array<uint8_t, 4> key) {
  uint32_t k32;
  std::memcpy(&k32, key.data(), 4);
  uint64_t k64 = (uint64_t(k32) << 32) | k32;  // key bytes in memory order, twice
  uint8_t* p = data.data();
  size_t n = data.size(), i = 0;
  for (; i + 8 <= n; i += 8) {  // memcpy: no alignment assumption; compiles to plain loads
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    v ^= k64;
    std::memcpy(p + i, &v, 8);
  }
  for (; i < n; ++i) p[i] ^= key[i & 3];
}

std::array<uint8_t, 4> ClientFramer::next_key() {
  if (used_ + 4 > keys_.size()) {
    // getrandom on Linux >= 3.17 does not fail for <= 256 bytes once the pool is ready; if it
    // ever does, fall back to a seeded engine rather than sending a predictable zero key.
    if (getrandom(keys_.data(), keys_.size(), 0) != ssize_t(keys_.size())) {
      std::random_device rd;
      for (auto& b : keys_) b = uint8_t(rd());
    }
    used_ = 0;
  }
  std::array<uint8_t, 4> k;
  std::memcpy(k.data(), keys_.data() + used_, 4);
  used_ += 4;
  return k;
}

std::span<uint8_t> ClientFramer::frame(std::span<uint8_t> payload, size_t headroom) {
  uint8_t header[kMaxClientHeader];
  size_t h = 0, len = payload.size();
  header[h++] = 0x80 | 0x2;  // FIN, binary
  if (len < 126) {
    header[h++] = uint8_t(0x80 | len);
  } else if (len <= 0xffff) {
    header[h++] = 0x80 | 126;
    header[h++] = uint8_t(len >> 8);
    header[h++] = uint8_t(len);
  } else {
    header[h++] = 0x80 | 127;
    for (int shift = 56; shift >= 0; shift -= 8) header[h++] = uint8_t(uint64_t(len) >> shift);
  }
  if (h + 4 > headroom) return {};  // before drawing a key: a refused frame spends none
  auto key = next_key();
  std::memcpy(header + h, key.data(), 4);
  h += 4;
  mask_payload(payload, key);
  uint8_t* start = payload.data() - h;
  std::memcpy(start, header, h);
  return {start, h + len};
}

}  // namespace rx::agent
