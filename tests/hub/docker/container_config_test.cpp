// hub/docker/containers.cpp: container_config(), the body of POST /containers/create, checked
// without a Docker daemon. The hardening in docs/containers.md must be in every body whatever the
// request asks for; tests/integration/container_test.cpp checks the same from `docker inspect`,
// but only where dockerd runs, so a regression here fails on every machine first.
#include "hub/docker/containers.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace rx::hub {
namespace {

using nlohmann::json;

const std::string kHubId = "hub-7f3a";
const std::string kAgent = "/opt/rexec/lib/rexec-agent";
const std::string kSockets = "/var/lib/rexec/sock";
const std::string kCredential = "/var/lib/rexec/containers/ag_1/credential";

json config(const ContainerSpec& spec) { return container_config(spec, kHubId, kAgent, kSockets, kCredential); }

ContainerSpec spec_for(const std::string& terminal, const std::string& image = "rexec/debian:12") {
  ContainerSpec s;
  s.terminal_id = terminal;
  s.image = image;
  return s;
}

std::vector<std::string> strings(const json& j) { return j.get<std::vector<std::string>>(); }

std::set<std::string> keys_of(const json& j) {
  std::set<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.insert(k);
  return keys;
}

// Requests that differ in every field a request can set: the hardening must not depend on any.
std::vector<ContainerSpec> varied_specs() {
  std::vector<ContainerSpec> all;
  all.push_back(spec_for("t_default"));
  ContainerSpec big = spec_for("t_big", "localhost:5000/team/tool:v1");
  big.network = "isolated";
  big.cpus = 256;
  big.memory_mb = 65536;
  big.pids_limit = 4096;
  all.push_back(big);
  ContainerSpec small = spec_for("t_small", "rexec/busybox:latest");
  small.cpus = 0.05;
  small.memory_mb = 32;
  small.pids_limit = 1;
  small.pooled = true;
  all.push_back(small);
  return all;
}

TEST(ContainerConfig, HardeningIsInEveryBody) {
  for (const auto& spec : varied_specs()) {
    SCOPED_TRACE(spec.terminal_id);
    json c = config(spec);
    const json& h = c.at("HostConfig");
    // Exactly these keys (first, so a missing one is named rather than thrown): Privileged,
    // Devices, PortBindings, a host PID or IPC namespace... are absent because nothing sets them;
    // this fails when something starts to.
    ASSERT_EQ(keys_of(h), (std::set<std::string>{"Binds", "CapDrop", "CapAdd", "SecurityOpt", "PidsLimit", "Memory",
                                                 "MemorySwap", "NanoCpus", "Init", "Tmpfs", "NetworkMode",
                                                 "RestartPolicy"}));
    // Drop everything, then add back exactly the documented seven: a new capability is a
    // decision for docs/containers.md, not a side effect.
    EXPECT_EQ(strings(h.at("CapDrop")), std::vector<std::string>{"ALL"});
    EXPECT_EQ(strings(h.at("CapAdd")), (std::vector<std::string>{"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL",
                                                                  "SETGID", "SETUID"}));
    EXPECT_EQ(strings(h.at("CapAdd")), container_capabilities());
    for (const std::string bad : {"NET_RAW", "SYS_ADMIN", "MKNOD", "NET_BIND_SERVICE", "SYS_CHROOT", "AUDIT_WRITE",
                                  "SYS_PTRACE", "NET_ADMIN", "ALL"})
      for (const auto& cap : strings(h.at("CapAdd"))) EXPECT_NE(cap, bad);
    // no-new-privileges, and nothing that would replace Docker's default seccomp or AppArmor profile.
    EXPECT_EQ(strings(h.at("SecurityOpt")), std::vector<std::string>{"no-new-privileges"});
    EXPECT_TRUE(h.at("Init").get<bool>());  // docker-init as PID 1 reaps zombies
    EXPECT_EQ(h.at("Tmpfs"), (json{{"/tmp", "rw,nosuid,nodev,size=64m"}}));
    EXPECT_EQ(h.at("RestartPolicy"), (json{{"Name", "no"}}));  // the supervisor decides, not Docker
    // Limits are always set (never 0 = unlimited), swap equal to memory: no swap on top.
    EXPECT_GT(h.at("PidsLimit").get<int64_t>(), 0);
    EXPECT_GT(h.at("Memory").get<int64_t>(), 0);
    EXPECT_EQ(h.at("MemorySwap"), h.at("Memory"));
    EXPECT_GT(h.at("NanoCpus").get<int64_t>(), 0);
    // The container talks to the hub over the socket; it needs no terminal of Docker's own.
    EXPECT_FALSE(c.at("Tty").get<bool>());
  }
}

TEST(ContainerConfig, MountsAreTheAgentTheSocketAndTheCredentialAllReadOnly) {
  json c = config(spec_for("t_1"));
  EXPECT_EQ(strings(c.at("HostConfig").at("Binds")),
            (std::vector<std::string>{kAgent + ":/run/rexec/rexec-agent:ro", kSockets + ":/run/rexec/hub:ro",
                                      kCredential + ":/run/rexec/credential:ro"}));
  for (const auto& b : strings(c.at("HostConfig").at("Binds"))) EXPECT_TRUE(b.ends_with(":ro")) << b;
}

TEST(ContainerConfig, EntrypointIsTheMountedAgentAndNoSecretIsInTheEnvironment) {
  json c = config(spec_for("t_abc123"));
  ASSERT_EQ(keys_of(c), (std::set<std::string>{"Image", "Entrypoint", "Cmd", "Env", "Labels", "Tty", "HostConfig"}));
  EXPECT_EQ(strings(c.at("Entrypoint")),
            (std::vector<std::string>{"/run/rexec/rexec-agent", "--hub", "unix:/run/rexec/hub/hub.sock",
                                      "--credential-file", "/run/rexec/credential", "--name", "t_abc123",
                                      "--stats-cgroup", "/sys/fs/cgroup"}));
  EXPECT_EQ(c.at("Cmd"), json::array());  // the image's CMD must not be appended to the agent's flags
  EXPECT_EQ(c.at("Env"), json::array());  // the credential is a file, never an environment variable
}

TEST(ContainerConfig, RequestedValuesPassThroughExactly) {
  ContainerSpec s = spec_for("t_9", "localhost:5000/team/tool:v1.2-rc_3");
  s.cpus = 1.5;
  s.memory_mb = 768;
  s.pids_limit = 99;
  json c = config(s);
  const json& h = c.at("HostConfig");
  EXPECT_EQ(c.at("Image"), "localhost:5000/team/tool:v1.2-rc_3");
  EXPECT_EQ(h.at("NanoCpus").get<int64_t>(), 1'500'000'000);
  EXPECT_EQ(h.at("Memory").get<int64_t>(), 768LL * 1024 * 1024);
  EXPECT_EQ(h.at("MemorySwap").get<int64_t>(), 768LL * 1024 * 1024);
  EXPECT_EQ(h.at("PidsLimit").get<int64_t>(), 99);

  // Defaults are the documented ones: 1 CPU, 512 MiB, 256 PIDs.
  json d = config(spec_for("t_d")).at("HostConfig");
  EXPECT_EQ(d.at("NanoCpus").get<int64_t>(), 1'000'000'000);
  EXPECT_EQ(d.at("Memory").get<int64_t>(), 512LL * 1024 * 1024);
  EXPECT_EQ(d.at("PidsLimit").get<int64_t>(), 256);
}

TEST(ContainerConfig, LimitsAtTheEdgesOfWhatTheApiAllows) {
  // The API allows cpus 0.05..256 and memory_mb 32..65536 (hub/api/api_containers.cpp).
  ContainerSpec lo = spec_for("t_lo");
  lo.cpus = 0.05;  // not exactly representable: rounded, not truncated to 49999999
  lo.memory_mb = 32;
  json l = config(lo).at("HostConfig");
  EXPECT_EQ(l.at("NanoCpus").get<int64_t>(), 50'000'000);
  EXPECT_EQ(l.at("Memory").get<int64_t>(), 32LL * 1024 * 1024);

  ContainerSpec hi = spec_for("t_hi");
  hi.cpus = 256;
  hi.memory_mb = 65536;  // 64 GiB: over INT32_MAX bytes, so the product must be 64-bit
  json h = config(hi).at("HostConfig");
  EXPECT_EQ(h.at("NanoCpus").get<int64_t>(), 256'000'000'000LL);
  EXPECT_EQ(h.at("Memory").get<int64_t>(), 65536LL * 1024 * 1024);
  EXPECT_EQ(h.at("MemorySwap").get<int64_t>(), 65536LL * 1024 * 1024);
}

TEST(ContainerConfig, NetworkIsNoneUnlessIsolatedIsAsked) {
  ContainerSpec s = spec_for("t_n");
  EXPECT_EQ(config(s).at("HostConfig").at("NetworkMode"), "none");
  s.network = "isolated";
  EXPECT_EQ(config(s).at("HostConfig").at("NetworkMode"), kIsolatedNetwork);
  EXPECT_EQ(std::string(kIsolatedNetwork), "rexec-isolated");
  // The API refuses other values; should one get here anyway, it must not become a Docker
  // network name such as "host" or "bridge": anything else is no network at all.
  for (std::string other : {"host", "bridge", "", "Isolated", "container:abc", "rexec-isolated"}) {
    s.network = other;
    EXPECT_EQ(config(s).at("HostConfig").at("NetworkMode"), "none") << other;
  }
}

TEST(ContainerConfig, LabelsNameTheTerminalTheHubAndThePool) {
  ContainerSpec s = spec_for("t_lab");
  EXPECT_EQ(config(s).at("Labels"), (json{{"rexec.terminal", "t_lab"}, {"rexec.hub", kHubId}}));
  s.pooled = true;
  EXPECT_EQ(config(s).at("Labels"), (json{{"rexec.terminal", "t_lab"}, {"rexec.hub", kHubId}, {"rexec.pool", "1"}}));
  EXPECT_EQ(std::string(kTerminalLabel), "rexec.terminal");
  EXPECT_EQ(std::string(kHubLabel), "rexec.hub");
}

TEST(ContainerConfig, ValuesAreDataNotSyntax) {
  // A terminal id or path with quotes, spaces or a newline stays one JSON string each: nothing
  // is built by concatenating JSON text (only the "src:dst:ro" bind strings, Docker's own syntax).
  ContainerSpec s = spec_for("t \"x\"\n--privileged");
  json c = container_config(s, "hub \"q\"", "/path with space/agent", kSockets, kCredential);
  auto round = json::parse(c.dump());
  EXPECT_EQ(round.at("Entrypoint").at(6), "t \"x\"\n--privileged");
  EXPECT_EQ(round.at("Entrypoint").size(), 9u);
  EXPECT_EQ(round.at("Labels").at("rexec.hub"), "hub \"q\"");
  EXPECT_EQ(round.at("HostConfig").at("Binds").at(0), "/path with space/agent:/run/rexec/rexec-agent:ro");
}

}  // namespace
}  // namespace rx::hub
