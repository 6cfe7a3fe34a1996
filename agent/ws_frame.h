// ClientFramer: the agent writes its WebSocket messages itself. A client must mask every payload
// byte (RFC 6455 5.3); lws 4.1 does it one byte at a time, which was over a third of the agent's
// CPU in a stream. Masking eight bytes at a time produces the same frame. The finished frame goes
// out through lws as raw bytes, so lws still buffers a partial write and keeps its own pings and
// closes whole between our frames.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace rx::agent {

// Header bytes (at most 14) written in front of a payload; the headroom must hold them.
inline constexpr size_t kMaxClientHeader = 14;

// XORs `data` with the 4-byte `key`, starting at key byte 0 (the frame's first payload byte).
void mask_payload(std::span<uint8_t> data, std::array<uint8_t, 4> key);

class ClientFramer {
 public:
  // Writes a final binary frame's header and key into the `headroom` bytes before `payload` and
  // masks the payload in place. Returns the frame: header + payload. Needs headroom >= 14.
  std::span<uint8_t> frame(std::span<uint8_t> payload, size_t headroom);

 private:
  std::array<uint8_t, 4> next_key();
  // Keys come from getrandom() a batch at a time: one syscall per 64 frames, not per frame.
  std::array<uint8_t, 256> keys_{};
  size_t used_ = sizeof(keys_);
};

}  // namespace rx::agent
