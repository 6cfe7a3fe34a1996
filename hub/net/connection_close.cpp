// Connection: deferred work, deadlines, and closing (gracefully or at once), where the
// exchange and the session hear that their connection is gone.
#include "hub/net/connection.h"

#include <algorithm>
#include <iterator>
#include <string_view>

#include "protocol/log_line.h"

namespace rx::hub {

// ---- deferred work, deadlines, closing ---------------------------------------------------------

void Connection::run_due() {
  ended_session_.reset();  // its on_close ran in an earlier callback of this turn (end_session)
  if (closed_) return;
  if (state_ == State::kWs) return ws_step();
  if (state_ == State::kHead && !in_.empty()) process_http();
}

void Connection::check(uint64_t now) {
  if (closed_) return;
  const ServerOptions& o = server_.options_;
  switch (state_) {
    case State::kHead:
      if (deadline_ && now >= deadline_) {
        // A partial head after the deadline is a slow sender (slowloris); an empty one is an idle
        // keep-alive connection, closed without a word.
        if (in_.empty() || shutting_) return close_now("idle");
        return refuse({408, "request_timeout", "the request head did not arrive in time"});
      }
      return;
    case State::kBody:
      if (now - last_rx_ >= o.body_idle_ms) return refuse({408, "request_timeout", "the request body stopped arriving"});
      return;
    case State::kHandling:
      // A streamed body that stops arriving while the handler wants it (it is not paused).
      if (streaming_body_ && !body_paused_ && now - last_rx_ >= o.body_idle_ms) return close_now("request body stalled");
      return;  // the handler has its own limits (exec's timeout, Docker's)
    case State::kResponding:
      if ((writing_ || !out_.empty()) && now - last_tx_ >= o.write_idle_ms) return close_now("client not reading");
      return;
    case State::kWs:
      if (close_sent_ && deadline_ && now >= deadline_) return close_now("close not answered");
      if (session_paused_) return;
      if (now - last_rx_ >= o.ws_hangup_after_ms) return close_now("websocket quiet");
      if (now - last_rx_ >= o.ws_ping_after_ms && !ping_sent_ && !close_sent_) {
        ping_sent_ = true;
        send_control(ws::kPing, "");
      }
      if ((writing_ || !out_.empty()) && now - last_tx_ >= o.ws_hangup_after_ms) return close_now("peer not reading");
      return;
    case State::kLinger:
      if (deadline_ && now >= deadline_) return close_now("linger done");
      return;
  }
}

void Connection::close_gracefully() {
  if (closed_ || shutting_) return;
  shutting_ = true;
  // The WebSocket is over once the close frames are exchanged: its session ends now, not after
  // the lingering below.
  end_session();
  if (exchange_) {
    exchange_->conn_ = nullptr;
    exchange_.reset();
  }
  if (tls_) {
    std::string wire;
    tls_->shutdown(wire);
    queue_wire(std::move(wire));
  }
  update_reading();
  flush_out();  // drained() sends the FIN once our last bytes are out
}

void Connection::on_shutdown_done(uv_shutdown_t* req, int status) {
  auto* c = static_cast<Connection*>(req->data);
  if (c->closed_) return;
  if (status < 0) return c->close_now("shutdown failed");
  c->state_ = State::kLinger;
  c->deadline_ = uv_now(c->server_.loop_) + kLingerMs;
  c->update_reading();
  if (c->peer_eof_) c->close_now("done");
}

void Connection::close_now(const char* why) {
  if (closed_) return;
  closed_ = true;
  // The ordinary ends (a peer that hung up, an idle keep-alive, shutdown) are not news; a
  // connection cut for misbehaving or failing is, for whoever wonders where a viewer went.
  static constexpr std::string_view kOrdinary[] = {"eof", "client gone", "idle", "linger done", "done", "shutdown failed",
                                                     "hub stopping"};
  if (std::find(std::begin(kOrdinary), std::end(kOrdinary), why) == std::end(kOrdinary))
    log("info", "connection.dropped", {{"peer", peer_}, {"why", why}});
  if (counted_http_) {
    counted_http_ = false;
    if (auto it = server_.http_per_ip_.find(peer_); it != server_.http_per_ip_.end() && --it->second == 0)
      server_.http_per_ip_.erase(it);
  }
  end_session();
  if (exchange_) {
    auto ex = std::move(exchange_);
    ex->conn_ = nullptr;
    if (!ex->finished_ && ex->on_gone) {
      try {
        ex->on_gone();
      } catch (const std::exception&) {
      }
    }
  }
  if (reading_) uv_read_stop(stream());
  reading_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&handle_), &Connection::on_closed);
}

void Connection::end_session() {
  if (!session_) return;
  --server_.ws_count_;
  // The session hears now that its connection is gone, but is destroyed only at the end of this
  // loop turn: end_session may run inside one of the session's own calls (a failed send of its
  // own frame closes the connection), which must not return into a destroyed object.
  ended_session_ = std::move(session_);
  try {
    ended_session_->on_close();
  } catch (const std::exception& e) {
    log("error", "ws.exception", {{"peer", peer_}, {"what", e.what()}});
  }
  server_.defer(this);
}

void Connection::on_closed(uv_handle_t* h) {
  auto* c = static_cast<Connection*>(h->data);
  c->server_.forget(c);
  delete c;
}

}  // namespace rx::hub
