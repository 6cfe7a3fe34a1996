#include "tests/support/tcp_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>

namespace rx::test {

TcpProxy::TcpProxy(int target_port) : target_(target_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  ::listen(listen_fd_, 64);
  socklen_t len = sizeof(a);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  ::pipe2(wake_, O_CLOEXEC | O_NONBLOCK);
  thread_ = std::thread([this] { run(); });
}

TcpProxy::~TcpProxy() {
  stop_ = true;
  (void)!::write(wake_[1], "x", 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void TcpProxy::cut() {
  cut_ = true;
  ++generation_;
  (void)!::write(wake_[1], "x", 1);
}

void TcpProxy::heal() {
  cut_ = false;
  blackhole_ = false;
}

void TcpProxy::run() {
  std::map<int, int> peer;  // fd -> the fd it forwards to
  int seen_generation = generation_;
  char buf[65536];
  while (!stop_) {
    if (generation_ != seen_generation) {
      seen_generation = generation_;
      for (auto& [fd, other] : peer) ::close(fd);
      peer.clear();
    }
    std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (!blackhole_)  // in a blackhole, bytes sit unread in the sockets: nothing moves
      for (auto& [fd, other] : peer) fds.push_back({fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), 200) <= 0) continue;
    if (fds[1].revents) {
      char drain[16];
      while (::read(wake_[0], drain, sizeof(drain)) > 0) {}
    }
    if (fds[0].revents & POLLIN) {
      int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        if (cut_ || blackhole_) {
          ::close(c);  // the network is down
        } else {
          int t = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
          sockaddr_in a{};
          a.sin_family = AF_INET;
          a.sin_port = htons(uint16_t(target_));
          a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
          if (::connect(t, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
            peer[c] = t;
            peer[t] = c;
            ++accepted_;
          } else {
            ::close(c);
            ::close(t);
          }
        }
      }
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      int fd = fds[i].fd;
      auto it = peer.find(fd);
      if (it == peer.end()) continue;
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      int other = it->second;
      bool ok = n > 0;
      for (ssize_t off = 0; ok && off < n;) {
        ssize_t w = ::send(other, buf + off, size_t(n - off), MSG_NOSIGNAL);
        if (w <= 0) ok = false;
        else off += w;
      }
      if (!ok) {
        ::close(fd);
        ::close(other);
        peer.erase(fd);
        peer.erase(other);
      }
    }
  }
  for (auto& [fd, other] : peer) ::close(fd);
}

}  // namespace rx::test
