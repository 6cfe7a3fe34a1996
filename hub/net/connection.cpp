// Connection: reading, HTTP, writing and closing. The WebSocket side of a connection is in
// connection_ws.cpp.
#include "hub/net/connection.h"

#include <algorithm>
#include <cstring>

#include "protocol/log_line.h"

namespace rx::hub {
namespace {

constexpr const char* kWsProtocols[] = {"rexec.agent.v1", "rexec.term.v1", "rexec.events.v1"};

const char* reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

bool safe_header(const std::string& name, const std::string& value) {
  if (name.empty()) return false;
  for (unsigned char c : name)
    if (c <= ' ' || c == ':' || c >= 0x7f) return false;
  for (unsigned char c : value)
    if ((c < ' ' && c != '\t') || c == 0x7f) return false;
  return true;
}

bool has_header(const Response& r, std::string_view lower_name) {
  for (const auto& [k, v] : r.headers) {
    if (k.size() != lower_name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < k.size() && same; ++i) same = std::tolower(static_cast<unsigned char>(k[i])) == lower_name[i];
    if (same) return true;
  }
  return false;
}

}  // namespace

Connection::Connection(Server& server, bool via_socket) : server_(server), via_socket_(via_socket) {
  if (via_socket) uv_pipe_init(server.loop_, &handle_.pipe, 0);
  else uv_tcp_init(server.loop_, &handle_.tcp);
  handle_.tcp.data = this;  // (data is at the same place in every handle type)
}

Connection::~Connection() = default;

void Connection::start(std::string peer, const TlsContext* tls, const Response* refuse_with) {
  peer_ = std::move(peer);
  if (!via_socket_) uv_tcp_nodelay(&handle_.tcp, 1);  // keystrokes are small: no Nagle delay
  if (tls) tls_ = std::make_unique<TlsSession>(*tls);
  last_rx_ = last_tx_ = uv_now(server_.loop_);
  deadline_ = last_rx_ + server_.options_.head_timeout_ms;
  update_reading();
  if (refuse_with) {
    close_after_ = true;
    keep_alive_ = false;
    exchange_ = std::make_shared<HttpExchange>();
    exchange_->conn_ = this;
    state_ = State::kHandling;
    exchange_->reply(*refuse_with);
  }
}

// ---- reading ----------------------------------------------------------------------------------

void Connection::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(h->data);
  auto& b = c->server_.read_buffer_;
  *buf = uv_buf_init(reinterpret_cast<char*>(b.data()), unsigned(b.size()));
}

void Connection::on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(s->data);
  if (c->closed_) return;
  if (n == 0) return;  // EAGAIN
  if (n == UV_EOF) return c->on_eof();
  if (n < 0) return c->close_now("read error");
  c->last_rx_ = uv_now(c->server_.loop_);
  c->ping_sent_ = false;
  auto* data = reinterpret_cast<uint8_t*>(buf->base);
  if (c->shutting_) {  // lingering: the peer's last words are read and dropped
    if ((c->lingered_ += size_t(n)) > kMaxLinger) c->close_now("linger limit");
    return;
  }
  try {
    if (!c->tls_) return c->received(data, size_t(n));
    std::string plain, wire;
    auto r = c->tls_->receive(std::span<const uint8_t>(data, size_t(n)), plain, wire);
    if (!wire.empty()) c->queue_wire(std::move(wire));
    if (r == TlsSession::Read::kError) return c->close_now("tls error");
    if (!plain.empty()) c->received(reinterpret_cast<uint8_t*>(plain.data()), plain.size());
    if (r == TlsSession::Read::kClosed && !c->closed_) c->on_eof();
  } catch (const std::exception& e) {
    // Last resort: whatever went wrong is this connection's problem, never the hub's.
    log("error", "connection.exception", {{"peer", c->peer_}, {"what", e.what()}});
    c->close_now("exception");
  }
}

