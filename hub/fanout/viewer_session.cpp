#include "hub/fanout/viewer_session.h"

#include "hub/base/guard.h"
#include "hub/base/json_text.h"
#include "protocol/limits.h"
#include "protocol/log_line.h"
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
  guarded("viewer.destroy", [&] {
    if (terminal_) terminal_->remove_viewer(this);
    relay_.viewer_closed(terminal_id_, who_);
    if (opened_) relay_.writes().audit(audit_entry(who_, "terminal.detach", terminal_id_, "", ip_));
  });
}

size_t ViewerSession::max_message() const { return protocol::kMaxViewerMessage; }

void ViewerSession::on_open(WsConn& conn) {
  conn_ = &conn;
  opened_ = true;
  bool ok = guarded("viewer.open", [&] {
    terminal_ = relay_.terminal(terminal_id_);
    if (!terminal_) {
      conn.close(1000, "terminal deleted");
      return;
    }
    terminal_->add_viewer(this, since_);
  });
  if (!ok) conn.close(1011, "internal error");
}

void ViewerSession::on_message(WsConn& conn, std::span<const uint8_t> message, bool binary) {
  if (!guarded("viewer.message", [&] { handle(conn, message, binary); })) conn.close(1011, "internal error");
}

void ViewerSession::error_event(std::string_view code, std::string_view message) {
  if (!conn_ || conn_->closing()) return;
  for (auto& p : events_) {
    if (p.type != "error" || p.code != code) continue;
    if (++p.repeated >= kMaxRepeats) {
      events_.clear();
      conn_->close(4008, "refused messages keep coming and the viewer reads none of its answers");
    }
    return;
  }
  queue_event({{"type", "error"}, {"code", code}, {"message", message}});
}

void ViewerSession::handle(WsConn& conn, std::span<const uint8_t> message, bool binary) {
  if (!terminal_) return;
  if (!binary) {
    conn.close(1003, "the viewer protocol uses binary messages");
    return;
  }
  auto m = viewer::decode_client(message);
  if (!m) return error_event(m.error().code, m.error().message);  // a bad message is refused, the session goes on
  if (auto* in = std::get_if<viewer::Input>(&*m)) {
    if (read_only_) {
      ++relay_.counters().frames_dropped;
      return error_event("read_only", "this viewer may not send input");
    }
    relay_.counters().input_bytes += in->bytes.size();
    if (auto s = terminal_->send_input(in->bytes); !s) {
      ++relay_.counters().frames_dropped;
      error_event(s.error().code, s.error().message);
    }
  } else if (auto* r = std::get_if<viewer::Resize>(&*m)) {
    if (!read_only_) terminal_->resize(r->cols, r->rows);
  }
}

void ViewerSession::on_writable(WsConn& conn) {
  if (!guarded("viewer.writable", [&] { write(conn); })) conn.close(1011, "internal error");
}

void ViewerSession::write(WsConn& conn) {
  // Events first, then output; several messages per callback while the socket takes them.
  for (int budget = 16; budget > 0; --budget) {
    if (!events_.empty()) {
      auto& front = events_.front();
      if (front.repeated) front.event["repeated"] = front.repeated;
      auto message = viewer::encode_event(json_text(front.event), kFrameHeadroom);
      if (!conn.send(message)) return;
      events_.pop_front();
    } else {
      if (!terminal_) return;
      auto chunk = terminal_->take_output(this, protocol::kMaxViewerMessage - 16);
      if (chunk.size() == 0) return;  // up to date: the terminal wakes us when there is more
      auto message = viewer::encode_output(chunk.offset, chunk.first, chunk.second, kFrameHeadroom);
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
  if (terminal_) guarded("viewer.close", [&] { terminal_->remove_viewer(this); });
  terminal_ = nullptr;
}

void ViewerSession::wake() {
  if (conn_) conn_->want_write();
}

void ViewerSession::queue_event(const nlohmann::json& event) {
  if (!conn_ || conn_->closing()) return;
  std::string type = event.value("type", "");
  if (type == "error") {
    std::string code = event.value("code", "");
    for (auto& p : events_)
      if (p.type == "error" && p.code == code) return void(++p.repeated);  // not sent yet: counted in
  } else if (type == "status" || type == "viewers") {
    for (auto& p : events_)
      if (p.type == type) return void(p.event = event);  // not sent yet: only the latest state matters
  } else {
    type.clear();
  }
  if (events_.size() >= kMaxQueuedEvents) {
    events_.clear();
    conn_->close(4008, "event backlog: the viewer is not reading; reconnect");
    return;
  }
  std::string code = type == "error" ? event.value("code", "") : "";
  events_.push_back({std::move(type), std::move(code), event, 0});
  wake();
}

void ViewerSession::terminal_gone(const std::string& reason) {
  terminal_ = nullptr;
  if (conn_) conn_->close(1000, reason);
}

}  // namespace rx::hub
