#include "hub/net/server.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "hub/net/connection.h"
#include "hub/net/tls.h"
#include "protocol/log_line.h"

namespace rx::hub {
namespace {

constexpr size_t kReadBuffer = 128 * 1024;  // a 64 KiB frame in one read, not sixteen
constexpr int kBacklog = 4096;              // a reconnect storm of thousands of agents queues here

std::string peer_address(uv_tcp_t* tcp) {
  sockaddr_storage ss{};
  int len = sizeof(ss);
  if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) uv_ip4_name(reinterpret_cast<sockaddr_in*>(&ss), buf, sizeof(buf));
  else if (ss.ss_family == AF_INET6) uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&ss), buf, sizeof(buf));
  return buf;
}

}  // namespace

// ---- HttpExchange / WsConn ---------------------------------------------------------------------

HttpExchange::~HttpExchange() = default;

void HttpExchange::reply(Response response) {
  if (replied_) return;
  replied_ = true;
  finished_ = true;
  if (on_reply) on_reply(response);
  response_ = response;
  if (conn_) conn_->respond(*this, std::move(response), false);
}

void HttpExchange::start_stream(Response head) {
  if (replied_) return;
  replied_ = streaming_ = true;
  if (on_reply) on_reply(head);
  response_ = head;
  if (conn_) conn_->respond(*this, std::move(head), true);
}

bool HttpExchange::write(std::string_view bytes) {
  if (!streaming_ || finished_) return false;
  if (!conn_) {  // detached (or the client left): kept for a test to read; the producer should stop
    response_.body.append(bytes);
    return false;
  }
  conn_->stream_write(bytes);
  return conn_ != nullptr;
}

void HttpExchange::finish() {
  if (!streaming_ || finished_) return;
  finished_ = true;
  if (conn_) conn_->stream_finish();
}

void HttpExchange::abort() {
  finished_ = true;  // no on_gone: the handler knows
  if (conn_) conn_->close_now("answer cut");
}

size_t HttpExchange::backlog() const { return conn_ ? conn_->backlog() : 0; }
void HttpExchange::pause_body(bool paused) {
  if (conn_) conn_->body_pause(paused);
}
void HttpExchange::body_wanted() {
  if (conn_) conn_->body_pause(false);
}

void WsConn::want_write() { c_->ws_want_write(); }
bool WsConn::send(std::vector<uint8_t>& frame, bool text) { return c_->ws_send(frame, text); }
bool WsConn::choked() const { return c_->ws_choked(); }
void WsConn::close(uint16_t code, std::string reason) { c_->ws_close(code, std::move(reason)); }
void WsConn::pause_reading(bool paused) { c_->ws_pause(paused); }
std::string WsConn::peer() const { return c_->peer(); }
bool WsConn::closing() const { return c_->ws_closing(); }

// ---- Server ------------------------------------------------------------------------------------

Server::Server(uv_loop_t* loop, const ServerOptions& options, HttpHandler& handler)
    : loop_(loop), options_(options), handler_(handler), read_buffer_(kReadBuffer) {}

Result<std::unique_ptr<Server>> Server::start(uv_loop_t* loop, const ServerOptions& options, HttpHandler& handler) {
  std::unique_ptr<Server> s(new Server(loop, options, handler));
  if (!options.tls_cert.empty()) {
    auto tls = TlsContext::load(options.tls_cert, options.tls_key);
    if (!tls) return tls.error();
    s->tls_ = std::move(*tls);
  }
  if (auto r = s->listen_tcp(); !r) return r.error();
  if (!options.unix_socket.empty())
    if (auto r = s->listen_unix(); !r) return r.error();
  s->sweep_timer_ = new uv_timer_t;
  uv_timer_init(loop, s->sweep_timer_);
  s->sweep_timer_->data = s.get();
  uv_timer_start(s->sweep_timer_, [](uv_timer_t* t) { static_cast<Server*>(t->data)->sweep(); }, 1000, 1000);
  uv_unref(reinterpret_cast<uv_handle_t*>(s->sweep_timer_));
  s->idle_ = new uv_idle_t;
  uv_idle_init(loop, s->idle_);
  s->idle_->data = s.get();
  s->hooks_ = std::make_unique<LoopHooks>(loop, [self = s.get()] { self->flush(); });
  return s;
}

Status Server::listen_tcp() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(options_.port);
  int rc = getaddrinfo(options_.host.empty() ? nullptr : options_.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || !res) return make_error("listen_failed", "cannot resolve " + options_.host + ": " + gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, &freeaddrinfo);
  tcp_ = new uv_tcp_t;
  uv_tcp_init(loop_, tcp_);
  tcp_->data = this;
  rc = uv_tcp_bind(tcp_, res->ai_addr, 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(tcp_), kBacklog, [](uv_stream_t* l, int status) {
         if (status == 0) static_cast<Server*>(l->data)->on_accept(l, false);
       });
  if (rc != 0)
    return make_error("listen_failed",
                      "cannot listen on " + options_.host + ":" + std::to_string(options_.port) + ": " + uv_strerror(rc));
  sockaddr_storage ss{};
  int len = sizeof(ss);
  uv_tcp_getsockname(tcp_, reinterpret_cast<sockaddr*>(&ss), &len);
  port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                         : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return Ok{};
}

