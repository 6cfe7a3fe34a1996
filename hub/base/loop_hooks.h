// LoopHooks: runs a function twice in every turn of a libuv loop, just before it polls (after
// timers) and just after it handled I/O. Work that callbacks only mark during a turn is done
// within that same turn, whichever phase marked it. RAII like Timer: the handles live on the
// heap until libuv's close callbacks; close() (inside the running loop) or the destructor
// detaches the function.
#pragma once

#include <uv.h>

#include <functional>

namespace rx::hub {

class LoopHooks {
 public:
  LoopHooks(uv_loop_t* loop, std::function<void()> fn) : h_(new Handles) {
    h_->fn = std::move(fn);
    uv_prepare_init(loop, &h_->prepare);
    uv_check_init(loop, &h_->check);
    h_->prepare.data = h_->check.data = h_;
    uv_prepare_start(&h_->prepare, [](uv_prepare_t* p) { static_cast<Handles*>(p->data)->run(); });
    uv_check_start(&h_->check, [](uv_check_t* c) { static_cast<Handles*>(c->data)->run(); });
    // Hooks alone must not keep the loop alive at shutdown.
    uv_unref(reinterpret_cast<uv_handle_t*>(&h_->prepare));
    uv_unref(reinterpret_cast<uv_handle_t*>(&h_->check));
  }
  ~LoopHooks() { close(); }
  LoopHooks(const LoopHooks&) = delete;
  LoopHooks& operator=(const LoopHooks&) = delete;

  void close() {
    if (!h_) return;
    h_->fn = nullptr;
    uv_prepare_stop(&h_->prepare);
    uv_check_stop(&h_->check);
    h_->open = 2;
    auto done = [](uv_handle_t* h) {
      auto* hs = static_cast<Handles*>(h->data);
      if (--hs->open == 0) delete hs;
    };
    uv_close(reinterpret_cast<uv_handle_t*>(&h_->prepare), done);
    uv_close(reinterpret_cast<uv_handle_t*>(&h_->check), done);
    h_ = nullptr;
  }

 private:
  struct Handles {
    uv_prepare_t prepare;
    uv_check_t check;
    std::function<void()> fn;
    int open = 0;
    void run() {
      if (fn) fn();
    }
  };
  Handles* h_;
};

}  // namespace rx::hub
