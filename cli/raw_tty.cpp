#include "cli/raw_tty.h"

#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>

#include "cli/failure.h"

namespace rx::cli {

namespace {

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
constexpr int kSignalCount = sizeof(kSignals) / sizeof(kSignals[0]);

// What the signal handler needs, reachable without a pointer: the one exception to "no globals".
struct Saved {
  int fd = -1;
  termios mode{};
  volatile sig_atomic_t raw = 0;
  struct sigaction previous[kSignalCount]{};
  bool handled[kSignalCount]{};
  bool in_use = false;
};
Saved saved;

int set_mode(int fd, const termios& mode) {
  int rc;
  do rc = ::tcsetattr(fd, TCSADRAIN, &mode);
  while (rc != 0 && errno == EINTR);
  return rc;
}

// Only async-signal-safe calls: tcsetattr, sigaction, raise.
void on_fatal_signal(int sig) {
  int saved_errno = errno;
  if (saved.raw) ::tcsetattr(saved.fd, TCSANOW, &saved.mode);
  saved.raw = 0;
  for (int i = 0; i < kSignalCount; ++i)
    if (kSignals[i] == sig) ::sigaction(sig, &saved.previous[i], nullptr);
  // Delivered once this handler returns, with the disposition the process had before us.
  ::raise(sig);
  errno = saved_errno;
}

}  // namespace

RawTty::RawTty(int fd) : fd_(fd) {
  termios mode{};
  if (!::isatty(fd) || ::tcgetattr(fd, &mode) != 0) return;
  if (saved.in_use) throw Failure("internal error: the terminal is already in raw mode");
  saved.in_use = true;
  saved.fd = fd;
  saved.mode = mode;
  // Signals that would end the process put the terminal back first. One the process ignores
  // (nohup's SIGHUP) stays ignored.
  for (int i = 0; i < kSignalCount; ++i) {
    struct sigaction old {};
    ::sigaction(kSignals[i], nullptr, &old);
    saved.handled[i] = old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO);
    if (!saved.handled[i]) continue;
    saved.previous[i] = old;
    struct sigaction sa {};
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    for (int s : kSignals) sigaddset(&sa.sa_mask, s);
    ::sigaction(kSignals[i], &sa, nullptr);
  }
  enter();
}

RawTty::~RawTty() {
  if (!saved.in_use || saved.fd != fd_) return;
  restore();
  for (int i = 0; i < kSignalCount; ++i)
    if (saved.handled[i]) ::sigaction(kSignals[i], &saved.previous[i], nullptr);
  saved.in_use = false;
}

void RawTty::enter() {
  if (!saved.in_use || saved.fd != fd_) return;
  // ssh's raw mode: no echo, no line editing, no signals from keys, no CR/NL translation either
  // way; a read returns as soon as one byte is there.
  termios raw = saved.mode;
  raw.c_iflag |= IGNPAR;
  raw.c_iflag &= ~(ISTRIP | INLCR | IGNCR | ICRNL | IXON | IXANY | IXOFF | IUCLC);
  raw.c_lflag &= ~(ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHONL | IEXTEN);
  raw.c_oflag &= ~OPOST;
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  saved.raw = 1;  // before the change: a signal in between restores a mode that is already right
  if (set_mode(fd_, raw) == 0) active_ = true;
  else saved.raw = 0;
}

void RawTty::restore() {
  if (!active_) return;
  saved.raw = 0;
  set_mode(fd_, saved.mode);
  active_ = false;
}

}  // namespace rx::cli
