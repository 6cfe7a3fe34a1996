// Container terminals when things go wrong: the hub killed and restarted (the container shell
// keeps its PID, its output arrives once), containers removed behind the hub's back or left
// orphaned, a fork bomb and a memory hog next to innocent terminals, and two isolated containers
// that must not reach each other.
#include <sys/wait.h>

#include <fstream>
#include <thread>

#include "tests/integration/container_support.h"
#include "tests/support/api_expect.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class ContainerResilience : public ContainerTest {};

TEST_F(ContainerResilience, HubKill9KeepsTheShellAndItsOutput) {
  constexpr int kLines = 30000;
  HubFixture hub(container_hub_flags());
  std::string id = create(hub, {{"kind", "container"}, {"image", "rexec/busybox:latest"}});
  ASSERT_TRUE(wait_status(hub, id, "running"));
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  std::string pid = start_printing(v, kLines);
  ASSERT_FALSE(pid.empty());
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("\r\n2000\r\n"); }, 60s));
  ASSERT_FALSE(v.saw(kEnd)) << "the stream finished before the kill: nothing was tested";
  hub.kill9();
  uint64_t resume_at = v.next_offset;
  std::this_thread::sleep_for(1s);  // the container keeps printing into its agent's ring meanwhile
  hub.start();
  ASSERT_TRUE(wait_status(hub, id, "running", 40s)) << hub.log();
  Viewer again;
  again.output = v.output;
  ASSERT_TRUE(again.attach(hub, id, resume_at));
  ASSERT_TRUE(again.until([](const Viewer& v) { return v.saw(kEnd); }, 60s)) << again.next_offset;
  EXPECT_EQ(again.duplicates, 0u);
  EXPECT_EQ(again.gaps, 0u);
  expect_every_line_once(again.output, kLines);
  EXPECT_EQ(ask_pid(again), pid) << "the container's shell must be the same process";
}

TEST_F(ContainerResilience, RemovedContainersAreReportedAndOrphansRemoved) {
  HubFixture hub(container_hub_flags());
  std::string id = create(hub, {{"kind", "container"}, {"image", "rexec/busybox:latest"}});
  ASSERT_TRUE(wait_status(hub, id, "running"));
  ASSERT_TRUE(docker({"rm", "-f", "rexec-" + id}));  // behind the hub's back
  ASSERT_TRUE(wait_status(hub, id, "lost", 15s));
  EXPECT_EQ(body(hub.api("GET", "/api/v1/terminals/" + id)).value("reason", ""), "its container is gone");

  // A container labelled as this hub's, with no terminal: what a crash between steps leaves.
  std::ifstream in(hub.data_dir() + "/data/hub-id");
  std::string hub_id;
  std::getline(in, hub_id);
  ASSERT_FALSE(hub_id.empty());
  auto orphan = docker({"run", "-d", "--network", "none", "--label", "rexec.terminal=t_orphan", "--label",
                        "rexec.hub=" + hub_id, "rexec/busybox:latest", "sleep", "600"});
  ASSERT_TRUE(orphan);
  std::string orphan_id = orphan->substr(0, 12);
  bool gone = false;
  for (int i = 0; i < 150 && !gone; ++i) {
    gone = !docker({"inspect", orphan_id});
    if (!gone) std::this_thread::sleep_for(100ms);
  }
  if (!gone) (void)docker({"rm", "-f", orphan_id});
  EXPECT_TRUE(gone) << "the orphan container was not removed";
  // Another hub's container is left alone.
  auto foreign = docker({"run", "-d", "--network", "none", "--label", "rexec.terminal=t_other", "--label",
                         "rexec.hub=hub_someoneelse", "rexec/busybox:latest", "sleep", "600"});
  ASSERT_TRUE(foreign);
  ASSERT_TRUE(wait_two_sweeps(hub)) << "the supervisor never swept";  // a sweep saw it
  EXPECT_TRUE(docker({"inspect", foreign->substr(0, 12)})) << "a hub removed another hub's container";
  (void)docker({"rm", "-f", foreign->substr(0, 12)});
}