void Connection::received(uint8_t* data, size_t len) {
  if (state_ == State::kWs) {
    if (auto error = reader_.feed(data, len, *this)) {
      // A protocol violation: say why at once (the session's queued frames are not sent), then go.
      log("info", "connection.dropped", {{"peer", peer_}, {"why", error->reason}});
      if (!close_sent_) {
        std::string payload{char(error->code >> 8), char(error->code & 0xff)};
        payload += clip_reason(error->reason);
        send_control(ws::kClose, payload);
        close_sent_ = true;
      }
      ws_closing_ = peer_closed_ = true;
      close_gracefully();
    }
    return;
  }
  in_.append(reinterpret_cast<const char*>(data), len);
  process_http();
}

void Connection::on_eof() {
  peer_eof_ = true;
  switch (state_) {
    case State::kHandling:
    case State::kResponding:
      // The client stopped sending; it may still read the answer (a half-close), unless the answer
      // is a stream it has evidently given up on, or work it would cancel (on_gone): HTTP clients
      // do not half-close while they wait, so that EOF is a client that quit (a CLI's Ctrl-C).
      if (exchange_ && (exchange_->streaming_ || (exchange_->on_gone && !exchange_->replied_)))
        return close_now("client gone");
      keep_alive_ = false;
      update_reading();
      return;
    case State::kLinger:
    default:
      return close_now("eof");
  }
}

void Connection::update_reading() {
  bool want = !closed_ && !session_paused_ && !peer_eof_;
  // A streamed body is read only while its handler takes it (backpressure to the client).
  if (streaming_body_ && (body_paused_ || !exchange_ || !exchange_->on_body)) want = false;
  // While an answer is being made, later requests wait in in_, up to a bound.
  if (state_ != State::kWs && !shutting_ && in_.size() > kMaxPipelined) want = false;
  if (want == reading_) return;
  reading_ = want;
  if (want) uv_read_start(stream(), &Connection::on_alloc, &Connection::on_read);
  else uv_read_stop(stream());
}

// ---- HTTP -------------------------------------------------------------------------------------

void Connection::process_http() {
  while (!closed_ && !shutting_) {
    if (state_ == State::kHead) {
      if (in_.empty()) return;
      auto parsed = parse_request_head(in_, server_.options_.head_limits);
      if (parsed.state == HeadParse::kIncomplete) return;
      if (parsed.state == HeadParse::kError) return refuse(parsed.error);
      in_.erase(0, parsed.length);
      head_ = std::move(parsed.head);
      keep_alive_ = head_.keep_alive;
      head_only_ = head_.method == "HEAD";
      exchange_ = std::make_shared<HttpExchange>();
      exchange_->conn_ = this;
      if (head_.upgrade) return upgrade();
      bool streamed = !server_.draining_ && server_.handler_.streams_body(head_);
      body_ = BodyReader(head_.body, head_.content_length, streamed ? SIZE_MAX : server_.options_.max_body);
      if (body_.error()) return refuse(*body_.error());  // declared over the limit: 413 before reading it
      if (head_.expect_continue) send_plain(std::string("HTTP/1.1 100 Continue\r\n\r\n"));
      state_ = State::kBody;
      deadline_ = 0;
      if (streamed) {
        // The handler decides (authorisation, the size it accepts) before any body byte is read.
        streaming_body_ = true;
        body_paused_ = false;
        body_end_sent_ = false;
        dispatch();
        return feed_body();
      }
    }
    if (streaming_body_) return feed_body();
    if (state_ == State::kBody) {
      if (!body_.done()) {
        size_t used = body_.feed(in_, exchange_->request.body);
        in_.erase(0, used);
        if (body_.error()) return refuse(*body_.error());
        if (!body_.done()) return;  // more to come
      }
      dispatch();
      continue;
    }
    return;  // handling or responding: later requests wait
  }
}

void Connection::feed_body() {
  while (!closed_ && streaming_body_ && !body_paused_ && exchange_ && exchange_->on_body && !body_end_sent_ &&
         (!in_.empty() || body_.done())) {
    std::string piece;
    if (!body_.done()) {
      size_t used = body_.feed(in_, piece);
      in_.erase(0, used);
      if (body_.error()) {
        // A malformed chunked body: the handler hears of it as a client gone (on_gone).
        keep_alive_ = false;
        return close_now("bad request body");
      }
      if (piece.empty() && !body_.done()) break;  // a chunk header split across reads
    }
    body_end_sent_ = body_.done();
    auto ex = exchange_;  // on_body may reply, or close this connection
    ex->on_body(piece, body_end_sent_);
  }
  if (closed_) return;
  if (body_end_sent_ || !exchange_) streaming_body_ = false;
  update_reading();
}

