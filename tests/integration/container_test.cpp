// Container terminals with a real Docker daemon and the images `make images` builds: a shell and
// exec in both images, every hardening setting as `docker inspect` reports it, no network by
// default, and clear errors (unknown image, Docker unreachable, quota). make test starts dockerd
// and builds the images first; run alone, the tests say what is missing.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/integration/container_support.h"
#include "tests/support/api_expect.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class Containers : public ContainerTest {
 protected:
  bool wait_running(HubFixture& hub, const std::string& id) { return wait_status(hub, id, "running"); }
};

std::vector<std::string> hub_flags(std::vector<std::string> extra = {}) { return container_hub_flags(std::move(extra)); }

TEST_F(Containers, BothImagesGiveAShellAndExec) {
  HubFixture hub(hub_flags());
  for (auto [image, os] : {std::pair{"rexec/busybox:latest", "BusyBox"}, std::pair{"rexec/debian:12", "Debian GNU/Linux 12"}}) {
    SCOPED_TRACE(image);
    auto t0 = std::chrono::steady_clock::now();
    std::string id = create(hub, {{"kind", "container"}, {"image", image}});
    ASSERT_FALSE(id.empty());
    ASSERT_TRUE(wait_running(hub, id)) << hub.log();
    std::printf("%s: running %lld ms after the create call\n", image,
                static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count()));
    // Through the viewer protocol: a login shell.
    Viewer v;
    ASSERT_TRUE(v.attach(hub, id));
    v.type("cat /etc/os-release; id; echo $((6*7))\n");
    EXPECT_TRUE(v.until([&](const Viewer& v) { return v.saw(os) && v.saw("uid=0(root)") && v.saw("42"); }, 10s)) << v.output;
    // Through exec: separate processes, no shell involved.
    auto osr = exec(hub, id, {"cat", "/etc/os-release"});
    EXPECT_EQ(osr.value("exit_code", -1), 0) << osr;
    EXPECT_NE(osr.value("stdout", "").find(os), std::string::npos) << osr;
    auto who = exec(hub, id, {"id"});
    EXPECT_NE(who.value("stdout", "").find("uid=0(root)"), std::string::npos) << who;
    // Delete removes the container.
    ASSERT_EQ(hub.api("DELETE", "/api/v1/terminals/" + id).status, 200);
    EXPECT_FALSE(docker({"inspect", "rexec-" + id})) << "the container outlived its terminal";
    EXPECT_EQ(hub.api("GET", "/api/v1/terminals/" + id).status, 404);
  }
}

// A container card's sparklines are the container's own: its cgroup's CPU time against its quota
// and its memory against its limit, not the host's /proc (which a container sees whole).
TEST_F(Containers, StatsAreTheContainersOwn) {
  HubFixture hub(hub_flags());
  std::string id = create(hub, {{"kind", "container"}, {"image", "rexec/busybox:latest"}, {"cpus", 0.5}, {"memory_mb", 64}});
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(wait_running(hub, id)) << hub.log();
  std::string agent = body(hub.api("GET", "/api/v1/terminals/" + id))["agent"];
  WsClient feed;
  ASSERT_TRUE(feed.connect(hub.port(), "/api/v1/events", "rexec.events.v1", {{"Authorization", "Bearer " + hub.admin_token()}}));
  // The next sample of this container's agent (STATS come every 5 s).
  auto next_sample = [&]() -> json {
    auto deadline = std::chrono::steady_clock::now() + 15s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = feed.receive(2s);
      if (!m) continue;
      auto j = json::parse(std::string(m->data.begin(), m->data.end()), nullptr, false);
      if (j.value("type", "") == "stats" && j.value("agent", "") == agent) return j["sample"];
    }
    return nullptr;
  };
  json idle = next_sample();
  ASSERT_TRUE(idle.is_object());
  EXPECT_EQ(idle["memory_total"], 64 << 20) << "the container's limit, not the host's memory";
  EXPECT_LT(idle["memory_used"].get<uint64_t>(), uint64_t(64) << 20);
  // Two busy loops against a half-CPU quota: the container is at its ceiling, whatever the host does.
  auto busy = exec(hub, id, {"sh", "-c", "(timeout 30 sh -c 'while :; do :; done' &) ; (timeout 30 sh -c 'while :; do :; done' &)"});
  EXPECT_EQ(busy.value("exit_code", -1), 0) << busy;
  double peak = 0;
  for (int i = 0; i < 3 && peak < 80; ++i) {
    json s = next_sample();
    ASSERT_TRUE(s.is_object());
    peak = std::max(peak, s["cpu_percent"].get<double>());
  }
  EXPECT_GE(peak, 80) << "a container busy up to its quota shows near 100%";
  std::printf("container cpu: idle %.1f%%, busy %.1f%%\n", idle["cpu_percent"].get<double>(), peak);
  (void)exec(hub, id, {"sh", "-c", "pkill -f 'while :' || killall sh 2>/dev/null; true"});
}

