// Server: libwebsockets on the hub's libuv loop (a foreign loop: lws, timers, signals and the
// relay share one loop and one thread). One port serves REST, the agent link and viewers.
// The server knows nothing of Rexec's resources: it turns lws callbacks into Requests for an
// HttpHandler and into messages for WsSession objects, and owns their lifetimes.
#pragma once

#include <uv.h>  // before libwebsockets.h, so lws sees libuv's types

#include <libwebsockets.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <variant>
#include <span>
#include <string>
#include <vector>

#include "hub/http.h"
#include "hub/loop_hooks.h"

namespace rx::hub {

// One HTTP request/response. A handler may answer at once or keep the exchange and reply()
// later (exec waits for agents); if the client went away meanwhile, reply() does nothing.
class HttpExchange {
 public:
  explicit HttpExchange(lws* wsi) : wsi_(wsi) {}
  Request request;
  // Called once with the response when reply() is called (metrics, audit), even if the client
  // has gone meanwhile.
  std::function<void(const Response&)> on_reply;
  void reply(Response response);
  bool replied() const { return replied_; }
  bool gone() const { return wsi_ == nullptr; }

 private:
  friend class Server;
  lws* wsi_;
  bool replied_ = false;
  Response response_;
  size_t body_sent_ = 0;
  bool headers_sent_ = false;
  bool discarding_ = false;  // answered 413; the rest of the body is read and dropped
  bool dispatched_ = false;  // handed to the handler (exactly once)
};

class Server;

// A WebSocket connection as its session sees it.
class WsConn {
 public:
  WsConn(lws* wsi, Server* server) : wsi_(wsi), server_(server) {}
  // Asks for on_writable(): at the end of this loop turn when the socket takes data, else when
  // lws says it is writable again.
  void want_write();
  // Sends one binary (or text) message; `frame` must start with LWS_PRE bytes of headroom. Call
  // only from on_writable(); more than once per call only while !choked(). False if the write failed.
  bool send(std::vector<uint8_t>& frame, bool text = false);
  // True when the socket would not take another message now.
  bool choked() const;
  // Closes with a WebSocket close code and reason (after on_writable returns).
  void close(uint16_t code, std::string reason);
  // Stops / resumes reading from this peer (its TCP window then fills: backpressure).
  void pause_reading(bool paused);
  std::string peer() const;
  bool closing() const { return closing_; }

 private:
  friend class Server;
  lws* wsi_;
  Server* server_;
  bool dirty_ = false;  // on the server's list of writes due this turn
  bool closing_ = false;
  bool close_sent_ = false;  // our close frame is out; waiting for the peer's (or the timeout)
  uint16_t close_code_ = 0;
  std::string close_reason_;
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
  // Answers now (exchange->reply) or later. Never throws.
  virtual void handle(std::shared_ptr<HttpExchange> exchange) = 0;
  // A WebSocket upgrade of `request` to `protocol`: a session, or an error response to send
  // instead (401, 404, ...).
  virtual std::variant<std::unique_ptr<WsSession>, Response> upgrade(Request& request, const std::string& protocol) = 0;
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port (port() tells which)
  std::string tls_cert;
  std::string tls_key;
  size_t max_body = 1024 * 1024;  // larger request bodies get 413
  std::string unix_socket;        // also listen here (container agents); empty: no
};

class Server {
 public:
  static Result<std::unique_ptr<Server>> start(uv_loop_t* loop, const ServerOptions& options, HttpHandler& handler);
  ~Server();
  int port() const { return port_; }
  // Graceful start of a shutdown: every WebSocket session is told (on_shutdown) and closed
  // with its reason; plain HTTP goes on until stop().
  void close_sessions();
  size_t session_count() const { return ws_.size(); }
  // First half of lws's teardown, from inside the running loop: closes every connection and the
  // listener. The destructor does the second half once the loop has drained.
  void stop();

 private:
  Server(const ServerOptions& options, HttpHandler& handler) : options_(options), handler_(handler) {}
  static int callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len);
  int on_http(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len);
  int on_ws(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len);
  Request read_request(lws* wsi, const char* uri);
  friend class WsConn;
  // Writes asked for during a loop turn are done at its end (LoopHooks), not through
  // lws_callback_on_writable: that costs a poll round per message (two epoll_ctl and one more
  // epoll_wait on each hop of a keystroke), and a turn's messages leave together.
  bool defer_write(WsConn& conn);
  void flush_writes();
  void send_now(lws* wsi, const Response& response);

  ServerOptions options_;
  HttpHandler& handler_;
  struct WsState {
    std::unique_ptr<WsSession> session;
    std::unique_ptr<WsConn> conn;
    std::vector<uint8_t> partial;  // fragments of the message being received
  };
  lws_context* context_ = nullptr;
  lws_vhost* unix_vhost_ = nullptr;
  int port_ = 0;
  bool stopped_ = false;
  bool draining_ = false;  // shutting down: new requests and upgrades get 503
  std::vector<lws_protocols> protocols_;
  lws_retry_bo_t retry_{};
  std::unordered_map<lws*, std::shared_ptr<HttpExchange>> http_;
  std::unordered_map<lws*, std::unique_ptr<WsSession>> upgrading_;  // between CONFIRM_UPGRADE and ESTABLISHED
  std::unordered_map<lws*, WsState> ws_;
  std::vector<lws*> dirty_;  // connections with a write due this turn (looked up again in ws_)
  bool flushing_ = false;
  std::unique_ptr<LoopHooks> hooks_;
};

}  // namespace rx::hub