void Connection::body_pause(bool paused) {
  if (closed_ || !streaming_body_) return;
  body_paused_ = paused;
  if (paused) return update_reading();
  last_rx_ = uv_now(server_.loop_);  // the idle clock starts when we want bytes again
  feed_body();
}

Request make_request(const RequestHead& head, std::string body, std::string peer, bool via_socket) {
  Request r;
  r.method = head.method == "HEAD" ? "GET" : head.method;  // HEAD is GET without the body
  r.path = head.path;
  r.query = head.query;
  r.headers = head.fields;
  r.body = std::move(body);
  r.peer = std::move(peer);
  r.via_socket = via_socket;
  return r;
}

void Connection::dispatch() {
  state_ = State::kHandling;
  last_rx_ = uv_now(server_.loop_);
  exchange_->request = make_request(head_, std::move(exchange_->request.body), peer_, via_socket_);
  update_reading();
  if (server_.draining_) {
    keep_alive_ = false;
    return exchange_->reply(error_response(make_error("unavailable", "the hub is shutting down")));
  }
  auto ex = exchange_;  // the handler may outlive this connection with it
  try {
    server_.handler_.handle(ex);
  } catch (const std::exception& e) {
    log("error", "http.handler_exception", {{"path", ex->request.path}, {"what", e.what()}});
    keep_alive_ = false;
    ex->reply(error_response(make_error("internal", "internal error")));
  }
}

