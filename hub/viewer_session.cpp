#include "hub/viewer_session.h"

#include "hub/log.h"
#include "protocol/limits.h"
#include "protocol/viewer.h"

namespace rx::hub {

namespace viewer = protocol::viewer;

ViewerSession::ViewerSession(Relay& relay, std::string terminal_id, bool read_only, std::optional<uint64_t> since,
                             std::string who, std::string ip, std::string share_id)
    : relay_(relay),
      terminal_id_(std::move(terminal_id)),
      read_only_(read_only),
      since_(since),
      who_(std::move(who)),
      ip_(std::move(ip)),
      share_id_(std::move(share_id)) {
  relay_.viewer_opened(terminal_id_, who_);
}

ViewerSession::~ViewerSession() {
  if (terminal_) terminal_->remove_viewer(this);
  relay_.viewer_closed(terminal_id_, who_);
  if (opened_) (void)relay_.store().audit(audit_entry(who_, "terminal.detach", terminal_id_, "", ip_));
}

size_t ViewerSession::max_message() const { return protocol::kMaxViewerMessage; }

void ViewerSession::on_open(WsConn& conn) {
  conn_ = &conn;
  opened_ = true;
  terminal_ = relay_.terminal(terminal_id_);
  if (!terminal_) {
    conn.close(1000, "terminal deleted");
    return;
  }
  terminal_->add_viewer(this, since_);
}

void ViewerSession::on_message(WsConn& conn, std::span<const uint8_t> message, bool binary) {
  if (!terminal_) return;
  if (!binary) {
    conn.close(1003, "the viewer protocol uses binary messages");
    return;
  }
  auto m = viewer::decode_client(message);
  if (!m) {
    queue_event({{"type", "error"}, {"code", m.error().code}, {"message", m.error().message}});
    return;  // a bad message is refused, the session goes on
  }
  if (auto* in = std::get_if<viewer::Input>(&*m)) {
    if (read_only_) {
      ++relay_.counters().frames_dropped;
      queue_event({{"type", "error"}, {"code", "read_only"}, {"message", "this viewer may not send input"}});
      return;
    }
    relay_.counters().input_bytes += in->bytes.size();
    if (auto s = terminal_->send_input(in->bytes); !s) {
      ++relay_.counters().frames_dropped;
      queue_event({{"type", "error"}, {"code", s.error().code}, {"message", s.error().message}});
    }
  } else if (auto* r = std::get_if<viewer::Resize>(&*m)) {
    if (!read_only_) terminal_->resize(r->cols, r->rows);
  }
}

void ViewerSession::on_writable(WsConn& conn) {
  // Events first, then output; several messages per callback while the socket takes them.
  for (int budget = 16; budget > 0; --budget) {
    if (!events_.empty()) {
      if (!conn.send(events_.front())) return;
      events_.pop_front();
    } else {
      if (!terminal_) return;
      auto message = terminal_->next_output(this, protocol::kMaxViewerMessage - 16, kFrameHeadroom);
      if (message.empty()) return;  // up to date: the terminal wakes us when there is more
      if (!conn.send(message)) return;
    }
    // choked() is a syscall: ask only when there is more to send.
    bool more = !events_.empty() || (terminal_ && terminal_->has_output_for(this));
    if (!more) return;
    if (conn.choked()) break;
  }
  conn.want_write();
}

void ViewerSession::on_close() {
  conn_ = nullptr;
  if (terminal_) terminal_->remove_viewer(this);
  terminal_ = nullptr;
}

void ViewerSession::wake() {
  if (conn_) conn_->want_write();
}

void ViewerSession::queue_event(const nlohmann::json& event) {
  events_.push_back(viewer::encode_event(event.dump(), kFrameHeadroom));
  wake();
}

void ViewerSession::terminal_gone(const std::string& reason) {
  terminal_ = nullptr;
  if (conn_) conn_->close(1000, reason);
}

}  // namespace rx::hub
