// Timer: a libuv timer with RAII. libuv frees a handle only after uv_close's callback, so the
// handle lives on the heap and outlives this object by one loop turn; the callback is dropped
// at destruction and never runs after it. An exception from the callback is caught and logged
// (hub/base/guard.h): a timer never takes the loop down.
#pragma once

#include <uv.h>

#include <functional>

#include "hub/base/guard.h"

namespace rx::hub {

class Timer {
 public:
  Timer(uv_loop_t* loop, std::function<void()> callback) : handle_(new Handle) {
    uv_timer_init(loop, &handle_->timer);
    handle_->timer.data = handle_;
    handle_->callback = std::move(callback);
  }
  ~Timer() {
    uv_timer_stop(&handle_->timer);
    handle_->callback = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&handle_->timer),
             [](uv_handle_t* h) { delete static_cast<Handle*>(h->data); });
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void start(uint64_t timeout_ms, uint64_t repeat_ms = 0) {
    uv_timer_start(&handle_->timer, [](uv_timer_t* t) {
      auto* h = static_cast<Handle*>(t->data);
      // A copy: the callback may destroy this Timer (and so h->callback) while it runs.
      if (auto callback = h->callback) guarded("timer", callback);
    }, timeout_ms, repeat_ms);
  }
  void stop() { uv_timer_stop(&handle_->timer); }
  // Timers must not keep the loop alive on their own at shutdown.
  void unref() { uv_unref(reinterpret_cast<uv_handle_t*>(&handle_->timer)); }

 private:
  struct Handle {
    uv_timer_t timer;
    std::function<void()> callback;
  };
  Handle* handle_;
};

}  // namespace rx::hub