TEST_F(Containers, EveryHardeningSettingAsDockerReportsIt) {
  HubFixture hub(hub_flags());
  std::string id = create(hub, {{"kind", "container"}, {"image", "rexec/busybox:latest"}, {"memory_mb", 128}, {"cpus", 0.5}});
  ASSERT_TRUE(wait_running(hub, id));
  auto out = docker({"inspect", "rexec-" + id});
  ASSERT_TRUE(out);
  json c = json::parse(*out)[0];
  json h = c["HostConfig"];
  EXPECT_EQ(h["CapDrop"], json({"ALL"}));
  EXPECT_EQ(h["CapAdd"], json({"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID"}));
  EXPECT_EQ(h["SecurityOpt"], json({"no-new-privileges"}));  // the default seccomp profile stays on
  EXPECT_EQ(h["PidsLimit"], 256);
  EXPECT_EQ(h["Memory"], 128 * 1024 * 1024);
  EXPECT_EQ(h["MemorySwap"], h["Memory"]) << "swap must equal memory";
  EXPECT_EQ(h["NanoCpus"], 500000000);
  EXPECT_EQ(h["Init"], true);
  EXPECT_TRUE(h["Tmpfs"].contains("/tmp"));
  EXPECT_EQ(h["NetworkMode"], "none");
  EXPECT_EQ(c["Config"]["Labels"]["rexec.terminal"], id);
  EXPECT_EQ(c["Config"]["Labels"]["rexec.hub"].get<std::string>().rfind("hub_", 0), 0u) << "the owning hub is labelled";
  for (const auto& m : c["Mounts"]) EXPECT_EQ(m["RW"], false) << m;  // agent, socket dir, credential: read-only
  EXPECT_EQ(c["Mounts"].size(), 3u);
  EXPECT_EQ(c["Config"]["Entrypoint"][0], "/run/rexec/rexec-agent");
  // The credential: a 0600 file inside, never in the environment.
  for (const auto& e : c["Config"]["Env"]) EXPECT_EQ(e.get<std::string>().find("rxa_"), std::string::npos) << e;
  auto environ = exec(hub, id, {"sh", "-c", "cat /proc/*/environ | tr '\\0' '\\n'"});
  EXPECT_EQ(environ.value("stdout", "").find("rxa_"), std::string::npos) << "a credential is in a process environment";
  auto mode = exec(hub, id, {"stat", "-c", "%a %u", "/run/rexec/credential"});
  EXPECT_EQ(mode.value("stdout", ""), "600 0\n") << mode;
  // Docker's default seccomp filter is on (mode 2) and no-new-privileges holds inside.
  auto status = exec(hub, id, {"grep", "-E", "^(Seccomp|NoNewPrivs|CapEff):", "/proc/self/status"});
  EXPECT_NE(status.value("stdout", "").find("Seccomp:\t2"), std::string::npos) << status;
  EXPECT_NE(status.value("stdout", "").find("NoNewPrivs:\t1"), std::string::npos) << status;
  // CapEff: exactly the 7 capabilities (CHOWN 0, DAC_OVERRIDE 1, FOWNER 3, FSETID 4, KILL 5,
  // SETGID 6, SETUID 7) = 0xfb.
  EXPECT_NE(status.value("stdout", "").find("CapEff:\t00000000000000fb"), std::string::npos) << status;
  // No network at all: only loopback, and a connection out fails at once.
  auto net = exec(hub, id, {"sh", "-c", "nc -w 2 1.1.1.1 80 </dev/null; echo rc=$?"});
  EXPECT_NE(net.value("stdout", "").find("rc=1"), std::string::npos) << net;
  EXPECT_NE(net.value("stderr", "").find("unreachable"), std::string::npos) << net;
  // Capabilities really are gone: raw sockets (CAP_NET_RAW) and mounts (CAP_SYS_ADMIN) fail.
  auto mnt = exec(hub, id, {"mount", "-t", "tmpfs", "x", "/mnt"});
  EXPECT_NE(mnt.value("exit_code", 0), 0) << mnt;
}