Status Server::listen_unix() {
  // The container agents' door: a unix socket in a directory bind-mounted into each container,
  // so a container needs no network to reach the hub. Plain WebSocket, no TLS (it never leaves
  // the host).
  ::unlink(options_.unix_socket.c_str());  // a stale socket from a previous run
  pipe_ = new uv_pipe_t;
  uv_pipe_init(loop_, pipe_, 0);
  pipe_->data = this;
  int rc = uv_pipe_bind(pipe_, options_.unix_socket.c_str());
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(pipe_), kBacklog, [](uv_stream_t* l, int status) {
         if (status == 0) static_cast<Server*>(l->data)->on_accept(l, true);
       });
  if (rc != 0) return make_error("listen_failed", "cannot listen on the unix socket " + options_.unix_socket + ": " + uv_strerror(rc));
  return Ok{};
}

void Server::on_accept(uv_stream_t* listener, bool via_socket) {
  auto* c = new Connection(*this, via_socket);
  if (uv_accept(listener, c->stream()) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(c->stream()), [](uv_handle_t* h) { delete static_cast<Connection*>(h->data); });
    return;
  }
  connections_.insert(c);
  std::string peer = via_socket ? "unix" : peer_address(reinterpret_cast<uv_tcp_t*>(c->stream()));
  // Connections not (yet) upgraded are counted per address: a stranger opening thousands of
  // sockets to hold them open is refused before the hub runs out of descriptors.
  size_t& n = http_per_ip_[peer];
  ++n;
  c->counted_http_ = true;
  std::optional<Response> refusal;
  if (stopped_ || n > options_.max_http_per_ip) {
    refusal = error_response(make_error("rate_limited", "too many open connections from " + peer));
    refusal->headers.push_back({"Retry-After", "10"});
  }
  c->start(std::move(peer), via_socket ? nullptr : tls_.get(), refusal ? &*refusal : nullptr);
}

void Server::sweep() {
  uint64_t now = uv_now(loop_);
  // A copy: a check may close a connection (its removal waits for the close callback, but stay safe).
  std::vector<Connection*> all(connections_.begin(), connections_.end());
  for (auto* c : all) c->check(now);
}

void Server::defer(Connection* c) {
  if (c->due_ || stopped_) return;
  c->due_ = true;
  due_.push_back(c);
}

void Server::flush() {
  // A few passes: a session that wants another round right away (its budget spent) gets it in the
  // same turn; past that it waits for the next turn, so one busy socket cannot starve the loop.
  for (int pass = 0; pass < 4 && !due_.empty(); ++pass) {
    std::vector<Connection*> due;
    due.swap(due_);
    for (auto* c : due) {
      c->due_ = false;
      c->run_due();
    }
  }
  if (!due_.empty() && idle_) uv_idle_start(idle_, [](uv_idle_t* h) { static_cast<Server*>(h->data)->flush(); });
  else if (idle_) uv_idle_stop(idle_);
}

void Server::forget(Connection* c) {
  connections_.erase(c);
  std::erase(due_, c);
}

void Server::close_sessions() {
  draining_ = true;
  std::vector<Connection*> all(connections_.begin(), connections_.end());
  for (auto* c : all) c->shutdown_session();
}

void Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  hooks_.reset();
  due_.clear();
  auto close_handle = [](uv_handle_t* h, auto deleter) { uv_close(h, deleter); };
  if (tcp_) close_handle(reinterpret_cast<uv_handle_t*>(tcp_), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
  if (pipe_) close_handle(reinterpret_cast<uv_handle_t*>(pipe_), [](uv_handle_t* h) { delete reinterpret_cast<uv_pipe_t*>(h); });
  if (sweep_timer_) close_handle(reinterpret_cast<uv_handle_t*>(sweep_timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  if (idle_) close_handle(reinterpret_cast<uv_handle_t*>(idle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_idle_t*>(h); });
  tcp_ = nullptr;
  pipe_ = nullptr;
  sweep_timer_ = nullptr;
  idle_ = nullptr;
  std::vector<Connection*> all(connections_.begin(), connections_.end());
  for (auto* c : all) c->close_now("hub stopping");
  if (!options_.unix_socket.empty()) ::unlink(options_.unix_socket.c_str());
}

Server::~Server() {
  // stop() ran inside the loop and the loop drained since; if it did not (a start that failed
  // half-way), close what is left without a loop to run their callbacks.
  if (!stopped_) stop();
}

}  // namespace rx::hub
