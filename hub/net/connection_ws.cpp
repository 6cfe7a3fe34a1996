// Connection, the WebSocket side: frames in, frames out, the close handshake.
#include "hub/net/connection.h"

#include "protocol/log_line.h"

namespace rx::hub {

std::string Connection::clip_reason(std::string reason) {
  if (reason.size() <= 123) return reason;
  size_t n = 123;
  while (n > 0 && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80) --n;
  reason.resize(n);
  return reason;
}

// ---- WebSocket --------------------------------------------------------------------------------

bool Connection::on_message(std::span<const uint8_t> message, bool binary) {
  if (closed_ || !session_) return false;
  if (ws_closing_) return true;  // after our close only the peer's close matters
  try {
    session_->on_message(conn_, message, binary);
  } catch (const std::exception& e) {
    log("error", "ws.exception", {{"peer", peer_}, {"what", e.what()}});
    close_now("exception");
  }
  return !closed_;
}

void Connection::on_ping(std::span<const uint8_t> payload) {
  if (out_bytes_ > kMaxPongBacklog || close_sent_) return;
  send_control(ws::kPong, std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()));
}

void Connection::on_close(const WsClose& close) {
  peer_closed_ = true;
  if (!close_sent_) {
    // Answer with the same code (RFC 6455 5.5.1); the session's queued frames are moot now.
    std::string payload;
    if (close.code != 1005) payload = {char(close.code >> 8), char(close.code & 0xff)};
    send_control(ws::kClose, payload);
    close_sent_ = true;
  }
  ws_closing_ = true;
  close_gracefully();
}

void Connection::send_control(uint8_t opcode, std::string_view payload) {
  std::vector<uint8_t> frame(kFrameHeadroom + payload.size());
  std::memcpy(frame.data() + kFrameHeadroom, payload.data(), payload.size());
  size_t h = ws_frame_header(frame.data() + kFrameHeadroom - 2, opcode, payload.size());
  send_plain(std::move(frame), kFrameHeadroom - h);
}

void Connection::ws_want_write() {
  if (closed_ || state_ != State::kWs) return;
  write_wanted_ = true;
  server_.defer(this);
}

bool Connection::ws_send(std::vector<uint8_t>& frame, bool text) {
  if (closed_ || close_sent_ || frame.size() < kFrameHeadroom) return false;
  size_t len = frame.size() - kFrameHeadroom;
  uint8_t header[ws::kMaxHeader];
  size_t h = ws_frame_header(header, text ? ws::kText : ws::kBinary, len);
  std::memcpy(frame.data() + kFrameHeadroom - h, header, h);
  // Taken (and `frame` left empty) before sending: a send that fails closes the connection and
  // destroys its session, which may own `frame` (a queued message): nothing may touch it after.
  std::vector<uint8_t> wire = std::move(frame);
  frame.clear();
  send_plain(std::move(wire), kFrameHeadroom - h);
  return !closed_;
}

void Connection::ws_close(uint16_t code, std::string reason) {
  if (closed_ || ws_closing_) return;
  ws_closing_ = true;
  close_code_ = code;
  close_reason_ = clip_reason(std::move(reason));
  write_wanted_ = true;
  server_.defer(this);
}

void Connection::ws_pause(bool paused) {
  session_paused_ = paused;
  if (!paused) last_rx_ = uv_now(server_.loop_);  // quiet while paused by us is not the peer's fault
  update_reading();
}

void Connection::ws_step() {
  if (!write_wanted_ || ws_choked() || !session_ || shutting_) return;
  write_wanted_ = false;
  try {
    if (!ws_closing_) return session_->on_writable(conn_);
    if (close_sent_) return;
    if (session_->pending()) {  // the session's last frames go before the close frame
      session_->on_writable(conn_);
      write_wanted_ = true;
      server_.defer(this);
      return;
    }
  } catch (const std::exception& e) {
    log("error", "ws.exception", {{"peer", peer_}, {"what", e.what()}});
    return close_now("exception");
  }
  std::string payload{char(close_code_ >> 8), char(close_code_ & 0xff)};
  payload += close_reason_;
  send_control(ws::kClose, payload);
  close_sent_ = true;
  // Wait for the peer's answer (read and dropped), so our close frame is not lost to a RST.
  deadline_ = uv_now(server_.loop_) + kCloseAckMs;
}

void Connection::shutdown_session() {
  if (closed_) return;
  if (state_ == State::kWs && session_) {
    try {
      session_->on_shutdown(conn_);
    } catch (const std::exception&) {
      close_now("exception");
    }
  } else if (state_ == State::kHead && in_.empty()) {
    close_gracefully();  // idle keep-alive
  }
}

}  // namespace rx::hub
