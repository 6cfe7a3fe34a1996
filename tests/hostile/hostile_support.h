// Support for the hostile suite (tests/hostile/): each test plays a stranger on the network (or a
// share-code holder, a user, an agent) sending what no polite client sends, then checks that the
// hub is still alive and still relays for everyone else: LiveTerminal is a real agent with a
// real shell the test types into before and after the attack.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/integration/relay_support.h"
#include "tests/support/hub_fixture.h"

namespace rx::test {

// Writes `bytes` on a fresh connection to the hub (from `source_ip` when given) and returns
// everything the hub sends back until it closes the connection or `timeout` passes.
std::string raw_exchange(int port, const std::string& bytes,
                         std::chrono::milliseconds timeout = std::chrono::seconds(5), const std::string& source_ip = "");
// The first HTTP response in `raw` (status 0 when there is none).
HttpResult parse_response(const std::string& raw);

// The hub answers /healthz with JSON (the process is alive and its loop turns).
bool hub_answers(const HubFixture& hub);

// A real rexec-agent with one live shell on the hub.
class LiveTerminal {
 public:
  explicit LiveTerminal(HubFixture& hub, const std::string& agent_name = "live");
  // The hub answers /healthz, the agent is online and the shell echoes a fresh line through a
  // fresh viewer: nothing the test did disturbed the relay.
  void expect_alive();
  const std::string& id() const { return id_; }
  AgentProcess& agent() { return agent_; }

 private:
  HubFixture& hub_;
  std::string name_;
  AgentProcess agent_;
  std::string id_;
  int round_ = 0;
};

// The number of audit rows (every action), read by the admin.
int64_t audit_rows(const HubFixture& hub);

}  // namespace rx::test
