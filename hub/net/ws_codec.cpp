#include "hub/net/ws_codec.h"

#include <openssl/sha.h>

#include <cstring>

#include "protocol/base64.h"
#include "protocol/viewer.h"

namespace rx::hub {
namespace {

// Close codes a peer may send (RFC 6455 7.4: 1004-1006 and 1015 are never sent on the wire).
bool valid_close_code(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

void unmask(uint8_t* p, size_t n, const uint8_t key[4]) {
  // Eight bytes at a time: the same loop the agent uses for its own frames.
  uint64_t k8;
  uint8_t k[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
  std::memcpy(&k8, k, 8);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    v ^= k8;
    std::memcpy(p + i, &v, 8);
  }
  for (; i < n; ++i) p[i] ^= key[i & 3];
}

}  // namespace

std::optional<WsClose> WsReader::feed(uint8_t* data, size_t len, Handler& handler) {
  if (closed_) return std::nullopt;
  std::optional<WsClose> error;
  bool stop = false;
  if (pending_.empty()) {
    size_t used = process(data, len, handler, error, stop);
    if (!error && !stop && used < len) pending_.assign(data + used, data + len);
  } else {
    pending_.insert(pending_.end(), data, data + len);
    size_t used = process(pending_.data(), pending_.size(), handler, error, stop);
    pending_.erase(pending_.begin(), pending_.begin() + std::ptrdiff_t(used));
  }
  if (error) {
    closed_ = true;
    pending_.clear();
    message_.clear();
  }
  return error;
}

size_t WsReader::process(uint8_t* data, size_t len, Handler& handler, std::optional<WsClose>& error, bool& stop) {
  auto fail = [&](uint16_t code, std::string reason) {
    error = WsClose{code, std::move(reason)};
    return size_t(0);
  };
  size_t used = 0;
  while (!closed_ && !stop && len - used >= 2) {
    uint8_t* p = data + used;
    size_t avail = len - used;
    bool fin = p[0] & 0x80;
    uint8_t opcode = p[0] & 0x0f;
    if (p[0] & 0x70) return fail(1002, "reserved bits set (no extension was negotiated)");
    if (!(p[1] & 0x80)) return fail(1002, "client frames must be masked");
    uint64_t plen = p[1] & 0x7f;
    size_t hlen = 2;
    if (plen == 126) {
      if (avail < 4) break;
      plen = (uint64_t(p[2]) << 8) | p[3];
      hlen = 4;
    } else if (plen == 127) {
      if (avail < 10) break;
      plen = 0;
      for (int i = 0; i < 8; ++i) plen = (plen << 8) | p[2 + i];
      if (plen >> 63) return fail(1002, "frame length has its top bit set");
      hlen = 10;
    }
    bool control = opcode & 0x08;
    if (control) {
      if (opcode != ws::kClose && opcode != ws::kPing && opcode != ws::kPong) return fail(1002, "unknown control opcode");
      if (!fin) return fail(1002, "a control frame may not be fragmented");
      if (plen > 125) return fail(1002, "a control frame carries at most 125 bytes");
    } else {
      if (opcode != ws::kContinuation && opcode != ws::kText && opcode != ws::kBinary)
        return fail(1002, "unknown data opcode");
      if (opcode == ws::kContinuation && !fragmented_) return fail(1002, "a continuation frame with no message to continue");
      if (opcode != ws::kContinuation && fragmented_) return fail(1002, "a new message inside a fragmented one");
      if (message_.size() + plen > max_message_)
        return fail(1009, "message over the limit of " + std::to_string(max_message_) + " bytes");
    }
    if (avail < hlen + 4 + plen) break;  // the rest of this frame is still to come
    uint8_t key[4];
    std::memcpy(key, p + hlen, 4);
    uint8_t* payload = p + hlen + 4;
    unmask(payload, size_t(plen), key);
    used += hlen + 4 + size_t(plen);
    std::span<const uint8_t> bytes(payload, size_t(plen));
    if (control) {
      if (opcode == ws::kPing) {
        handler.on_ping(bytes);
      } else if (opcode == ws::kPong) {
        handler.on_pong();
      } else {
        WsClose c{1005, ""};
        if (plen == 1) return fail(1002, "a close frame's payload is one byte");
        if (plen >= 2) {
          c.code = uint16_t((payload[0] << 8) | payload[1]);
          c.reason.assign(reinterpret_cast<const char*>(payload + 2), size_t(plen) - 2);
          if (!valid_close_code(c.code)) return fail(1002, "invalid close code " + std::to_string(c.code));
          if (!protocol::viewer::valid_utf8(c.reason)) return fail(1007, "the close reason is not UTF-8");
        }
        closed_ = true;
        handler.on_close(c);
      }
      continue;
    }
    if (opcode != ws::kContinuation) message_binary_ = opcode == ws::kBinary;
    if (fin && !fragmented_) {  // the common case: the whole message in one frame, no copy
      if (!message_binary_ &&
          !protocol::viewer::valid_utf8(std::string_view(reinterpret_cast<const char*>(payload), size_t(plen))))
        return fail(1007, "a text message is not valid UTF-8");
      stop = !handler.on_message(bytes, message_binary_);
      continue;
    }
    message_.insert(message_.end(), bytes.begin(), bytes.end());
    fragmented_ = !fin;
    if (fin) {
      std::vector<uint8_t> whole;
      whole.swap(message_);
      if (!message_binary_ &&
          !protocol::viewer::valid_utf8(std::string_view(reinterpret_cast<const char*>(whole.data()), whole.size())))
        return fail(1007, "a text message is not valid UTF-8");
      stop = !handler.on_message(whole, message_binary_);
    }
  }
  return used;
}

size_t ws_frame_header(uint8_t* out, uint8_t opcode, uint64_t len) {
  out[0] = uint8_t(0x80 | opcode);
  if (len < 126) {
    out[1] = uint8_t(len);
    return 2;
  }
  if (len <= 0xffff) {
    out[1] = 126;
    out[2] = uint8_t(len >> 8);
    out[3] = uint8_t(len);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; ++i) out[2 + i] = uint8_t(len >> (56 - 8 * i));
  return 10;
}

std::string ws_accept_key(std::string_view client_key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string in(client_key);
  in += kGuid;
  uint8_t digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest);
  return protocol::base64_encode(std::span<const uint8_t>(digest, sizeof(digest)));
}

bool ws_valid_key(std::string_view key) {
  auto decoded = protocol::base64_decode(key);
  return decoded.ok() && decoded->size() == 16;
}

}  // namespace rx::hub
