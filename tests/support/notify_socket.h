// NotifySocket: a unix datagram socket standing in for systemd's $NOTIFY_SOCKET, so tests can
// read what a service tells systemd (READY=1, WATCHDOG=1, STATUS=..., STOPPING=1).
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

namespace rx::test {

class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  }
  ~NotifySocket() { ::close(fd_); }
  // Collects messages until `want` was seen or the timeout passed.
  bool wait_for(const std::string& want, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[512];
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n > 0) messages.emplace_back(buf, size_t(n));
      if (!messages.empty() && messages.back().find(want) != std::string::npos) return true;
    }
    return false;
  }
  std::vector<std::string> messages;

 private:
  std::string path_;
  int fd_;
};

}  // namespace rx::test