// Issue 14: a hub whose static agent would not run in a container refuses the create with the
// reason, at once, and leaves nothing in Docker or the store; /healthz says the same.
TEST_F(Containers, WithoutAUsableAgentBinaryCreateIs503AndNothingIsLeft) {
  std::string dir = testing::TempDir() + "rexec-no-agent-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::string script = dir + "/rexec-agent.sh";
  {
    std::ofstream(script) << "#!/bin/sh\nexit 0\n";
  }
  ::chmod(script.c_str(), 0755);
  struct Case {
    std::string path, why;
  };
  for (const auto& [path, why] : {Case{dir + "/nothing-here", "No such file"}, Case{script, "not an ELF"},
                                  Case{"/bin/ls", "dynamically linked"}, Case{dir, "not a regular file"}}) {
    SCOPED_TRACE(path);
    HubFixture hub(hub_flags({"--agent-binary", path}));
    std::ifstream in(hub.data_dir() + "/data/hub-id");
    std::string hub_id;
    std::getline(in, hub_id);
    ASSERT_FALSE(hub_id.empty());
    auto t0 = std::chrono::steady_clock::now();
    auto r = hub.api("POST", "/api/v1/terminals", R"({"kind":"container","image":"rexec/busybox:latest"})");
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    std::printf("agent_binary_missing (%s): answered in %lld ms\n", why.c_str(), static_cast<long long>(ms));
    EXPECT_EQ(r.status, 503) << r.body;
    json e = body(r);
    EXPECT_EQ(e.value("code", ""), "agent_binary_missing") << r.body;
    EXPECT_NE(e.value("error", "").find(path), std::string::npos) << r.body;
    EXPECT_NE(e.value("error", "").find(why), std::string::npos) << r.body;
    auto made = docker({"ps", "-aq", "--filter", "label=rexec.hub=" + hub_id});
    ASSERT_TRUE(made);
    EXPECT_EQ(*made, "") << "a container was made";
    json listed = body(hub.api("GET", "/api/v1/terminals"));
    EXPECT_TRUE(listed["terminals"].is_array() && listed["terminals"].empty()) << listed;
    auto health = hub.api("GET", "/healthz");
    json h = body(health);
    EXPECT_EQ(h["containers"].value("usable", true), false) << health.body;
    EXPECT_EQ(h["containers"].value("agent_binary", ""), path) << health.body;
    EXPECT_NE(h["containers"].value("error", "").find(why), std::string::npos) << health.body;
  }
  // The same hub with the real static agent: usable, and a create works.
  HubFixture hub(hub_flags());
  json h = body(hub.api("GET", "/healthz"));
  EXPECT_EQ(h["containers"].value("usable", false), true) << h;
  std::string id = create(hub, {{"kind", "container"}, {"image", "rexec/busybox:latest"}});
  EXPECT_TRUE(wait_running(hub, id)) << hub.log();
  std::filesystem::remove_all(dir);
}

