// guarded(): the last-resort catch at every edge where the loop or the server calls into the
// hub's code (HTTP handlers and upgrades, WebSocket sessions, timers, Docker replies). An
// exception that gets this far is a bug, but it costs the one request or connection it came
// from — logged, answered 500 or closed 1011 by the caller — never the process and everyone on it.
#pragma once

#include <exception>
#include <string_view>

#include "protocol/log_line.h"

namespace rx::hub {

// Runs `f`; false (logged as hub.exception with `where`) when it threw.
template <typename F>
bool guarded(std::string_view where, F&& f) noexcept {
  try {
    f();
    return true;
  } catch (const std::exception& e) {
    try {
      log("error", "hub.exception", {{"where", where}, {"what", e.what()}});
    } catch (...) {
    }
  } catch (...) {
    try {
      log("error", "hub.exception", {{"where", where}, {"what", "not a std::exception"}});
    } catch (...) {
    }
  }
  return false;
}

}  // namespace rx::hub
