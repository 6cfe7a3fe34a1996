// HubFixture: a real rexec-hub process on a fixed loopback port with its own data directory,
// for integration tests. The port stays the same across kill -9 and restart, so agents find the
// hub again. FakeAgent speaks the agent link with the real protocol codec over a WsClient: it
// lets a test act as a misbehaving agent, or as thousands of agents.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "protocol/codec.h"
#include "tests/support/process.h"
#include "tests/support/ws_client.h"

namespace rx::test {

int free_port();

class HubFixture {
 public:
  // Tests poll the API far faster than a person would: by default the rate limits are off and
  // the viewer cap is high. A test of the limits passes its own flags.
  static std::vector<std::string> relaxed_limits() {
    return {"--rate-requests", "0", "--rate-terminal-creates", "0", "--rate-auth-failures", "0",
            "--viewers-per-terminal", "1000"};
  }
  // `before_start` runs once with the data directory's path before the first start (a test mounts
  // a small filesystem there, say). `hub_binary`: another rexec-hub than this build's (a packaged one).
  explicit HubFixture(std::vector<std::string> flags = relaxed_limits(),
                      std::function<void(const std::string& data_dir)> before_start = {}, std::string hub_binary = {});
  ~HubFixture();
  void start();
  void kill9();
  void terminate();  // SIGTERM, wait for exit
  void restart() { kill9(); start(); }
  int port() const { return port_; }
  const std::string& admin_token() const { return admin_token_; }
  const std::string& data_dir() const { return dir_.path(); }
  Process& process() { return *process_; }
  std::string log() const;  // every run's log, concatenated

  // Convenience: an API call with the admin token.
  HttpResult api(const std::string& method, const std::string& path, const std::string& body = "") const {
    return http(port_, method, path, admin_token_, body);
  }
  std::string enroll();  // a fresh single-use enrollment token

 private:
  TempDir dir_;
  int port_;
  int runs_ = 0;
  std::vector<std::string> flags_;
  std::string hub_binary_;
  std::string admin_token_;
  std::unique_ptr<Process> process_;
};

// True once an agent called `name` shows as online in GET /api/v1/agents.
bool wait_online(HubFixture& hub, const std::string& name, std::chrono::milliseconds timeout);
// Opens an 80x24 terminal on the agent (id or name); its id, or "" when the hub refused.
std::string create_terminal(HubFixture& hub, const std::string& agent);

class FakeAgent {
 public:
  // Connects with `token` (credential or enrollment); false when the hub refused the upgrade.
  bool connect(int port, const std::string& token, const std::string& name = "fake", HttpResult* refusal = nullptr);
  // False when the frame is over the protocol's limits (send raw bytes for that) or the socket is gone.
  bool send(const protocol::Frame& frame) {
    auto bytes = protocol::encode(frame);
    return bytes && ws.send_binary(*bytes);
  }
  // HELLO with the given live channels; returns the WELCOME (or nullopt).
  std::optional<protocol::Welcome> hello(std::vector<protocol::ChannelState> channels = {});
  // Next frame, skipping STATS-like noise never sent by the hub; nullopt on timeout/close.
  std::optional<protocol::Frame> next(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  template <typename T>
  std::optional<T> next_of(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      auto f = next(left);
      if (!f) return std::nullopt;
      if (auto* t = std::get_if<T>(&*f)) return *t;
    }
    return std::nullopt;
  }
  WsClient ws;
  std::vector<protocol::GpuInfo> gpus;  // reported in HELLO's host info
};

}  // namespace rx::test
