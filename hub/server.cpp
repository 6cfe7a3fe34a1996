#include "hub/server.h"

#include <unistd.h>

#include <cstring>

#include "hub/log.h"

namespace rx::hub {
namespace {

// Subprotocols the hub speaks; protocols_[0] is plain HTTP.
constexpr const char* kHttpProtocol = "http";
constexpr const char* kWsProtocols[] = {"rexec.agent.v1", "rexec.term.v1", "rexec.events.v1"};
constexpr size_t kBodyChunk = 16 * 1024;
constexpr size_t kMaxDiscard = 64 * 1024 * 1024;  // a body over the limit is drained up to this

std::string copy_header(lws* wsi, lws_token_indexes token) {
  int len = lws_hdr_total_length(wsi, token);
  if (len <= 0) return {};
  std::string out(size_t(len) + 1, '\0');
  int n = lws_hdr_copy(wsi, out.data(), len + 1, token);
  out.resize(n > 0 ? size_t(n) : 0);
  return out;
}

std::string copy_custom_header(lws* wsi, const char* name_with_colon) {
  int namelen = int(std::strlen(name_with_colon));
  int len = lws_hdr_custom_length(wsi, name_with_colon, namelen);
  if (len <= 0) return {};
  std::string out(size_t(len) + 1, '\0');
  int n = lws_hdr_custom_copy(wsi, out.data(), len + 1, name_with_colon, namelen);
  out.resize(n > 0 ? size_t(n) : 0);
  return out;
}

std::string method_of(lws* wsi) {
  struct M {
    lws_token_indexes token;
    const char* name;
  };
  static const M kMethods[] = {{WSI_TOKEN_GET_URI, "GET"},       {WSI_TOKEN_POST_URI, "POST"},
                               {WSI_TOKEN_PUT_URI, "PUT"},       {WSI_TOKEN_PATCH_URI, "PATCH"},
                               {WSI_TOKEN_DELETE_URI, "DELETE"}, {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
                               {WSI_TOKEN_HEAD_URI, "HEAD"}};
  for (const auto& m : kMethods)
    if (lws_hdr_total_length(wsi, m.token) > 0) return m.name;
  return "UNKNOWN";
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    default: return nullptr;  // lws picks its own
  }
}

}  // namespace

// ---- HttpExchange / WsConn -------------------------------------------------------------------

void HttpExchange::reply(Response response) {
  if (replied_) return;
  replied_ = true;
  if (on_reply) on_reply(response);
  if (wsi_ == nullptr) return;
  response_ = std::move(response);
  lws_callback_on_writable(wsi_);
}

void WsConn::want_write() {
  if (!wsi_) return;
  if (server_ && server_->defer_write(*this)) return;
  lws_callback_on_writable(wsi_);
}

bool WsConn::choked() const { return !wsi_ || lws_send_pipe_choked(wsi_); }

bool WsConn::send(std::vector<uint8_t>& frame, bool text) {
  if (!wsi_ || frame.size() < LWS_PRE) return false;
  size_t len = frame.size() - LWS_PRE;
  return lws_write(wsi_, frame.data() + LWS_PRE, len, text ? LWS_WRITE_TEXT : LWS_WRITE_BINARY) >= int(len);
}

void WsConn::close(uint16_t code, std::string reason) {
  if (closing_) return;
  closing_ = true;
  close_code_ = code;
  close_reason_ = reason.substr(0, 120);  // a close frame's reason is at most 123 bytes
  want_write();
}

void WsConn::pause_reading(bool paused) {
  if (wsi_) lws_rx_flow_control(wsi_, paused ? 0 : 1);
}

std::string WsConn::peer() const {
  char buf[64] = {};
  if (wsi_) lws_get_peer_simple(wsi_, buf, sizeof(buf));
  return buf;
}

// ---- Server ----------------------------------------------------------------------------------

Result<std::unique_ptr<Server>> Server::start(uv_loop_t* loop, const ServerOptions& options, HttpHandler& handler) {
  std::unique_ptr<Server> s(new Server(options, handler));
  s->protocols_.push_back({kHttpProtocol, &Server::callback, 0, 0, 0, nullptr, 0});
  for (const char* name : kWsProtocols)
    s->protocols_.push_back({name, &Server::callback, 0, 70 * 1024, 0, nullptr, 0});
  s->protocols_.push_back({nullptr, nullptr, 0, 0, 0, nullptr, 0});

  // Heartbeats: ping a link that was quiet for 20 s, hang up one quiet for 30 s (SPEC 1.8).
  s->retry_.secs_since_valid_ping = 20;
  s->retry_.secs_since_valid_hangup = 30;

  lws_context_creation_info info;
  std::memset(&info, 0, sizeof(info));
  void* foreign_loops[1] = {loop};
  info.foreign_loops = foreign_loops;
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
  if (!options.tls_cert.empty()) info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  info.protocols = s->protocols_.data();
  info.user = s.get();
  info.port = options.port;
  info.iface = options.host.c_str();
  info.max_http_header_data = 8192;
  // lws reads sockets into this buffer: the 4 KiB default would cut every 64 KiB frame into 16
  // reads and 16 callbacks.
  info.pt_serv_buf_size = 128 * 1024;
  info.retry_and_idle_policy = &s->retry_;
  info.timeout_secs = 30;
  if (options.host.find(':') == std::string::npos) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
  if (!options.tls_cert.empty()) {
    info.ssl_cert_filepath = options.tls_cert.c_str();
    info.ssl_private_key_filepath = options.tls_key.c_str();
  }

  s->context_ = lws_create_context(&info);
  if (!s->context_) return make_error("listen_failed", "cannot create the libwebsockets context");
  lws_vhost* vhost = lws_create_vhost(s->context_, &info);
  if (!vhost)
    return make_error("listen_failed", "cannot listen on " + options.host + ":" + std::to_string(options.port));
  s->port_ = lws_get_vhost_listen_port(vhost);
  s->hooks_ = std::make_unique<LoopHooks>(loop, [self = s.get()] { self->flush_writes(); });
  if (!options.unix_socket.empty()) {
    // The container agents' door: a unix socket in a directory bind-mounted into each container,
    // so a container needs no network to reach the hub. Plain WebSocket, no TLS (it never
    // leaves the host).
    ::unlink(options.unix_socket.c_str());  // a stale socket from a previous run
    lws_context_creation_info u = info;
    u.vhost_name = "containers";
    u.options |= LWS_SERVER_OPTION_UNIX_SOCK;
    u.options &= ~uint64_t(LWS_SERVER_OPTION_DISABLE_IPV6);
    u.iface = options.unix_socket.c_str();
    u.port = 0;
    u.ssl_cert_filepath = nullptr;
    u.ssl_private_key_filepath = nullptr;
    s->unix_vhost_ = lws_create_vhost(s->context_, &u);
    if (!s->unix_vhost_) return make_error("listen_failed", "cannot listen on the unix socket " + options.unix_socket);
  }
  return s;
}

Server::~Server() {
  // Second half of the foreign-loop shutdown (the first is stop(), inside the running loop).
  if (context_) lws_context_destroy(context_);
}

bool Server::defer_write(WsConn& conn) {
  // While flushing, a session that wants another round (budget spent, socket full) waits for
  // lws; a closing connection's last frames and close go through the WRITEABLE path.
  if (!hooks_ || flushing_ || conn.closing_) return false;
  if (!conn.dirty_) {
    conn.dirty_ = true;
    dirty_.push_back(conn.wsi_);
  }
  return true;
}

void Server::flush_writes() {
  if (dirty_.empty()) return;
  std::vector<lws*> due;
  due.swap(dirty_);
  flushing_ = true;
  for (lws* wsi : due) {
    auto it = ws_.find(wsi);  // gone meanwhile (or a new connection at the same address): skip
    if (it == ws_.end() || !it->second.conn->dirty_) continue;
    WsConn& conn = *it->second.conn;
    conn.dirty_ = false;
    if (conn.closing_ || lws_send_pipe_choked(wsi)) {
      lws_callback_on_writable(wsi);
      continue;
    }
    it->second.session->on_writable(conn);
  }
  flushing_ = false;
}

void Server::close_sessions() {
  draining_ = true;
  for (auto& [wsi, state] : ws_) state.session->on_shutdown(*state.conn);
}

void Server::stop() {
  if (stopped_ || !context_) return;
  stopped_ = true;
  hooks_.reset();  // from now on every write goes through lws
  lws_context_destroy(context_);
}

int Server::callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  auto* self = static_cast<Server*>(lws_context_user(lws_get_context(wsi)));
  if (!self) return lws_callback_http_dummy(wsi, reason, user, in, len);
  const lws_protocols* proto = lws_get_protocol(wsi);
  bool is_ws = proto && proto->name && std::strcmp(proto->name, kHttpProtocol) != 0;
  if (reason == LWS_CALLBACK_WSI_DESTROY) {
    if (auto it = self->http_.find(wsi); it != self->http_.end()) {
      it->second->wsi_ = nullptr;  // a pending handler's reply() now does nothing
      self->http_.erase(it);
    }
    self->upgrading_.erase(wsi);
    if (auto it = self->ws_.find(wsi); it != self->ws_.end()) {
      auto state = std::move(it->second);
      self->ws_.erase(it);
      state.conn->wsi_ = nullptr;
      state.session->on_close();
    }
    return 0;
  }
  return is_ws ? self->on_ws(wsi, reason, user, in, len) : self->on_http(wsi, reason, user, in, len);
}

