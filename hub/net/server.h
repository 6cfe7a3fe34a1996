// Server: the hub's one port (and the container agents' unix socket) on the hub's libuv loop:
// HTTP/1.1 for REST and the dashboard, WebSocket for agents, viewers and the events feed, TLS
// when given a certificate. Every byte from the network meets the strict parser of
// http_parser.h first; everything the hub answers, refusals included, is JSON with a code.
// Every connection state has a deadline, every per-connection buffer a bound (see
// docs/security.md). The server knows nothing of Rexec's resources: it turns requests into
// calls of an HttpHandler and WebSocket messages into calls of a WsSession, and owns their
// lifetimes.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include "hub/base/loop_hooks.h"
#include "hub/net/http.h"
#include "hub/net/http_parser.h"
#include "hub/net/ws_codec.h"

namespace rx::hub {

class Connection;
class Server;
class TlsContext;

// One HTTP request/response. A handler may answer at once or keep the exchange and reply()
// later (exec waits for agents); if the client went away meanwhile, reply() does nothing.
// A long answer can be streamed instead: start_stream(), write()..., finish().
class HttpExchange {
 public:
  HttpExchange() = default;  // detached (tests, fuzzing): replies go nowhere
  ~HttpExchange();
  HttpExchange(const HttpExchange&) = delete;
  HttpExchange& operator=(const HttpExchange&) = delete;
  Request request;
  // Called once with the response when reply() or start_stream() is called (metrics, audit), even
  // if the client has gone meanwhile.
  std::function<void(const Response&)> on_reply;
  void reply(Response response);
  bool replied() const { return replied_; }
  bool gone() const { return conn_ == nullptr; }

  // Streaming: the status and headers now, the body as it is produced (chunked on HTTP/1.1).
  void start_stream(Response head);
  // Queues body bytes; false once the client is gone (stop producing).
  bool write(std::string_view bytes);
  void finish();
  // Cuts the connection: a streamed answer that cannot be completed must not look complete (a
  // download whose file shrank: the client sees fewer bytes than Content-Length).
  void abort();
  // Bytes queued for this client that the kernel has not taken yet: a producer stops while this
  // is over its budget and resumes on on_drain.
  size_t backlog() const;
  std::function<void()> on_drain;
  // The client went away before the answer was complete (cancel the work behind it). With it set,
  // a client that ends its side of the connection (EOF) before the answer counts as gone: a
  // handler that sets it gives up answering half-closing clients.
  std::function<void()> on_gone;

  // A streamed request body (HttpHandler::streams_body said so): request.body stays empty and the
  // bytes come here as they arrive, `end` set with the last (maybe empty) piece. Until this is set,
  // and while the body is paused, the connection does not read: the client's TCP window fills.
  // The handler may reply before the end (an error): the rest is read and dropped, then the
  // connection closes.
  std::function<void(std::string_view bytes, bool end)> on_body;
  void pause_body(bool paused);
  // Set on_body from a later loop turn than handle() (or after a pause): the bytes waiting go.
  void body_wanted();

  // The last response given (tests and fuzzing read it from detached exchanges).
  const Response& response() const { return response_; }

 private:
  friend class Connection;
  Connection* conn_ = nullptr;
  bool replied_ = false;
  bool streaming_ = false;
  bool finished_ = false;
  Response response_;
};

// A WebSocket connection as its session sees it.
class WsConn {
 public:
  explicit WsConn(Connection* c) : c_(c) {}
  // Asks for on_writable(): at the end of this loop turn when the socket takes data, else when
  // the kernel has taken what is queued.
  void want_write();
  // Sends one binary (or text) message; `frame` starts with kFrameHeadroom bytes of headroom
  // and is taken (left empty). Call only from on_writable(); more than once per call only while
  // !choked(). False if the connection is gone.
  bool send(std::vector<uint8_t>& frame, bool text = false);
  // True when the kernel would not take another message now (bytes are waiting in user space).
  bool choked() const;
  // Closes with a WebSocket close code and reason, after the session's pending() frames.
  void close(uint16_t code, std::string reason);
  // Stops / resumes reading from this peer (its TCP window then fills: backpressure).
  void pause_reading(bool paused);
  std::string peer() const;
  bool closing() const;

