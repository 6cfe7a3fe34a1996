// ViewerLink: one WebSocket to a terminal's attach route (rexec.term.v1, protocol/SPEC.md section
// 2) on a libuv loop, through libwebsockets with the loop passed in as a foreign loop. The token
// goes in the Authorization header. It knows nothing of terminals on the user's side: `connect`
// puts a tty around it, `mcp` types into it and reads from it.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/config.h"

namespace rx::cli {

class ViewerLink {
 public:
  struct Handlers {
    std::function<void()> on_open;                                              // upgraded
    std::function<void(uint64_t offset, std::span<const uint8_t> bytes)> on_output;
    std::function<void(const nlohmann::json& event)> on_event;                  // replay, status, exit, error...
    // The socket ended: close code (0 if it never opened or was cut) and a one-line reason
    // (the hub's JSON error before an upgrade, the close reason, or the system error).
    std::function<void(int code, const std::string& reason, long http_status)> on_closed;
  };
  ViewerLink(uv_loop_t* loop, Profile hub, std::string terminal_id, Handlers handlers);
  // Destroy it outside the loop's callbacks (after uv_run returns): it runs the loop a few turns
  // (UV_RUN_NOWAIT) while lws closes its handles, then frees lws. No handler is called meanwhile.
  ~ViewerLink();
  ViewerLink(const ViewerLink&) = delete;
  ViewerLink& operator=(const ViewerLink&) = delete;

  // Connects (again), with ?since=OFFSET when given.
  void open(std::optional<uint64_t> since = std::nullopt);
  // Queued and sent when the socket takes it; false when not open.
  bool send_input(std::span<const uint8_t> bytes);
  bool send_resize(uint16_t cols, uint16_t rows);
  // Closes the socket (normal closure); on_closed follows. Safe to call when not open.
  void close();
  bool is_open() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rx::cli