Request Server::read_request(lws* wsi, const char* uri) {
  Request r;
  r.method = method_of(wsi);
  r.path = uri ? uri : "";
  // lws has already percent-decoded each "name=value" fragment of the query string.
  char frag[4096];
  for (int i = 0;; ++i) {
    int n = lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i);
    if (n < 0) break;
    std::string_view kv(frag, size_t(n));
    auto eq = kv.find('=');
    r.query[std::string(kv.substr(0, eq))] = eq == std::string_view::npos ? "" : std::string(kv.substr(eq + 1));
  }
  struct H {
    lws_token_indexes token;
    const char* name;
  };
  static const H kHeaders[] = {{WSI_TOKEN_HTTP_AUTHORIZATION, "authorization"},
                               {WSI_TOKEN_HTTP_CONTENT_TYPE, "content-type"},
                               {WSI_TOKEN_HTTP_CONTENT_LENGTH, "content-length"},
                               {WSI_TOKEN_HTTP_COOKIE, "cookie"},
                               {WSI_TOKEN_ORIGIN, "origin"},
                               {WSI_TOKEN_HOST, "host"},
                               {WSI_TOKEN_HTTP_ACCEPT_ENCODING, "accept-encoding"},
                               {WSI_TOKEN_PROTOCOL, "sec-websocket-protocol"}};
  for (const auto& h : kHeaders) {
    auto v = copy_header(wsi, h.token);
    if (!v.empty()) r.headers[h.name] = std::move(v);
  }
  for (const char* custom : {"x-rexec-agent-name:"}) {
    auto v = copy_custom_header(wsi, custom);
    if (!v.empty()) r.headers[std::string(custom, std::strlen(custom) - 1)] = std::move(v);
  }
  char peer[64] = {};
  lws_get_peer_simple(wsi, peer, sizeof(peer));
  r.peer = peer;
  r.via_socket = unix_vhost_ && lws_get_vhost(wsi) == unix_vhost_;
  if (r.via_socket) r.peer = "unix";
  return r;
}

