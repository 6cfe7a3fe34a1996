// The agent as a service: sd_notify messages systemd relies on (through a fake notify socket),
// host info with GPUs and live STATS reaching GET /api/v1/agents (a fixture /proc and a fake
// nvidia-smi: there is no GPU here), the hub's offline token command, and a link that dies
// silently (no FIN, no RST) being noticed by the heartbeat.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>

#include <cstring>

#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/integration/relay_support.h"
#include "tests/support/notify_socket.h"
#include "tests/support/tcp_proxy.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

TEST(AgentService, NotifiesSystemd) {
  HubFixture hub;
  TempDir dir("rexec-notify");
  NotifySocket notify(dir / "notify");
  std::string cred = dir / "credential";
  Process agent({binary("agent/rexec-agent"), "--hub", "ws://127.0.0.1:" + std::to_string(hub.port()), "--enroll-token-file",
                 "-", "--credential-file", cred, "--name", "svc", "--shell", "/bin/sh"},
                {{"PATH", "/usr/bin:/bin"}, {"NOTIFY_SOCKET", dir / "notify"}, {"WATCHDOG_USEC", "400000"}},
                dir / "agent.log", hub.enroll() + "\n");
  ASSERT_TRUE(notify.wait_for("READY=1", 10s)) << agent.log();
  ASSERT_TRUE(notify.wait_for("WATCHDOG=1", 5s));
  bool connected = false;
  for (const auto& m : notify.messages) connected = connected || m.starts_with("STATUS=connected to ");
  EXPECT_TRUE(connected) << "STATUS= should say the link is up";
  // The link going down is reported too.
  hub.kill9();
  EXPECT_TRUE(notify.wait_for("STATUS=disconnected", 10s));
  // $NOTIFY_SOCKET is not passed on to the shells the agent runs.
  hub.start();
  ASSERT_TRUE(wait_online(hub, "svc", 40s));
  auto id = create_terminal(hub, "svc");
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  v.type("echo N=${NOTIFY_SOCKET:-none}\n");
  EXPECT_TRUE(v.until([](const Viewer& v) { return v.saw("N=none\r\n"); }, 10s)) << v.output << "close=" << v.ws.close_code().value_or(0) << " " << v.ws.close_reason() << hub.log() << agent.log();
}

TEST(AgentService, HostInfoGpusAndLiveStatsReachTheApi) {
  HubFixture hub;
  TempDir dir("rexec-gpu");
  // A fixture /proc with one NVIDIA GPU, and a fake nvidia-smi reporting it busy.
  fs::create_directories(dir.path() + "/proc/driver/nvidia/gpus/0000:41:00.0");
  std::ofstream(dir / "proc/driver/nvidia/gpus/0000:41:00.0/information")
      << "Model: \t\t NVIDIA GeForce RTX 3090\nGPU UUID: \t GPU-8f6a2c1e\nDevice Minor: \t 0\n";
  // (Not fs::copy_file: /proc files report size 0, so it copies nothing.)
  std::ofstream(dir / "proc/meminfo") << std::ifstream("/proc/meminfo").rdbuf();
  std::ofstream(dir / "proc/stat") << std::ifstream("/proc/stat").rdbuf();
  std::ofstream(dir / "nvidia-smi") << "#!/bin/sh\necho '0, GPU-8f6a2c1e, NVIDIA GeForce RTX 3090, 24576, 87, 12000'\n";
  fs::permissions(dir / "nvidia-smi", fs::perms::owner_all);
  AgentProcess agent(hub, "gpubox", {"--proc-root", dir / "proc", "--nvidia-smi", dir / "nvidia-smi"});
  ASSERT_TRUE(wait_online(hub, "gpubox", 5s));
  json listed;
  ASSERT_TRUE(eventually([&] {
    auto agents = json::parse(hub.api("GET", "/api/v1/agents").body)["agents"];  // a copy: see agents_named()
    for (const auto& a : agents)
      if (a["name"] == "gpubox" && !a["stats"].is_null()) listed = a;
    return !listed.is_null();
  }, 12s)) << "no STATS within two intervals\n" << agent.log() << hub.api("GET", "/api/v1/agents").body;
  ASSERT_EQ(listed["gpus"].size(), 1u) << listed.dump();
  EXPECT_EQ(listed["gpus"][0]["model"], "NVIDIA GeForce RTX 3090");
  EXPECT_EQ(listed["gpus"][0]["memory_total"], 24576ull * 1024 * 1024);
  EXPECT_EQ(listed["stats"]["gpus"][0]["utilization"], 87);
  EXPECT_GT(listed["stats"]["memory_total"].get<uint64_t>(), 0u);
  EXPECT_FALSE(listed["host"]["kernel"].get<std::string>().empty());
}

TEST(HubCli, TokenCreatePrintsAWorkingToken) {
  HubFixture hub;
  hub.kill9();  // offline, against the data dir
  TempDir dir("rexec-cli");
  Process cli({binary("hub/rexec-hub"), "token", "create", "--data-dir", hub.data_dir() + "/data", "--name", "ci"},
              {{"PATH", "/usr/bin:/bin"}}, dir / "out.log");
  ASSERT_TRUE(cli.wait(10s));
  std::string token = cli.log();
  while (!token.empty() && token.back() == '\n') token.pop_back();
  ASSERT_TRUE(token.starts_with("rxk_")) << token;
  hub.start();
  EXPECT_EQ(http(hub.port(), "GET", "/api/v1/terminals", token).status, 200);
  EXPECT_EQ(hub.log().find(token), std::string::npos) << "a token was logged";
}

TEST(Heartbeat, SilentlyDeadLinkIsNoticedAndReplaced) {
  HubFixture hub;
  TcpProxy proxy(hub.port());
  AgentProcess agent(hub, "silent", {}, "ws://127.0.0.1:" + std::to_string(proxy.port()));
  ASSERT_TRUE(wait_online(hub, "silent", 5s));
  proxy.blackhole();  // keep the sockets open but carry nothing: no FIN, no RST, just silence
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] {
    // Not `for (... : json::parse(...)["agents"])`: that iterates a member of a temporary
    // destroyed before the loop body runs.
    auto agents = json::parse(hub.api("GET", "/api/v1/agents").body)["agents"];
    for (const auto& a : agents)
      if (a["name"] == "silent") return a["online"] == false;
    return false;
  }, 60s)) << "the hub never noticed the dead link";
  auto noticed = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start);
  std::printf("heartbeat: dead link noticed after %lld s\n", static_cast<long long>(noticed.count()));
  EXPECT_LE(noticed.count(), 45);  // 20 s idle + ping + hang-up at 30 s, with lws's 1 s timer granularity
  proxy.heal();
  EXPECT_TRUE(wait_online(hub, "silent", 60s)) << "the agent did not come back";
}

}  // namespace
}  // namespace rx::test
