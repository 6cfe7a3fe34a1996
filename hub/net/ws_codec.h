// The server side of RFC 6455 framing, as pure functions over bytes: WsReader turns what a client
// sends into whole messages (unmasked in place, fragments joined, control frames answered by the
// caller) and refuses every protocol violation with the close code the RFC names; the header
// writer frames the hub's own (unmasked) messages. No extensions are negotiated, so any RSV bit
// is an error. A message over the session's limit is refused from its frame header, before any of
// its payload is buffered.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rx::hub {

namespace ws {
constexpr uint8_t kContinuation = 0x0, kText = 0x1, kBinary = 0x2, kClose = 0x8, kPing = 0x9, kPong = 0xA;
// The largest header the hub writes (2 + 8 bytes: it never masks); messages are built with this
// much headroom in front so the header goes in place.
constexpr size_t kMaxHeader = 10;
}  // namespace ws

// Bytes every outgoing message reserves in front of its payload (WsConn::send writes the frame
// header there). 16 keeps payloads aligned.
inline constexpr size_t kFrameHeadroom = 16;

struct WsClose {
  uint16_t code = 1000;
  std::string reason;
};

class WsReader {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    // A whole message. Return false to stop reading (the connection is closing).
    virtual bool on_message(std::span<const uint8_t> message, bool binary) = 0;
    virtual void on_ping(std::span<const uint8_t> payload) = 0;
    virtual void on_pong() {}
    // The peer's close frame (its code: 1005 when it gave none).
    virtual void on_close(const WsClose& close) = 0;
  };

  explicit WsReader(size_t max_message) : max_message_(max_message) {}
  // Feeds bytes from the peer; `data` may be changed (unmasked in place). Returns the close to
  // send for a protocol violation (nothing more is read then), nullopt otherwise.
  std::optional<WsClose> feed(uint8_t* data, size_t len, Handler& handler);
  void set_max_message(size_t n) { max_message_ = n; }
  // Bytes held for an incomplete frame or message.
  size_t buffered() const { return pending_.size() + message_.size(); }

 private:
  // Parses whole frames from [data, data+len); returns bytes consumed, or sets `error`.
  size_t process(uint8_t* data, size_t len, Handler& handler, std::optional<WsClose>& error, bool& stop);
  size_t max_message_;
  std::vector<uint8_t> pending_;  // an incomplete frame (header and what came of its payload)
  std::vector<uint8_t> message_;  // fragments of a message so far
  bool fragmented_ = false;       // inside a fragmented message
  bool message_binary_ = true;
  bool closed_ = false;           // after a close frame or an error, nothing more is read
};

// Writes the header of a final, unmasked frame carrying `len` payload bytes into `out` (at least
// ws::kMaxHeader bytes) and returns its size.
size_t ws_frame_header(uint8_t* out, uint8_t opcode, uint64_t len);
// The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key.
std::string ws_accept_key(std::string_view client_key);
// True when `key` is the base64 of 16 bytes (RFC 6455 4.1).
bool ws_valid_key(std::string_view key);

}  // namespace rx::hub
