// TcpProxy: forwards loopback TCP connections to a target port, and can cut them: close every
// connection and refuse new ones until healed. Lets a test sever the agent's link the way a
// network does, without touching either process.
#pragma once

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

namespace rx::test {

class TcpProxy {
 public:
  explicit TcpProxy(int target_port);
  ~TcpProxy();
  int port() const { return port_; }
  void cut();   // drop all connections; refuse (accept and close) new ones
  void heal();  // forward again
  // Keep every connection open but forward nothing (a dead route: no FIN, no RST). heal() ends it.
  void blackhole() { blackhole_ = true; }
  int connections_accepted() const { return accepted_; }

 private:
  void run();
  int target_;
  int port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  std::atomic<bool> cut_{false};
  std::atomic<bool> blackhole_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> generation_{0};
  std::thread thread_;
};

}  // namespace rx::test
