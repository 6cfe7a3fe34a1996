#include "agent/notify.h"

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

void Notifier::send(const std::string& state) const {
  if (path_.empty()) return;
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path_.data(), path_.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  socklen_t len = socklen_t(offsetof(sockaddr_un, sun_path) + path_.size());
  (void)::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), len);
  ::close(fd);
}

}  // namespace rx::agent
