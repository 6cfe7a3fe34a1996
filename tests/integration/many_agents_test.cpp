// A thousand agents on one hub: simulated ones (the protocol library's codec over raw sockets,
// one test process) connect over loopback, stay idle for 30 s (answering the hub's pings, as a
// real agent does) and must all be listed online. The hub's RSS at that point is printed for the
// closing note; the cap asserted here is only a guard against a leak per connection.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>

#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/support/hub_fixture.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;


TEST(ManyAgents, AThousandIdleAgentsStayOnline) {
  const int kAgents = std::getenv("REXEC_AGENTS") ? std::atoi(std::getenv("REXEC_AGENTS")) : 1000;
  rlimit r{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &r), 0);
  r.rlim_cur = r.rlim_max;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &r), 0);
  ASSERT_GE(r.rlim_cur, rlim_t(kAgents + 100)) << "this machine allows too few open files";

  HubFixture hub;
  long rss_before = rss_kib(hub.process().pid());
  auto e = hub.api("POST", "/api/v1/agent-enrollments", R"({"uses": 1000})");
  ASSERT_EQ(e.status, 201) << e.body;
  std::string token = json::parse(e.body)["token"];

  std::vector<std::unique_ptr<FakeAgent>> agents;
  std::vector<std::string> credentials;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kAgents; ++i) {
    auto a = std::make_unique<FakeAgent>();
    char name[16];
    std::snprintf(name, sizeof(name), "sim-%04d", i);
    ASSERT_TRUE(a->connect(hub.port(), token, name)) << name;
    auto w = a->hello();
    ASSERT_TRUE(w && w->credential) << name;
    agents.push_back(std::move(a));
  }
  auto connect_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();

  // Idle for 30 s: only pings and pongs. Like the real agent, each pings the hub every 20 s (the
  // hub hangs up on a link with no valid traffic for 30 s, so this crosses that line).
  auto idle_until = std::chrono::steady_clock::now() + std::chrono::seconds(std::getenv("REXEC_IDLE_S") ? std::atoi(std::getenv("REXEC_IDLE_S")) : 30);
  std::vector<pollfd> fds(kAgents);
  auto next_ping = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < idle_until) {
    if (std::chrono::steady_clock::now() >= next_ping) {
      for (auto& a : agents) a->ws.send_frame(0x9, {}, true);
      next_ping += 20s;
    }
    for (int i = 0; i < kAgents; ++i) fds[i] = {agents[i]->ws.fd(), POLLIN, 0};
    if (::poll(fds.data(), fds.size(), 500) <= 0) continue;
    for (int i = 0; i < kAgents; ++i)
      if (fds[i].revents) (void)agents[i]->ws.receive(1ms);  // answers a ping on the way; no data arrives
  }

  json list = json::parse(hub.api("GET", "/api/v1/agents").body);
  int online = 0;
  for (const auto& a : list["agents"]) online += a["online"] == true;
  long rss = rss_kib(hub.process().pid());
  std::printf("many agents: %d connected in %lld ms; after 30 s idle %d online; hub RSS %ld KiB (%ld KiB before, %.1f KiB per agent)\n",
              kAgents, static_cast<long long>(connect_ms), online, rss, rss_before, double(rss - rss_before) / kAgents);
  std::string log = hub.log();
  EXPECT_EQ(online, kAgents) << (list["agents"].empty() ? std::string("no agents listed") : list["agents"][0].dump())
                             << "\n" << log.substr(log.size() > 3000 ? log.size() - 3000 : 0);
  for (int i = 0; i < kAgents; ++i) EXPECT_TRUE(agents[i]->ws.connected()) << "agent " << i << " was dropped";
  // Per agent, not a total: 1,000 idle links at the bound would be 250 MiB.
  EXPECT_LT(double(rss - rss_before) / kAgents, 256.0) << "more than 256 KiB per idle agent: a leak per connection?";
}

}  // namespace
}  // namespace rx::test
