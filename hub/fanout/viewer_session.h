// ViewerSession: one viewer's WebSocket (rexec.term.v1) on a terminal. Output is pulled from the
// Terminal's ring only when the socket is writable, so a slow viewer never makes the
// hub buffer output: it just holds back the terminal's credit. Input from a read-only viewer is
// dropped here, on the hub, and answered with a read_only error event.
//
// Events wait in a bounded queue (protocol/SPEC.md, "Bounds"): an error event of a code already
// queued is counted into it ("repeated": N) instead of queued again — at the cost of a string
// compare, no JSON — and a status or viewers event replaces the queued one; a viewer that still
// lets kMaxQueuedEvents pile up, or has kMaxRepeats refusals merged into an event it never read,
// is closed with 4008. So a viewer that never reads and keeps sending costs a few events, not
// memory, and not much time.
#pragma once

#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "hub/channel/relay.h"
#include "hub/channel/terminal.h"
#include "hub/net/server.h"

namespace rx::hub {

class ViewerSession final : public WsSession, public OutputSink {
 public:
  static constexpr size_t kMaxQueuedEvents = 256;
  static constexpr uint64_t kMaxRepeats = 10000;

  // The terminal is looked up when the socket opens: it may have been deleted since the upgrade.
  // `who`: the user's id, or "share:<id>" with `share_id` for a share link's viewer.
  ViewerSession(Relay& relay, std::string terminal_id, bool read_only, std::optional<uint64_t> since, std::string who,
                std::string ip, std::string share_id = "");
  ~ViewerSession() override;

  // WsSession (each guarded: an exception closes this viewer with 1011, nothing else)
  void on_open(WsConn& conn) override;
  void on_message(WsConn& conn, std::span<const uint8_t> message, bool binary) override;
  void on_writable(WsConn& conn) override;
  void on_close() override;
  size_t max_message() const override;
  bool pending() const override { return !events_.empty(); }

  void wake() override;
  void queue_event(const nlohmann::json& event) override;
  void terminal_gone(const std::string& reason) override;
  const std::string& share_id() const override { return share_id_; }

 private:
  struct Pending {
    std::string type;  // "error", "status", "viewers" merge with a later one of their kind; others ""
    std::string code;  // an error's code
    nlohmann::json event;
    uint64_t repeated = 0;  // errors of this code merged in since it was queued
  };
  void handle(WsConn& conn, std::span<const uint8_t> message, bool binary);
  void write(WsConn& conn);
  // An error event, or one more repeat of the queued one of that code (the cheap path of a flood).
  void error_event(std::string_view code, std::string_view message);
  Relay& relay_;
  std::string terminal_id_;
  Terminal* terminal_ = nullptr;
  bool read_only_;
  std::optional<uint64_t> since_;
  std::string who_;
  std::string ip_;
  std::string share_id_;
  bool opened_ = false;
  WsConn* conn_ = nullptr;
  std::deque<Pending> events_;
};

}  // namespace rx::hub