TEST_F(Containers, StopAndStartGiveANewShellInTheSameContainer) {
  HubFixture hub(hub_flags());
  std::string id = create(hub, {{"kind", "container"}, {"image", "rexec/busybox:latest"}});
  ASSERT_TRUE(wait_running(hub, id));
  auto stopped = hub.api("POST", "/api/v1/terminals/" + id + "/stop");
  ASSERT_EQ(stopped.status, 200) << stopped.body;
  EXPECT_EQ(body(hub.api("GET", "/api/v1/terminals/" + id)).value("status", ""), "stopped");
  auto state = docker({"inspect", "-f", "{{.State.Running}}", "rexec-" + id});
  ASSERT_TRUE(state);
  EXPECT_EQ(*state, "false\n");
  EXPECT_EQ(hub.api("POST", "/api/v1/terminals/" + id + "/stop").status, 409) << "stopping twice";
  ASSERT_TRUE(wait_two_sweeps(hub)) << "the supervisor never swept";  // a sweep saw it stopped: not "lost"
  EXPECT_EQ(body(hub.api("GET", "/api/v1/terminals/" + id)).value("status", ""), "stopped");
  auto started = hub.api("POST", "/api/v1/terminals/" + id + "/start");
  ASSERT_EQ(started.status, 200) << started.body;
  ASSERT_TRUE(wait_running(hub, id)) << hub.log();
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  v.type("echo again-$((20+22))\n");
  EXPECT_TRUE(v.until([](const Viewer& v) { return v.saw("again-42"); }, 10s)) << v.output;
  EXPECT_EQ(hub.api("POST", "/api/v1/terminals/" + id + "/start").status, 409) << "starting a running terminal";
}

// Stop and start in quick succession, more cycles than a supervisor sweep (3 s) is long: a sweep
// that lists the containers while Docker is still starting one must not call its terminal lost
// (CI saw "its container exited with code 0" for a terminal being started).
TEST_F(Containers, StopStartCyclesNeverLoseTheTerminal) {
  HubFixture hub(hub_flags());
  std::string id = create(hub, {{"kind", "container"}, {"image", "rexec/busybox:latest"}});
  ASSERT_TRUE(wait_running(hub, id)) << hub.log();
  for (int cycle = 0; cycle < 8; ++cycle) {
    SCOPED_TRACE("cycle " + std::to_string(cycle));
    ASSERT_EQ(hub.api("POST", "/api/v1/terminals/" + id + "/stop").status, 200);
    ASSERT_EQ(hub.api("POST", "/api/v1/terminals/" + id + "/start").status, 200);
    ASSERT_TRUE(wait_running(hub, id)) << hub.log();
  }
  auto r = exec(hub, id, {"echo", "still-here"});
  EXPECT_EQ(r.value("stdout", ""), "still-here\n") << r;
  EXPECT_EQ(hub.log().find("event=terminal.lost"), std::string::npos) << hub.log();
}