// Writes a whole small response at once (used where lws gives no later writable callback:
// refusing an upgrade).
void Server::send_now(lws* wsi, const Response& response) {
  std::vector<uint8_t> buf(LWS_PRE + 2048);
  uint8_t* start = buf.data() + LWS_PRE;
  uint8_t* p = start;
  uint8_t* end = buf.data() + buf.size();
  if (lws_add_http_common_headers(wsi, unsigned(response.status), response.content_type.c_str(), response.body.size(),
                                  &p, end))
    return;
  for (const auto& [k, v] : response.headers)
    (void)!lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char*>((k + ":").c_str()),
                                reinterpret_cast<const unsigned char*>(v.c_str()), int(v.size()), &p, end);
  if (lws_finalize_write_http_header(wsi, start, &p, end)) return;
  std::vector<uint8_t> body(LWS_PRE + response.body.size());
  std::memcpy(body.data() + LWS_PRE, response.body.data(), response.body.size());
  lws_write(wsi, body.data() + LWS_PRE, response.body.size(), LWS_WRITE_HTTP_FINAL);
}

int Server::on_http(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  switch (reason) {
    case LWS_CALLBACK_HTTP: {
      auto ex = std::make_shared<HttpExchange>(wsi);
      ex->request = read_request(wsi, static_cast<const char*>(in));
      http_[wsi] = ex;
      if (draining_) {
        send_now(wsi, error_response(make_error("unavailable", "the hub is shutting down")));
        return -1;
      }
      auto cl = ex->request.header("content-length");
      size_t declared = cl ? std::strtoull(cl->c_str(), nullptr, 10) : 0;
      if (declared > options_.max_body) {
        send_now(wsi, error_response(make_error("body_too_large", "request body of " + std::to_string(declared) +
                                                                      " bytes is over the limit of " +
                                                                      std::to_string(options_.max_body))));
        // Lingering close: read and drop the body (up to a bound) before hanging up. Closing with
        // unread input makes the kernel send RST, which can destroy the 413 before the client
        // reads it.
        ex->discarding_ = true;
        return declared > kMaxDiscard ? -1 : 0;
      }
      if (declared > 0) return 0;  // wait for LWS_CALLBACK_HTTP_BODY_COMPLETION
      ex->dispatched_ = true;
      handler_.handle(ex);
      return 0;
    }
    case LWS_CALLBACK_HTTP_BODY: {
      auto it = http_.find(wsi);
      if (it == http_.end()) return -1;
      if (it->second->discarding_) return 0;
      auto& body = it->second->request.body;
      if (body.size() + len > options_.max_body) return -1;  // lied about content-length
      body.append(static_cast<const char*>(in), len);
      return 0;
    }
    case LWS_CALLBACK_HTTP_BODY_COMPLETION: {
      auto it = http_.find(wsi);
      if (it == http_.end() || it->second->discarding_) return -1;
      // lws completes a POST's (empty) body even when there was none to wait for: once only.
      if (it->second->dispatched_) return 0;
      it->second->dispatched_ = true;
      handler_.handle(it->second);
      return 0;
    }
    case LWS_CALLBACK_HTTP_WRITEABLE: {
      auto it = http_.find(wsi);
      if (it == http_.end() || !it->second->replied_) return 0;
      HttpExchange& ex = *it->second;
      const Response& r = ex.response_;
      if (!ex.headers_sent_) {
        std::vector<uint8_t> buf(LWS_PRE + 2048);
        uint8_t* start = buf.data() + LWS_PRE;
        uint8_t* p = start;
        uint8_t* end = buf.data() + buf.size();
        if (lws_add_http_header_status(wsi, unsigned(r.status), &p, end)) return -1;
        (void)reason_phrase;
        if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                         reinterpret_cast<const unsigned char*>(r.content_type.c_str()),
                                         int(r.content_type.size()), &p, end))
          return -1;
        if (lws_add_http_header_content_length(wsi, r.body.size(), &p, end)) return -1;
        static const std::pair<const char*, const char*> kSecurity[] = {
            {"x-content-type-options:", "nosniff"}, {"cache-control:", "no-store"}};
        for (const auto& [k, v] : kSecurity)
          (void)!lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char*>(k),
                                      reinterpret_cast<const unsigned char*>(v), int(std::strlen(v)), &p, end);
        for (const auto& [k, v] : r.headers) {
          std::string name = k + ":";
          for (auto& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
          if (lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char*>(name.c_str()),
                                          reinterpret_cast<const unsigned char*>(v.c_str()), int(v.size()), &p, end))
            return -1;
        }
        if (lws_finalize_write_http_header(wsi, start, &p, end)) return -1;
        ex.headers_sent_ = true;
        if (!r.body.empty()) {
          lws_callback_on_writable(wsi);
          return 0;
        }
      } else {
        size_t n = std::min(kBodyChunk, r.body.size() - ex.body_sent_);
        std::vector<uint8_t> chunk(LWS_PRE + n);
        std::memcpy(chunk.data() + LWS_PRE, r.body.data() + ex.body_sent_, n);
        bool last = ex.body_sent_ + n == r.body.size();
        if (lws_write(wsi, chunk.data() + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < int(n))
          return -1;
        ex.body_sent_ += n;
        if (!last) {
          lws_callback_on_writable(wsi);
          return 0;
        }
      }
      // Response complete: keep-alive for the next request, or close.
      http_.erase(it);
      return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
      Request req = read_request(wsi, nullptr);
      req.method = "GET";
      // The path of an upgrade request is the GET URI.
      req.path = copy_header(wsi, WSI_TOKEN_GET_URI);
      std::string proto = req.header("sec-websocket-protocol").value_or("");
      if (draining_) {
        send_now(wsi, error_response(make_error("unavailable", "the hub is shutting down")));
        return 1;
      }
      auto result = handler_.upgrade(req, proto);
      if (auto* response = std::get_if<Response>(&result)) {
        send_now(wsi, *response);
        return 1;
      }
      upgrading_[wsi] = std::move(std::get<std::unique_ptr<WsSession>>(result));
      return 0;
    }
    default:
      break;
  }
  return lws_callback_http_dummy(wsi, reason, user, in, len);
}

