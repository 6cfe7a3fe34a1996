#include "tests/integration/container_support.h"

#include <sys/wait.h>

#include <filesystem>
#include <thread>

namespace rx::test {

using nlohmann::json;
using namespace std::chrono_literals;

std::string static_agent_path() { return std::string(REXEC_SOURCE_DIR) + "/build/static-agent/agent/rexec-agent"; }

std::optional<std::string> docker(std::vector<std::string> args) {
  TempDir dir("rexec-docker-cli");
  args.insert(args.begin(), {"/usr/bin/env", "docker"});
  Process p(args, child_env(), dir / "out");
  auto st = p.wait(60s);
  if (!st || !WIFEXITED(*st) || WEXITSTATUS(*st) != 0) return std::nullopt;
  return p.log();
}

std::string docker_missing() {
  if (!docker({"info"})) return "no Docker daemon answers (scripts/docker-up.sh starts one)";
  if (!docker({"image", "inspect", "rexec/busybox:latest"}) || !docker({"image", "inspect", "rexec/debian:12"}))
    return "the test images are missing (make images)";
  if (!std::filesystem::exists(static_agent_path())) return "no static agent (cmake --preset static-agent)";
  return "";
}

std::vector<std::string> container_hub_flags(std::vector<std::string> extra) {
  auto flags = HubFixture::relaxed_limits();
  flags.insert(flags.end(), {"--agent-binary", static_agent_path()});
  flags.insert(flags.end(), extra.begin(), extra.end());
  return flags;
}

void ContainerTest::TearDown() {
  for (const auto& id : created_) (void)docker({"rm", "-f", "rexec-" + id});  // whatever a failed test left
}

std::string ContainerTest::create(HubFixture& hub, const json& spec) {
  auto r = hub.api("POST", "/api/v1/terminals", spec.dump());
  EXPECT_EQ(r.status, 201) << r.body;
  std::string id = json::parse(r.body, nullptr, false).value("id", "");
  if (!id.empty()) created_.push_back(id);
  return id;
}

bool ContainerTest::wait_status(HubFixture& hub, const std::string& id, const std::string& status,
                                std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (json::parse(hub.api("GET", "/api/v1/terminals/" + id).body, nullptr, false).value("status", "") == status) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

namespace {
long container_sweeps(HubFixture& hub) {
  const std::string line = "\nrexec_container_sweeps_total ";
  std::string text = hub.api("GET", "/metrics").body;
  auto at = text.find(line);
  return at == std::string::npos ? 0 : std::atol(text.c_str() + at + line.size());
}
}  // namespace

bool ContainerTest::wait_two_sweeps(HubFixture& hub, std::chrono::milliseconds timeout) {
  long target = container_sweeps(hub) + 2;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (container_sweeps(hub) >= target) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

json ContainerTest::exec(HubFixture& hub, const std::string& id, const std::vector<std::string>& argv) {
  auto r = hub.api("POST", "/api/v1/exec", json{{"targets", {id}}, {"argv", argv}, {"timeout_s", 20}}.dump());
  EXPECT_EQ(r.status, 200) << r.body;
  auto results = json::parse(r.body, nullptr, false)["results"];
  return results.is_array() && !results.empty() ? results[0] : json::object();
}

}  // namespace rx::test
