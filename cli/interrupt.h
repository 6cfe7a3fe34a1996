// InterruptGuard: while one lives, SIGINT and SIGTERM set a flag instead of killing rexec, so a
// command stops its transfer itself and unwinds (the hub sees the client go and cancels; a
// download's temp file is removed by its destructor) instead of dying mid-write.
#pragma once

#include <signal.h>

namespace rx::cli {

class InterruptGuard {
 public:
  InterruptGuard();  // clears the flag
  ~InterruptGuard();  // the previous handlers again
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;
  // A signal arrived since this guard was made.
  bool raised() const;

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

}  // namespace rx::cli