int Server::on_ws(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  switch (reason) {
    case LWS_CALLBACK_ESTABLISHED: {
      auto it = upgrading_.find(wsi);
      if (it == upgrading_.end()) return -1;  // an upgrade we did not approve
      WsState state{std::move(it->second), std::make_unique<WsConn>(wsi, this), {}};
      upgrading_.erase(it);
      auto& placed = ws_[wsi] = std::move(state);
      placed.session->on_open(*placed.conn);
      return 0;
    }
    case LWS_CALLBACK_RECEIVE: {
      auto it = ws_.find(wsi);
      if (it == ws_.end()) return -1;
      WsState& st = it->second;
      if (st.conn->closing_) return 0;
      if (lws_is_first_fragment(wsi)) st.partial.clear();
      if (st.partial.size() + len > st.session->max_message()) {
        st.conn->close(LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                       "message over the limit of " + std::to_string(st.session->max_message()) + " bytes");
        return 0;
      }
      const auto* bytes = static_cast<const uint8_t*>(in);
      bool binary = lws_frame_is_binary(wsi);
      if (lws_is_first_fragment(wsi) && lws_is_final_fragment(wsi)) {
        st.session->on_message(*st.conn, std::span(bytes, len), binary);  // the common case: no copy
        return 0;
      }
      st.partial.insert(st.partial.end(), bytes, bytes + len);
      if (lws_is_final_fragment(wsi)) {
        std::vector<uint8_t> message;
        message.swap(st.partial);
        st.session->on_message(*st.conn, message, binary);
      }
      return 0;
    }
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
      // lws does not know we wrote our close frame by hand (below), so the peer's answer looks
      // unsolicited to it and it would echo a second close, which browsers report as an error
      // ("Close received after close"). Our close is out: just hang up.
      auto it = ws_.find(wsi);
      if (it != ws_.end() && it->second.conn->close_sent_) return -1;
      return 0;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE: {
      auto it = ws_.find(wsi);
      if (it == ws_.end()) return -1;
      WsConn& conn = *it->second.conn;
      if (conn.closing_ && it->second.session->pending()) {
        it->second.session->on_writable(conn);
        conn.want_write();
        return 0;
      }
      if (conn.closing_) {
        if (conn.close_sent_) return 0;
        // Write the close frame ourselves: with lws_close_reason() + return -1, Debian's lws
        // (built with _DEBUG) closes the socket a second time at once ("uv repeat test") and
        // the peer never learns why.
        std::vector<uint8_t> frame(LWS_PRE + 2 + conn.close_reason_.size());
        frame[LWS_PRE] = uint8_t(conn.close_code_ >> 8);
        frame[LWS_PRE + 1] = uint8_t(conn.close_code_);
        std::memcpy(frame.data() + LWS_PRE + 2, conn.close_reason_.data(), conn.close_reason_.size());
        constexpr auto kWriteClose = static_cast<lws_write_protocol>(4);  // LWS_WRITE_CLOSE, internal in 4.1
        lws_write(wsi, frame.data() + LWS_PRE, frame.size() - LWS_PRE, kWriteClose);
        // Do not close the socket yet: with the peer's data still unread on our side, close()
        // sends a RST, and a RST makes the peer's kernel drop what it has not read yet, our
        // close frame included. Keep reading (and dropping) until the peer answers the close,
        // or give up after a few seconds.
        conn.close_sent_ = true;
        lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_ACK, 3);
        return 0;
      }
      it->second.session->on_writable(conn);
      return 0;
    }
    default:
      break;
  }
  (void)user;
  return 0;
}

}  // namespace rx::hub
