// The Docker daemon itself going away and coming back, with a hub running: creating a container
// terminal answers 503 docker_unavailable within 2 s while it is down, /healthz reports it, and
// once dockerd is back the same hub creates terminals again, no restart. This stops the machine's
// dockerd, so ctest runs it alone (RUN_SERIAL).
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/integration/container_support.h"
#include "tests/support/api_expect.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// dockerd's pid, from its pid file (scripts/docker-up.sh and systemd both write it).
pid_t dockerd_pid() {
  std::ifstream in("/var/run/docker.pid");
  pid_t pid = 0;
  in >> pid;
  return pid;
}

bool run(const std::vector<std::string>& argv, std::chrono::seconds timeout) {
  TempDir dir("rexec-dockerd");
  Process p(argv, child_env(), dir / "log");
  auto st = p.wait(timeout);
  return st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0;
}

class DockerDaemon : public ContainerTest {};

TEST_F(DockerDaemon, StoppedIs503AndTheHubRecoversWhenItIsBack) {
  HubFixture hub(container_hub_flags());
  std::string before = create(hub, {{"kind", "container"}, {"image", "rexec/busybox:latest"}});
  ASSERT_TRUE(wait_status(hub, before, "running"));

  // Under systemd, dockerd is socket-activated and restarted: stop it through systemd, or it
  // comes straight back. Without systemd (containers, CI), docker-up.sh started it: signal it.
  bool systemd = std::filesystem::exists("/run/systemd/system");
  pid_t pid = dockerd_pid();
  ASSERT_GT(pid, 0) << "no /var/run/docker.pid";
  if (systemd) {
    ASSERT_TRUE(run({"/bin/systemctl", "stop", "docker.socket", "docker.service"}, 60s));
  } else {
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
  }
  for (int i = 0; i < 300 && ::kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(100ms);
  ASSERT_NE(::kill(pid, 0), 0) << "dockerd did not stop";

  auto t0 = std::chrono::steady_clock::now();
  auto r = hub.api("POST", "/api/v1/terminals", R"({"kind":"container","image":"rexec/busybox:latest"})");
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(body(r).value("code", ""), "docker_unavailable");
  EXPECT_LT(took.count(), 2000);
  std::printf("docker down: create answered %d in %lld ms\n", r.status, static_cast<long long>(took.count()));
  auto health = body(http(hub.port(), "GET", "/healthz"));
  EXPECT_EQ(health["docker"]["reachable"], false);
  EXPECT_EQ(http(hub.port(), "GET", "/healthz").status, 200) << "Docker is reported, not fatal";

  if (systemd) {
    ASSERT_TRUE(run({"/bin/systemctl", "start", "docker.socket", "docker.service"}, 60s));
  }
  ASSERT_TRUE(run({"/bin/bash", std::string(REXEC_SOURCE_DIR) + "/scripts/docker-up.sh"}, 60s)) << "dockerd did not come back";
  std::string after;
  for (int i = 0; i < 50 && after.empty(); ++i) {  // the hub needs no restart; Docker may need a moment
    auto again = hub.api("POST", "/api/v1/terminals", R"({"kind":"container","image":"rexec/busybox:latest"})");
    if (again.status == 201) after = body(again).value("id", "");
    else std::this_thread::sleep_for(200ms);
  }
  ASSERT_FALSE(after.empty()) << "the hub did not recover after dockerd came back";
  created_.push_back(after);
  EXPECT_TRUE(wait_status(hub, after, "running"));
  // The container that was running when dockerd stopped went with it (no live-restore): its
  // terminal says so instead of waiting forever.
  EXPECT_TRUE(wait_status(hub, before, "lost", 15s)) << hub.api("GET", "/api/v1/terminals/" + before).body;
}

}  // namespace
}  // namespace rx::test