 private:
  friend class Connection;
  Connection* c_;
};

class WsSession {
 public:
  virtual ~WsSession() = default;
  virtual void on_open(WsConn& conn) { (void)conn; }
  virtual void on_message(WsConn& conn, std::span<const uint8_t> message, bool binary) = 0;
  virtual void on_writable(WsConn& conn) = 0;
  // Frames still queued: a closing connection sends them before its close frame.
  virtual bool pending() const { return false; }
  // The connection is gone; the session is destroyed right after.
  virtual void on_close() {}
  // Largest message this session accepts; a larger one closes the connection with 1009.
  virtual size_t max_message() const = 0;
  // The hub is shutting down: say so to the peer (agents are told to come back at once).
  virtual void on_shutdown(WsConn& conn) { conn.close(1001, "hub shutting down"); }
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Answers now (exchange->reply) or later.
  virtual void handle(std::shared_ptr<HttpExchange> exchange) = 0;
  // A WebSocket upgrade of `request` to `protocol` (the client's Sec-WebSocket-Protocol list): a
  // session, or an error response to send instead (401, 404, ...).
  virtual std::variant<std::unique_ptr<WsSession>, Response> upgrade(Request& request, const std::string& protocol) = 0;
  // True: the request of `head` is dispatched as soon as its head is read, and its body (maybe
  // empty) streams to HttpExchange::on_body, with no size cap but the handler's own (uploads).
  virtual bool streams_body(const RequestHead& head) {
    (void)head;
    return false;
  }
};

// The Request a parsed head and its body make, as a handler sees it (HEAD is routed as GET).
Request make_request(const RequestHead& head, std::string body, std::string peer, bool via_socket);

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port (port() tells which)
  std::string tls_cert;
  std::string tls_key;
  size_t max_body = 1024 * 1024;  // larger request bodies get 413
  std::string unix_socket;        // also listen here (container agents); empty: no
  HeadLimits head_limits{};
  // Deadlines, in milliseconds (docs/security.md lists them).
  uint64_t head_timeout_ms = 10'000;   // from the connection (or the last response) to a whole request head
  uint64_t body_idle_ms = 10'000;      // a body that stops arriving
  uint64_t write_idle_ms = 30'000;     // a client that stops reading our answer
  uint64_t ws_ping_after_ms = 20'000;  // a quiet WebSocket is pinged...
  uint64_t ws_hangup_after_ms = 30'000;  // ...and cut when it stays quiet this long
  size_t max_http_per_ip = 256;        // connections of one address not (yet) upgraded to WebSocket
};

class Server {
 public:
  static Result<std::unique_ptr<Server>> start(uv_loop_t* loop, const ServerOptions& options, HttpHandler& handler);
  ~Server();
  int port() const { return port_; }
  // Graceful start of a shutdown: every WebSocket session is told (on_shutdown) and closed
  // with its reason; plain HTTP goes on until stop(), new requests get 503.
  void close_sessions();
  size_t session_count() const { return ws_count_; }
  // Closes every connection and the listeners, from inside the running loop; the loop then
  // drains and the destructor may run.
  void stop();

 private:
  friend class Connection;
  friend class WsConn;
  Server(uv_loop_t* loop, const ServerOptions& options, HttpHandler& handler);
  Status listen_tcp();
  Status listen_unix();
  void on_accept(uv_stream_t* listener, bool via_socket);
  void sweep();  // the deadline check, once a second
  // Work marked during a loop turn (writes due, requests to resume) is done at its end.
  void defer(Connection* c);
  void flush();
  void forget(Connection* c);  // from the connection's close callback

  uv_loop_t* loop_;
  ServerOptions options_;
  HttpHandler& handler_;
  std::unique_ptr<TlsContext> tls_;
  uv_tcp_t* tcp_ = nullptr;    // heap: freed by the close callback
  uv_pipe_t* pipe_ = nullptr;  // heap: freed by the close callback
  uv_timer_t* sweep_timer_ = nullptr;
  uv_idle_t* idle_ = nullptr;  // runs flush() again next turn while work is left over
  int port_ = 0;
  bool stopped_ = false;
  bool draining_ = false;  // shutting down: new requests and upgrades get 503
  std::unordered_set<Connection*> connections_;
  std::unordered_map<std::string, size_t> http_per_ip_;
  size_t ws_count_ = 0;
  std::vector<Connection*> due_;
  bool flushing_ = false;
  std::unique_ptr<LoopHooks> hooks_;
  std::vector<uint8_t> read_buffer_;  // one for all reads: a read is handled before the next
};

}  // namespace rx::hub
