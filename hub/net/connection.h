// Connection: one accepted socket of the Server, from its first byte to its close. It is a state
// machine over the strict parser (http_parser.h) and the WebSocket reader (ws_codec.h):
//   head -> body -> handling -> responding -> head (keep-alive) ... or -> websocket
// and every state has a deadline the server's sweep enforces. Every close is graceful (our last
// bytes, then FIN, then the peer's input read and dropped until it hangs up or a short timeout)
// so a kernel RST never destroys the answer or the close frame the peer still has to read.
// Private to the server: sessions see a WsConn, handlers an HttpExchange.
#pragma once

#include <uv.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "hub/net/server.h"
#include "hub/net/tls.h"

namespace rx::hub {

class Connection final : private WsReader::Handler {
 public:
  Connection(Server& server, bool via_socket);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&handle_); }
  // After uv_accept: starts reading. `refuse`: answer this error at once and close (too many
  // connections from one address).
  void start(std::string peer, const TlsContext* tls, const Response* refuse);
  // Deferred work of this loop turn: a WebSocket write that was asked for, a request to parse
  // after the last response went out.
  void run_due();
  // The sweep: enforces the deadline of the current state.
  void check(uint64_t now_ms);
  // Server shutdown: sessions are told; HTTP connections are closed when idle.
  void shutdown_session();
  // Hard close (errors, timeouts, server stop): no more bytes either way.
  void close_now(const char* why);
  bool is_ws() const { return state_ == State::kWs; }
  const std::string& peer() const { return peer_; }
  bool counted_http() const { return counted_http_; }

  // --- for HttpExchange ---
  void respond(HttpExchange& ex, Response response, bool stream);
  void stream_write(std::string_view bytes);
  void stream_finish();
  size_t backlog() const { return out_bytes_; }
  void body_pause(bool paused);
  // --- for WsConn ---
  void ws_want_write();
  bool ws_send(std::vector<uint8_t>& frame, bool text);
  bool ws_choked() const { return closed_ || writing_ || out_bytes_ > 0; }
  void ws_close(uint16_t code, std::string reason);
  void ws_pause(bool paused);
  bool ws_closing() const { return closed_ || ws_closing_; }

 private:
  // The bounds of one connection (connection.cpp, connection_ws.cpp, connection_close.cpp).
  static constexpr size_t kMaxPipelined = 64 * 1024;     // bytes of later requests held while one is answered
  static constexpr size_t kMaxLinger = 64 * 1024 * 1024;  // input dropped while lingering before we hang up anyway
  static constexpr uint64_t kLingerMs = 2000;             // after our FIN: how long the peer has to hang up
  static constexpr uint64_t kCloseAckMs = 3000;           // after our close frame: how long for the peer's
  static constexpr size_t kMaxPongBacklog = 64 * 1024;    // a peer flooding pings while not reading gets no pongs
  // A close reason is at most 123 bytes; cut at a character boundary so it stays UTF-8.
  static std::string clip_reason(std::string reason);
  enum class State { kHead, kBody, kHandling, kResponding, kWs, kLinger };

  // Reading
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf);
  void received(uint8_t* data, size_t len);  // plaintext
  void on_eof();
  void update_reading();
  // HTTP
  void process_http();
  void dispatch();
  void feed_body();  // a streamed body: what in_ holds goes to the exchange's on_body
  void upgrade();
  void refuse(const HttpError& error, std::vector<std::pair<std::string, std::string>> headers = {});
  void response_done();
  // WebSocket (WsReader::Handler)
  bool on_message(std::span<const uint8_t> message, bool binary) override;
  void on_ping(std::span<const uint8_t> payload) override;
  void on_close(const WsClose& close) override;
  void send_control(uint8_t opcode, std::string_view payload);
  void ws_step();
  // Writing
  // Bytes as they go on the wire (TLS output already encrypted).
  void queue_wire(std::vector<uint8_t> bytes, size_t from);
  void queue_wire(std::string bytes);
  // Our plaintext: through TLS when there is TLS.
  void send_plain(std::vector<uint8_t> bytes, size_t from);
  void send_plain(std::string bytes);
  void flush_out();
  static void on_written(uv_write_t* req, int status);
  void drained();
  // Closing
  void close_gracefully();
  void end_session();  // the session's on_close, then it is gone
  static void on_shutdown_done(uv_shutdown_t* req, int status);
  static void on_closed(uv_handle_t* h);

  Server& server_;
  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } handle_;
  bool via_socket_;
  std::string peer_;
  std::unique_ptr<TlsSession> tls_;
  State state_ = State::kHead;
  uint64_t deadline_ = 0;   // of the current state, in uv_now() ms (0: none)
  uint64_t last_rx_ = 0;    // the last bytes from the peer
  uint64_t last_tx_ = 0;    // the last time the kernel took bytes of ours
  bool counted_http_ = false;  // counted in the server's per-address HTTP connections

  // HTTP
  std::string in_;  // plaintext not parsed yet (a head arriving, a body, pipelined requests)
  RequestHead head_;
  BodyReader body_;
  std::shared_ptr<HttpExchange> exchange_;
  bool head_only_ = false;  // a HEAD request: headers, no body
  bool keep_alive_ = true;
  bool chunked_out_ = false;  // the streamed answer is chunked
  bool response_complete_ = false;
  bool close_after_ = false;  // close once the answer is out
  bool peer_eof_ = false;
  bool streaming_body_ = false;  // the handler has the request; its body is still arriving
  bool body_paused_ = false;
  bool body_end_sent_ = false;

  // WebSocket
  std::unique_ptr<WsSession> session_;
  WsConn conn_{this};
  WsReader reader_{0};
  // A session whose connection ended during this loop turn, destroyed in run_due (or with the
  // connection, when the server stopped): after conn_ here, so it goes before conn_ does.
  std::unique_ptr<WsSession> ended_session_;
  bool write_wanted_ = false;
  bool ws_closing_ = false;  // our close is decided
  bool close_sent_ = false;
  bool peer_closed_ = false;  // the peer's close frame came (or it broke the protocol)
  uint16_t close_code_ = 1000;
  std::string close_reason_;
  bool session_paused_ = false;
  bool ping_sent_ = false;

  // Writing
  struct OutBuf {
    std::vector<uint8_t> bytes;
    std::string text;
    size_t pos = 0;
    const char* data() const { return text.empty() ? reinterpret_cast<const char*>(bytes.data()) : text.data(); }
    size_t size() const { return text.empty() ? bytes.size() : text.size(); }
  };
  std::deque<OutBuf> out_;
  size_t out_bytes_ = 0;
  bool writing_ = false;  // a uv_write is in flight
  size_t in_flight_ = 0;
  uv_write_t write_req_{};
  uv_shutdown_t shutdown_req_{};
  bool reading_ = false;
  bool shutting_ = false;  // closing: our last bytes, then FIN, then lingering
  bool fin_sent_ = false;
  size_t lingered_ = 0;    // bytes read and dropped while lingering
  bool closed_ = false;
  bool due_ = false;  // on the server's list for this turn
  friend class Server;
};

}  // namespace rx::hub