TEST_F(ContainerResilience, ForkBombAndMemoryHogAreContained) {
  HubFixture hub(container_hub_flags());
  std::string bomb = create(hub, {{"kind", "container"}, {"image", "rexec/busybox:latest"}});
  std::string hog = create(hub, {{"kind", "container"}, {"image", "rexec/busybox:latest"}, {"memory_mb", 64}});
  std::string calm = create(hub, {{"kind", "container"}, {"image", "rexec/debian:12"}});
  for (const auto& id : {bomb, hog, calm}) ASSERT_TRUE(wait_status(hub, id, "running"));
  Viewer b, h, c;
  ASSERT_TRUE(b.attach(hub, bomb));
  ASSERT_TRUE(h.attach(hub, hog));
  ASSERT_TRUE(c.attach(hub, calm));
  b.type("f(){ f|f& }; f\n");
  h.type("tail /dev/zero; echo hog-status=$?\n");  // tail keeps the "line" in memory: it grows forever
  std::this_thread::sleep_for(3s);
  // The hog is OOM-killed inside its container (137 = SIGKILL), its terminal says so.
  EXPECT_TRUE(h.until([](const Viewer& v) { return v.saw("hog-status=137"); }, 30s)) << h.output;
  // Meanwhile the hub, the other terminal and the host keep working.
  EXPECT_EQ(http(hub.port(), "GET", "/healthz").status, 200);
  c.type("echo calm-$((40+2))\n");
  EXPECT_TRUE(c.until([](const Viewer& v) { return v.saw("calm-42"); }, 10s)) << c.output;
  Process host({"/bin/sh", "-c", "echo host-ok"}, child_env(), hub.data_dir() + "/host.log");
  ASSERT_TRUE(host.wait(10s));
  EXPECT_NE(host.log().find("host-ok"), std::string::npos);
  auto pids = docker({"inspect", "-f", "{{.HostConfig.PidsLimit}}", "rexec-" + bomb});
  ASSERT_TRUE(pids);
  EXPECT_EQ(*pids, "256\n");
  // The bomb's terminal can still be deleted (its container goes, bomb and all).
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(hub.api("DELETE", "/api/v1/terminals/" + bomb).status, 200);
  std::printf("fork bomb container removed in %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count()));
  EXPECT_FALSE(docker({"inspect", "rexec-" + bomb}));
}

TEST_F(ContainerResilience, IsolatedContainersCannotReachEachOther) {
  HubFixture hub(container_hub_flags());
  std::string a = create(hub, {{"kind", "container"}, {"image", "rexec/busybox:latest"}, {"network", "isolated"}});
  std::string b = create(hub, {{"kind", "container"}, {"image", "rexec/busybox:latest"}, {"network", "isolated"}});
  ASSERT_TRUE(wait_status(hub, a, "running"));
  ASSERT_TRUE(wait_status(hub, b, "running"));
  auto ip = docker({"inspect", "-f", "{{(index .NetworkSettings.Networks \"rexec-isolated\").IPAddress}}", "rexec-" + b});
  ASSERT_TRUE(ip && ip->size() > 7) << (ip ? *ip : "no ip");
  std::string b_ip = ip->substr(0, ip->find('\n'));
  auto icc = docker({"network", "inspect", "-f", "{{index .Options \"com.docker.network.bridge.enable_icc\"}}", "rexec-isolated"});
  ASSERT_TRUE(icc);
  EXPECT_EQ(*icc, "false\n");
  // b listens; the host can reach it (so the listener is up), a cannot.
  Viewer vb;
  ASSERT_TRUE(vb.attach(hub, b));
  vb.type("while true; do echo pong | nc -l -p 7000; done\n");
  bool host_reached = false;
  for (int i = 0; i < 50 && !host_reached; ++i) {
    Process p({"/bin/bash", "-c", "exec 3<>/dev/tcp/" + b_ip + "/7000 && cat <&3"}, child_env(), hub.data_dir() + "/nc.log");
    host_reached = p.wait(5s) && p.log().find("pong") != std::string::npos;
    if (!host_reached) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(host_reached) << "the listener in b never answered the host";
  auto from_a = exec(hub, a, {"sh", "-c", "nc -w 2 " + b_ip + " 7000 </dev/null; echo rc=$?"});
  EXPECT_EQ(from_a.value("stdout", "").find("pong"), std::string::npos) << "a reached b: " << from_a;
  EXPECT_NE(from_a.value("stdout", "").find("rc=1"), std::string::npos) << from_a;
}

}  // namespace
}  // namespace rx::test