TEST_F(Containers, WarmPoolHandsOutAReadyContainerAndRefills) {
  HubFixture hub(hub_flags({"--warm-pool", "rexec/busybox:latest=1"}));
  std::ifstream in(hub.data_dir() + "/data/hub-id");
  std::string hub_id;
  std::getline(in, hub_id);
  auto pooled = [&] {
    auto out = docker({"ps", "-q", "--filter", "label=rexec.pool=1", "--filter", "label=rexec.hub=" + hub_id});
    return out ? std::count(out->begin(), out->end(), '\n') : 0;
  };
  for (int i = 0; i < 100 && pooled() < 1; ++i) std::this_thread::sleep_for(100ms);
  ASSERT_EQ(pooled(), 1) << hub.log();
  std::this_thread::sleep_for(1s);  // its agent says HELLO
  auto t0 = std::chrono::steady_clock::now();
  std::string id = create(hub, {{"kind", "container"}, {"image", "rexec/busybox:latest"}});
  ASSERT_FALSE(id.empty());
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  ASSERT_TRUE(v.until([](const Viewer& v) { return !v.output.empty(); }, 10s));
  std::printf("warm card: first prompt byte %lld ms after the create call\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count()));
  json audit = body(hub.api("GET", "/api/v1/audit?action=terminal.create"));
  ASSERT_FALSE(audit["entries"].empty());
  EXPECT_NE(audit["entries"].back().value("detail", "").find("warm"), std::string::npos) << audit;
  v.type("echo warm-$((6*7))\n");
  EXPECT_TRUE(v.until([](const Viewer& v) { return v.saw("warm-42"); }, 10s)) << v.output;
  // The hand-over is complete: it is the user's terminal, and the pool starts a replacement.
  EXPECT_EQ(body(hub.api("GET", "/api/v1/terminals/" + id)).value("owner", "").rfind("u_", 0), 0u);
  bool refilled = false;
  for (int i = 0; i < 100 && !refilled; ++i) {
    refilled = pooled() == 2;  // the taken one still carries the pool label, plus its replacement
    if (!refilled) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(refilled);
  ASSERT_EQ(hub.api("DELETE", "/api/v1/terminals/" + id).status, 200);
}

TEST_F(Containers, ClearErrors) {
  HubFixture hub(hub_flags({"--container-quota", "1"}));
  auto unknown = hub.api("POST", "/api/v1/terminals", R"({"kind":"container","image":"rexec/nonexistent:0"})");
  EXPECT_EQ(unknown.status, 400) << unknown.body;
  EXPECT_EQ(body(unknown).value("code", ""), "image_not_found");
  auto bad_net = hub.api("POST", "/api/v1/terminals", R"({"kind":"container","image":"rexec/busybox:latest","network":"host"})");
  EXPECT_EQ(body(bad_net).value("code", ""), "bad_field") << bad_net.body;
  std::string first = create(hub, {{"kind", "container"}, {"image", "rexec/busybox:latest"}});
  ASSERT_FALSE(first.empty());
  auto second = hub.api("POST", "/api/v1/terminals", R"({"kind":"container","image":"rexec/busybox:latest"})");
  EXPECT_EQ(second.status, 409) << second.body;
  EXPECT_EQ(body(second).value("code", ""), "quota_exceeded");
  // Container agents do not show up as agents people can pick.
  EXPECT_TRUE(body(hub.api("GET", "/api/v1/agents"))["agents"].empty());
  // The containers' socket carries the agent link and nothing else.
  EXPECT_TRUE(std::filesystem::exists(hub.data_dir() + "/data/sock/hub.sock"));
}

TEST_F(Containers, DockerUnreachableIs503Quickly) {
  HubFixture hub(hub_flags({"--docker-socket", "/nonexistent/docker.sock"}));
  auto t0 = std::chrono::steady_clock::now();
  auto r = hub.api("POST", "/api/v1/terminals", R"({"kind":"container","image":"rexec/busybox:latest"})");
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(body(r).value("code", ""), "docker_unavailable");
  EXPECT_LT(took, 2s);
  auto health = body(http(hub.port(), "GET", "/healthz"));
  EXPECT_EQ(health["docker"]["reachable"], false);
  EXPECT_EQ(health["ok"], true) << "Docker is reported, not fatal";
  // The dashboard's image picker gets the same clear answer.
  expect_error(hub.api("GET", "/api/v1/images"), 503, "docker_unavailable");
}

TEST_F(Containers, ImagesListsTheLocalTaggedImages) {
  HubFixture hub(hub_flags());
  auto r = hub.api("GET", "/api/v1/images");
  ASSERT_EQ(r.status, 200) << r.body;
  std::set<std::string> tags;
  json list = body(r);  // (a named value: range-for over a temporary's [] dangles)
  for (const auto& img : list["images"]) {
    EXPECT_TRUE(img["id"].get<std::string>().starts_with("sha256:")) << img;
    EXPECT_FALSE(img["tags"].empty()) << "untagged images are left out: " << img;
    for (const auto& t : img["tags"]) tags.insert(t.get<std::string>());
  }
  EXPECT_TRUE(tags.count("rexec/busybox:latest"));
  EXPECT_TRUE(tags.count("rexec/debian:12"));
}

}  // namespace
}  // namespace rx::test
