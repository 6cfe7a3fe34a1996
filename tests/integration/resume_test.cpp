// Terminals survive every disconnect: the hub killed with SIGKILL and restarted, and the agent's
// link cut by the network for 10 s, both while a shell prints 200,000 numbered lines. The shell
// keeps its PID and the viewer gets every line exactly once, in order.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <csignal>
#include <cstring>
#include <sstream>
#include <thread>

#include "tests/integration/relay_support.h"
#include "tests/support/tcp_proxy.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr int kLines = 200000;

// How the hub goes away mid-stream: SIGKILL (a crash) or SIGTERM (systemd stop / restart).
enum class Stop { kKill9, kSigterm };

class HubStopped : public testing::TestWithParam<Stop> {};

TEST_P(HubStopped, AndRestartedMidStreamLosesNothing) {
  HubFixture hub;
  AgentProcess agent(hub, "resumer", {"--shell", "/bin/sh"});
  ASSERT_TRUE(wait_online(hub, "resumer", 5s));
  auto id = create_terminal(hub, "resumer");
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  std::string pid = start_printing(v, kLines);
  ASSERT_FALSE(pid.empty());
  // Let a good part of the stream through, then kill the hub hard.
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("\r\n20000\r\n"); }, 60s)) << v.output.size();
  ASSERT_FALSE(v.saw(kEnd)) << "the stream finished before the kill: nothing was tested";
  if (GetParam() == Stop::kKill9) {
    hub.kill9();
    EXPECT_FALSE(v.until([](const Viewer&) { return false; }, 2s));  // the viewer's socket is dead
  } else {
    auto t0 = std::chrono::steady_clock::now();
    hub.process().signal(SIGTERM);
    auto status = hub.process().wait(5s);
    ASSERT_TRUE(status) << "the hub did not exit within 5 s of SIGTERM";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "exit status " << *status;
    std::printf("sigterm: hub exited in %lld ms\n", static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                      std::chrono::steady_clock::now() - t0).count()));
    EXPECT_FALSE(v.until([](const Viewer&) { return false; }, 2s));
    EXPECT_EQ(v.ws.close_code(), 1001) << "viewers are told the hub is going away";
    EXPECT_NE(agent.log().find("code=4012"), std::string::npos) << "agents are told the hub restarts\n" << agent.log();
  }
  uint64_t resume_at = v.next_offset;
  hub.start();
  auto back = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_online(hub, "resumer", 40s)) << agent.log();
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - back);
  std::printf("resume: agent back %lld ms after the hub\n", static_cast<long long>(took.count()));
  if (GetParam() == Stop::kSigterm) {
    EXPECT_LE(took.count(), 3000) << "after a 4012 close the agent must be back within 3 s";
  }

  Viewer again;
  again.output = v.output;  // keep what was received; new bytes must continue it exactly
  ASSERT_TRUE(again.attach(hub, id, resume_at));
  ASSERT_TRUE(again.until([](const Viewer& v) { return v.saw(kEnd); }, 120s))
      << "received up to offset " << again.next_offset << "\n" << hub.log() << agent.log();
  EXPECT_EQ(again.duplicates, 0u);
  EXPECT_EQ(again.gaps, 0u);
  expect_every_line_once(again.output, kLines);
  EXPECT_EQ(ask_pid(again), pid) << "same shell, same PID";
}

INSTANTIATE_TEST_SUITE_P(Resume, HubStopped, testing::Values(Stop::kKill9, Stop::kSigterm),
                         [](const auto& info) { return info.param == Stop::kKill9 ? "Kill9" : "Sigterm"; });

TEST(Resume, AgentLinkCutByTheNetworkFor10Seconds) {
  HubFixture hub;
  TcpProxy proxy(hub.port());
  AgentProcess agent(hub, "cut", {"--shell", "/bin/sh"}, "ws://127.0.0.1:" + std::to_string(proxy.port()));
  ASSERT_TRUE(wait_online(hub, "cut", 5s));
  auto id = create_terminal(hub, "cut");
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  std::string pid = start_printing(v, kLines);
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("\r\n20000\r\n"); }, 60s));
  ASSERT_FALSE(v.saw(kEnd)) << "the stream finished before the cut: nothing was tested";
  proxy.cut();
  ASSERT_TRUE(v.until([](const Viewer& v) {
    auto e = v.event("status");
    return e && (*e)["status"] == "offline";
  }, 10s)) << "the viewer should be told the terminal is offline";
  std::this_thread::sleep_for(10s);
  proxy.heal();
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw(kEnd); }, 90s))
      << "received up to offset " << v.next_offset << "\n" << agent.log();
  EXPECT_EQ(v.duplicates, 0u);
  EXPECT_EQ(v.gaps, 0u);
  expect_every_line_once(v.output, kLines);
  v.type("echo PID=$$\n");
  size_t mark = v.output.size();
  ASSERT_TRUE(v.until([&](const Viewer& v) { return !pid_after(v.output, mark).empty(); }, 10s));
  EXPECT_EQ(pid_after(v.output, mark), pid);
  EXPECT_GE(proxy.connections_accepted(), 2);
}

}  // namespace
}  // namespace rx::test

namespace rx::test {
namespace {

TEST(Resume, ExitWhileTheHubIsDownIsReportedAfterwards) {
  HubFixture hub;
  AgentProcess agent(hub, "exiter", {"--shell", "/bin/sh"});
  ASSERT_TRUE(wait_online(hub, "exiter", 5s));
  auto id = create_terminal(hub, "exiter");
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  v.type("echo READY''1; sleep 1; exit 7\n");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("READY1\r\n"); }, 10s));
  hub.kill9();
  std::this_thread::sleep_for(2s);  // the shell exits while nobody is listening
  hub.start();
  ASSERT_TRUE(wait_online(hub, "exiter", 40s));
  EXPECT_TRUE(eventually([&] {
    auto t = json::parse(hub.api("GET", "/api/v1/terminals/" + id).body);
    return t["status"] == "exited" && t["exit_code"] == 7;
  }, 10s)) << hub.api("GET", "/api/v1/terminals/" + id).body;
  Viewer late;
  ASSERT_TRUE(late.attach(hub, id));
  ASSERT_TRUE(late.until([](const Viewer& v) { return v.event("exit").has_value() && v.saw("READY1\r\n"); }, 10s))
      << "[" << late.output << "]";
  EXPECT_EQ((*late.event("exit"))["code"], 7);
  EXPECT_TRUE(late.saw("READY1\r\n")) << "the output from before the restart is replayed: [" << late.output << "] " << hub.api("GET", "/api/v1/terminals/" + id).body << agent.log();
}

}  // namespace
}  // namespace rx::test
