#include "cli/interrupt.h"

#include <atomic>

namespace rx::cli {

namespace {

// A signal handler can reach only static storage: the one flag, async-signal-safe, set nowhere else.
std::atomic<bool> g_interrupted{false};

}  // namespace

InterruptGuard::InterruptGuard() {
  g_interrupted = false;
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_interrupted = true; };
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, &old_int_);
  ::sigaction(SIGTERM, &sa, &old_term_);
}

InterruptGuard::~InterruptGuard() {
  ::sigaction(SIGINT, &old_int_, nullptr);
  ::sigaction(SIGTERM, &old_term_, nullptr);
}

bool InterruptGuard::raised() const { return g_interrupted.load(); }

}  // namespace rx::cli
