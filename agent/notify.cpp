#include "agent/notify.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace rx::agent {

Notifier::Notifier() {
  if (const char* p = std::getenv("NOTIFY_SOCKET")) path_ = p;
  if (const char* w = std::getenv("WATCHDOG_USEC")) watchdog_usec_ = std::strtoull(w, nullptr, 10);
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  if (path_.size() < 2 || (path_[0] != '/' && path_[0] != '@') || path_.size() >= sizeof(sockaddr_un::sun_path)) path_.clear();
}

void Notifier::send(const std::string& state) const { (void)send_fds(state, {}, false); }

bool Notifier::send_fds(const std::string& state, std::span<const int> fds, bool wait) const {
  if (path_.empty()) return false;
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  // A plain notification never waits: with the manager's queue full (it is not reading) the loop
  // would stop, terminals and all, for a STATUS= line. The fd store's messages are worth a wait,
  // bounded.
  int flags = MSG_NOSIGNAL;
  if (!wait) flags |= MSG_DONTWAIT;
  timeval limit{3, 0};
  if (wait) ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path_.data(), path_.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  iovec iov{const_cast<char*>(state.data()), state.size()};
  msghdr msg{};
  msg.msg_name = &addr;
  msg.msg_namelen = socklen_t(offsetof(sockaddr_un, sun_path) + path_.size());
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control;
  if (!fds.empty()) {
    control.resize(CMSG_SPACE(sizeof(int) * fds.size()));
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  bool ok = ::sendmsg(fd, &msg, flags) == ssize_t(state.size());
  ::close(fd);
  return ok;
}

bool Notifier::barrier(std::chrono::milliseconds timeout) const {
  // systemd closes the pipe's write end it received once it processed the message, and it
  // processes messages in order: our read end then sees POLLHUP.
  int p[2];
  if (path_.empty() || ::pipe2(p, O_CLOEXEC) != 0) return false;
  bool sent = send_fds("BARRIER=1", std::span<const int>(&p[1], 1));
  ::close(p[1]);
  bool done = false;
  if (sent) {
    pollfd pfd{p[0], 0, 0};
    done = ::poll(&pfd, 1, int(timeout.count())) == 1 && (pfd.revents & POLLHUP);
  }
  ::close(p[0]);
  return done;
}

std::vector<std::string> Notifier::environment() const {
  std::vector<std::string> env;
  if (path_.empty()) return env;
  env.push_back("NOTIFY_SOCKET=" + path_);
  if (watchdog_usec_) {
    env.push_back("WATCHDOG_USEC=" + std::to_string(watchdog_usec_));
    env.push_back("WATCHDOG_PID=" + std::to_string(::getpid()));  // exec keeps the pid
  }
  return env;
}

}  // namespace rx::agent