void Connection::upgrade() {
  auto version = head_.fields.find("sec-websocket-version");
  auto key = head_.fields.find("sec-websocket-key");
  if (head_.method != "GET") return refuse({400, "bad_request", "a WebSocket upgrade must be a GET"});
  if (version == head_.fields.end() || version->second != "13")
    return refuse({426, "upgrade_required", "only WebSocket version 13 is spoken here"}, {{"Sec-WebSocket-Version", "13"}});
  if (key == head_.fields.end() || !ws_valid_key(key->second))
    return refuse({400, "bad_request", "Sec-WebSocket-Key must be the base64 of 16 bytes"});
  if (server_.draining_) return refuse({503, "unavailable", "the hub is shutting down"});
  Request req = make_request(head_, "", peer_, via_socket_);
  std::string offered = req.header("sec-websocket-protocol").value_or("");
  std::variant<std::unique_ptr<WsSession>, Response> result;
  try {
    result = server_.handler_.upgrade(req, offered);
  } catch (const std::exception& e) {
    log("error", "ws.upgrade_exception", {{"path", req.path}, {"what", e.what()}});
    return refuse({500, "internal", "internal error"});
  }
  if (auto* response = std::get_if<Response>(&result)) {
    keep_alive_ = false;
    state_ = State::kHandling;
    return exchange_->reply(std::move(*response));
  }
  // The first protocol the client offers that the hub speaks (the handler checked it fits the path).
  std::string chosen;
  for (size_t pos = 0; chosen.empty() && pos <= offered.size();) {
    auto comma = offered.find(',', pos);
    std::string token = offered.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.erase(0, 1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.pop_back();
    for (const char* p : kWsProtocols)
      if (token == p) chosen = token;
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  std::string head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: " + ws_accept_key(key->second) + "\r\n";
  if (!chosen.empty()) head += "Sec-WebSocket-Protocol: " + chosen + "\r\n";
  head += "\r\n";
  send_plain(std::move(head));
  exchange_.reset();
  session_ = std::move(std::get<std::unique_ptr<WsSession>>(result));
  reader_.set_max_message(session_->max_message());
  state_ = State::kWs;
  deadline_ = 0;
  if (counted_http_) {
    counted_http_ = false;
    if (auto it = server_.http_per_ip_.find(peer_); it != server_.http_per_ip_.end() && --it->second == 0)
      server_.http_per_ip_.erase(it);
  }
  ++server_.ws_count_;
  update_reading();
  try {
    session_->on_open(conn_);
  } catch (const std::exception& e) {
    log("error", "ws.exception", {{"peer", peer_}, {"what", e.what()}});
    return close_now("exception");
  }
  if (!in_.empty() && !closed_) {  // frames that came with the head
    std::string early;
    early.swap(in_);
    received(reinterpret_cast<uint8_t*>(early.data()), early.size());
  }
}

void Connection::refuse(const HttpError& error, std::vector<std::pair<std::string, std::string>> headers) {
  log("info", "http.refused", {{"peer", peer_}, {"status", std::to_string(error.status)}, {"code", error.code}});
  Response r = json_response(error.status, {{"error", error.message}, {"code", error.code}});
  r.headers = std::move(headers);
  // Whatever follows a request we could not parse cannot be trusted to start a new one.
  keep_alive_ = false;
  close_after_ = true;
  in_.clear();
  if (!exchange_) {
    exchange_ = std::make_shared<HttpExchange>();
    exchange_->conn_ = this;
  }
  state_ = State::kHandling;
  exchange_->reply(std::move(r));
}

void Connection::respond(HttpExchange& ex, Response r, bool stream) {
  if (closed_ || &ex != exchange_.get()) return;
  state_ = State::kResponding;
  if (!keep_alive_ || server_.draining_) close_after_ = true;
  // An answer before the whole streamed body came (an error): the rest is not worth reading.
  if (streaming_body_ && !body_end_sent_) {
    close_after_ = true;
    streaming_body_ = false;
    update_reading();
  }
  bool no_body = r.status == 204 || r.status == 304 || (r.status >= 100 && r.status < 200);
  // A stream whose handler knows its length (a download) says so and is not chunked.
  bool sized = stream && has_header(r, "content-length");
  chunked_out_ = stream && !sized && head_.minor == 1 && !no_body;
  if (stream && !chunked_out_ && !sized) close_after_ = true;  // HTTP/1.0: the end of the body is the close
  std::string out;
  out.reserve(256 + (head_only_ ? 0 : r.body.size()));
  out += "HTTP/1.1 " + std::to_string(r.status) + " " + reason_phrase(r.status) + "\r\n";
  if (!no_body && !r.content_type.empty()) out += "Content-Type: " + r.content_type + "\r\n";
  if (chunked_out_) out += "Transfer-Encoding: chunked\r\n";
  else if (!no_body && !stream) out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += "X-Content-Type-Options: nosniff\r\n";
  if (!has_header(r, "cache-control")) out += "Cache-Control: no-store\r\n";
  if (close_after_) out += "Connection: close\r\n";
  for (const auto& [k, v] : r.headers) {
    if (!safe_header(k, v)) {  // a value from a peer with CR/LF in it must not split the response
      log("warn", "http.header_dropped", {{"name", k}});
      continue;
    }
    out += k + ": " + v + "\r\n";
  }
  out += "\r\n";
  if (!head_only_ && !no_body && !stream) out += r.body;
  send_plain(std::move(out));
  response_complete_ = !stream || head_only_ || no_body;
  flush_out();
}

void Connection::stream_write(std::string_view bytes) {
  if (closed_ || response_complete_ || bytes.empty()) return;
  if (!chunked_out_) return send_plain(std::string(bytes));
  char size[24];
  int n = std::snprintf(size, sizeof(size), "%zx\r\n", bytes.size());
  std::string chunk;
  chunk.reserve(size_t(n) + bytes.size() + 2);
  chunk.append(size, size_t(n)).append(bytes).append("\r\n");
  send_plain(std::move(chunk));
}

void Connection::stream_finish() {
  if (closed_ || response_complete_) return;
  response_complete_ = true;
  if (chunked_out_) send_plain(std::string("0\r\n\r\n"));
  flush_out();
}

void Connection::response_done() {
  if (exchange_) exchange_->conn_ = nullptr;
  exchange_.reset();
  response_complete_ = false;
  streaming_body_ = false;
  if (close_after_ || !keep_alive_ || server_.draining_) return close_gracefully();
  state_ = State::kHead;
  deadline_ = uv_now(server_.loop_) + server_.options_.head_timeout_ms;
  update_reading();
  if (!in_.empty()) server_.defer(this);  // a pipelined request: parsed in run_due, not in this stack
}

// ---- writing ----------------------------------------------------------------------------------

void Connection::queue_wire(std::vector<uint8_t> bytes, size_t from) {
  if (closed_ || from >= bytes.size()) return;
  out_bytes_ += bytes.size() - from;
  out_.push_back(OutBuf{std::move(bytes), {}, from});
  flush_out();
}

void Connection::queue_wire(std::string bytes) {
  if (closed_ || bytes.empty()) return;
  out_bytes_ += bytes.size();
  out_.push_back(OutBuf{{}, std::move(bytes), 0});
  flush_out();
}

void Connection::send_plain(std::vector<uint8_t> bytes, size_t from) {
  if (!tls_) return queue_wire(std::move(bytes), from);
  std::string wire;
  tls_->send(std::span<const uint8_t>(bytes.data() + from, bytes.size() - from), wire);
  queue_wire(std::move(wire));
}

void Connection::send_plain(std::string bytes) {
  if (!tls_) return queue_wire(std::move(bytes));
  std::string wire;
  tls_->send(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), wire);
  queue_wire(std::move(wire));
}

void Connection::flush_out() {
  if (closed_ || writing_) return;
  while (!out_.empty()) {
    uv_buf_t bufs[16];
    unsigned n = 0;
    for (auto it = out_.begin(); it != out_.end() && n < 16; ++it, ++n)
      bufs[n] = uv_buf_init(const_cast<char*>(it->data()) + it->pos, unsigned(it->size() - it->pos));
    int r = uv_try_write(stream(), bufs, n);
    if (r == UV_EAGAIN || r == 0) {
      // The kernel is full: hand the rest to libuv, which writes it when the socket drains.
      size_t total = 0;
      for (unsigned i = 0; i < n; ++i) total += bufs[i].len;
      write_req_.data = this;
      if (uv_write(&write_req_, stream(), bufs, n, &Connection::on_written) != 0) return close_now("write error");
      writing_ = true;
      in_flight_ = total;
      return;
    }
    if (r < 0) return close_now("write error");
    last_tx_ = uv_now(server_.loop_);
    size_t left = size_t(r);
    out_bytes_ -= left;
    while (left > 0) {
      OutBuf& b = out_.front();
      size_t take = std::min(left, b.size() - b.pos);
      b.pos += take;
      left -= take;
      if (b.pos == b.size()) out_.pop_front();
    }
  }
  drained();
}

void Connection::on_written(uv_write_t* req, int status) {
  auto* c = static_cast<Connection*>(req->data);
  c->writing_ = false;
  if (c->closed_) return;
  if (status < 0) return c->close_now("write error");
  c->last_tx_ = uv_now(c->server_.loop_);
  size_t left = c->in_flight_;
  c->out_bytes_ -= left;
  while (left > 0 && !c->out_.empty()) {
    OutBuf& b = c->out_.front();
    size_t take = std::min(left, b.size() - b.pos);
    b.pos += take;
    left -= take;
    if (b.pos == b.size()) c->out_.pop_front();
  }
  c->in_flight_ = 0;
  c->flush_out();
}

void Connection::drained() {
  if (closed_ || !out_.empty() || writing_) return;
  if (shutting_) {
    // Everything of ours is out: now FIN (uv_shutdown), then read and drop until the peer hangs up.
    if (fin_sent_) return;
    fin_sent_ = true;
    shutdown_req_.data = this;
    if (uv_shutdown(&shutdown_req_, stream(), &Connection::on_shutdown_done) != 0) close_now("shutdown failed");
    return;
  }
  switch (state_) {
    case State::kResponding:
      if (response_complete_) return response_done();
      if (exchange_ && exchange_->on_drain) exchange_->on_drain();
      return;
    case State::kWs:
      if (ws_closing_ && close_sent_ && peer_closed_) return close_gracefully();
      if (write_wanted_) server_.defer(this);
      return;
    default:
      return;
  }
}

}  // namespace rx::hub
