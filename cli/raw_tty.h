// RawTty: the user's terminal in raw mode while `rexec connect` runs, the way ssh puts it: every
// key goes to the remote shell (^C included), nothing is echoed or translated locally. The mode is
// saved at construction and put back by the destructor, by restore(), and by the handlers it
// installs for SIGINT, SIGTERM, SIGHUP and SIGQUIT, which then let the signal end the process as it
// would have: no exit path leaves the terminal raw. One at a time per process (a signal handler
// can only find the saved mode in a static).
#pragma once

namespace rx::cli {

class RawTty {
 public:
  // Raw mode on `fd` when it is a terminal; otherwise nothing happens and active() is false.
  explicit RawTty(int fd);
  ~RawTty();
  RawTty(const RawTty&) = delete;
  RawTty& operator=(const RawTty&) = delete;

  bool active() const { return active_; }
  void restore();  // the saved mode again (idempotent)
  void enter();    // raw again after restore() (after SIGCONT, say)

 private:
  int fd_;
  bool active_ = false;
};

}  // namespace rx::cli
