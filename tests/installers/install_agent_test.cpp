// installers/install-agent.sh as a new user runs it: served by a live hub (its URL filled in,
// its downloads dir staged by scripts/stage-downloads.sh from the static-agent build), run in a
// fresh Debian 12 container (rexec/debian-curl:12, `make images`) that shares the host's network
// namespace to reach the hub on loopback.
//
// systemd cannot be PID 1 in a container here, so the installer runs with --no-start (it still
// downloads, verifies, enrolls and installs everything, unit included) and the test then starts
// the agent as the unit would: the ExecStart= line of the unit the installer wrote, run inside
// the container. `docker diff` (every file added or changed against the image) is the list of
// what the installer left on the machine.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/container_support.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kImage = "rexec/debian-curl:12";
const std::string kInstalled[] = {"/usr/local/bin/rexec-agent", "/etc/rexec/agent.conf",
                                  "/var/lib/rexec-agent/credential", "/etc/systemd/system/rexec-agent.service"};

struct Outcome {
  int exit_code = -1;
  std::string output;
};

// A fresh "server": a container on the host's network, removed at the end.
class Server {
 public:
  Server() {
    name_ = "rexec-installer-" + std::to_string(::getpid()) + "-" + std::to_string(serial_++);
    // --init: a PID 1 that reaps, as systemd would, so a stopped agent does not linger as a zombie.
    ok_ = docker({"run", "-d", "--rm", "--init", "--network", "host", "--name", name_, kImage, "sleep", "infinity"})
              .has_value();
  }
  ~Server() { (void)docker({"rm", "-f", name_}); }
  bool ok() const { return ok_; }
  // `sh -c script` as root inside; stdin from `input` (the token goes in this way only).
  Outcome sh(const std::string& script, const std::string& input = "") const {
    TempDir dir("rexec-installer-run");
    Process p({"/usr/bin/env", "docker", "exec", "-i", name_, "sh", "-c", script}, child_env(), dir / "out", input);
    auto st = p.wait(120s);
    Outcome r;
    r.output = p.log();
    r.exit_code = st && WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
    return r;
  }
  // Files and links added (A) or changed (C) against the image, outside /tmp and /run.
  std::set<std::string> added() const {
    std::set<std::string> out;
    std::istringstream in(docker({"diff", name_}).value_or(""));
    for (std::string line; std::getline(in, line);) {
      if (line.size() < 3 || line[0] != 'A') continue;
      std::string path = line.substr(2);
      // (/usr/sbin/docker-init is docker's own, for --init)
      if (path.starts_with("/tmp") || path.starts_with("/run") || path == "/usr/sbin/docker-init") continue;
      out.insert(path);
    }
    return out;
  }
  // sha256 of each of `paths` (missing: "").
  std::map<std::string, std::string> hashes(const std::set<std::string>& paths) const {
    std::map<std::string, std::string> out;
    for (const auto& p : paths) {
      auto r = sh("sha256sum '" + p + "' 2>/dev/null | cut -d' ' -f1; test -d '" + p + "' && echo dir || true");
      out[p] = r.output;
    }
    return out;
  }
  const std::string& name() const { return name_; }

 private:
  static inline int serial_ = 0;
  std::string name_;
  bool ok_ = false;
};

// The hub with a downloads dir staged from `build_root` (default: the real static-agent build).
struct InstallerHub {
  explicit InstallerHub(const std::string& build_root = "") : downloads("rexec-downloads") {
    std::vector<std::string> stage{"/bin/bash", std::string(REXEC_SOURCE_DIR) + "/scripts/stage-downloads.sh",
                                   downloads.path()};
    if (!build_root.empty()) stage.push_back(build_root);
    TempDir log("rexec-stage");
    Process p(stage, child_env(), log / "out");
    auto st = p.wait(60s);
    staged = st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0 && fs::exists(downloads / "rexec-agent-linux-amd64.sha256");
    auto flags = HubFixture::relaxed_limits();
    flags.insert(flags.end(), {"--downloads-dir", downloads.path()});
    hub = std::make_unique<HubFixture>(flags);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(hub->port()); }
  // Fetches the served installer into the server, as the one-line install command does.
  std::string fetch() const { return "curl -fsSL " + url() + "/install-agent.sh -o /tmp/rexec-install.sh && "; }
  TempDir downloads;
  bool staged = false;
  std::unique_ptr<HubFixture> hub;
};

json agent_named(HubFixture& hub, const std::string& name) {
  json list = json::parse(hub.api("GET", "/api/v1/agents").body, nullptr, false);
  for (const auto& a : list["agents"])
    if (a["name"] == name) return a;
  return nullptr;
}

// Every process's argv on this machine, containers included, checked for `secret` every 10 ms
// while it runs. Counts the samples so a test can see it really looked.
class ArgvWatch {
 public:
  explicit ArgvWatch(std::string secret) : secret_(std::move(secret)), thread_([this] { run(); }) {}
  ~ArgvWatch() { stop(); }
  void stop() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::string found() const { return found_; }
  int samples() const { return samples_; }

 private:
  void run() {
    while (!done_) {
      for (const auto& e : fs::directory_iterator("/proc", fs::directory_options::skip_permission_denied)) {
        std::string n = e.path().filename();
        if (n.empty() || !std::isdigit(static_cast<unsigned char>(n[0]))) continue;
        std::ifstream in(e.path() / "cmdline", std::ios::binary);
        std::string argv((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (argv.find(secret_) != std::string::npos && found_.empty()) {
          for (auto& c : argv) c = c == '\0' ? ' ' : c;
          found_ = "pid " + n + ": " + argv;
        }
      }
      ++samples_;
      std::this_thread::sleep_for(10ms);
    }
  }
  std::string secret_;
  std::atomic<bool> done_{false};
  std::atomic<int> samples_{0};
  std::string found_;
  std::thread thread_;
};

class Installer : public testing::Test {
 protected:
  void SetUp() override {
    REXEC_REQUIRE_DOCKER_OR_SKIP();
    if (!docker({"image", "inspect", kImage})) {
      if (std::getenv("REXEC_REQUIRE_DOCKER")) FAIL() << kImage << " is missing (make images)";
      GTEST_SKIP() << kImage << " is missing (make images)";
    }
  }
};

// The unit's own command line, run inside the server the way systemd would run it.
std::string start_as_the_unit() {
  return "cmd=$(sed -n 's/^ExecStart=//p' /etc/systemd/system/rexec-agent.service) && "
         "nohup $cmd >/tmp/agent.log 2>&1 </dev/null & echo started";
}

TEST_F(Installer, InstallsUpgradesInPlaceAndUninstallsWithoutATrace) {
  InstallerHub h;
  ASSERT_TRUE(h.staged);
  Server server;
  ASSERT_TRUE(server.ok());
  std::string token = h.hub->enroll();
  const std::string install = h.fetch() + "sh /tmp/rexec-install.sh --token-file - --name web-3 --label env=test "
                                          "--label rack=b7 --no-start";
  Outcome first;
  {
    ArgvWatch watch(token);
    first = server.sh(install, token + "\n");
    watch.stop();
    EXPECT_EQ(watch.found(), "") << "the enrollment token was in a process's argv";
    EXPECT_GT(watch.samples(), 10);
  }
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_NE(first.output.find("checksum verified"), std::string::npos) << first.output;
  EXPECT_NE(first.output.find("enrolled as web-3"), std::string::npos) << first.output;

  // What it installed, and nothing that holds the token; the credential root's alone.
  auto files = server.added();
  for (const auto& f : kInstalled) EXPECT_TRUE(files.count(f)) << f << " not installed; added: " << files.size();
  Outcome grep = server.sh("grep -rlF --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev '" + token + "' / ; echo rc=$?");
  EXPECT_NE(grep.output.find("rc=1"), std::string::npos) << "files holding the token:\n" << grep.output;
  EXPECT_EQ(server.sh("stat -c '%a %U' /var/lib/rexec-agent/credential /var/lib/rexec-agent").output, "600 root\n700 root\n");
  Outcome conf = server.sh("cat /etc/rexec/agent.conf");
  EXPECT_NE(conf.output.find("hub = ws://127.0.0.1:" + std::to_string(h.hub->port())), std::string::npos) << conf.output;
  EXPECT_EQ(conf.output.find("rx"), std::string::npos) << "a secret in agent.conf:\n" << conf.output;

  // Started as the unit starts it: online with its name and labels.
  ASSERT_EQ(server.sh(start_as_the_unit()).exit_code, 0);
  ASSERT_TRUE(wait_online(*h.hub, "web-3", 20s)) << server.sh("cat /tmp/agent.log").output;
  json agent = agent_named(*h.hub, "web-3");
  EXPECT_EQ(agent["labels"], (json{{"env", "test"}, {"rack", "b7"}})) << agent.dump();

  // A second run with a new agent build: only the binary changes; the credential stays.
  auto before = server.hashes(files);
  TempDir build("rexec-newbuild");
  fs::create_directories(build / "static-agent/agent");
  fs::copy_file(static_agent_path(), build / "static-agent/agent/rexec-agent");
  std::ofstream(build / "static-agent/agent/rexec-agent", std::ios::app) << "\n# a newer build\n";
  {
    TempDir log("rexec-restage");
    Process p({"/bin/bash", std::string(REXEC_SOURCE_DIR) + "/scripts/stage-downloads.sh", h.downloads.path(),
               build.path()},
              child_env(), log / "out");
    ASSERT_TRUE(p.wait(60s).has_value());
  }
  Outcome second = server.sh(h.fetch() + "sh /tmp/rexec-install.sh --name web-3 --label env=test --label rack=b7 --no-start");
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("keeping the credential"), std::string::npos) << second.output;
  EXPECT_EQ(server.added(), files) << "the second run added or removed files";
  auto after = server.hashes(files);
  std::set<std::string> changed;
  for (const auto& [path, hash] : before)
    if (after[path] != hash) changed.insert(path);
  EXPECT_EQ(changed, std::set<std::string>{"/usr/local/bin/rexec-agent"});
  EXPECT_TRUE(agent_named(*h.hub, "web-3")["online"].get<bool>());

  // Uninstall: the agent stopped as `systemctl stop` would, then every file gone and the hub told.
  ASSERT_EQ(server.sh("pkill -TERM -x rexec-agent; i=0; while pgrep -x rexec-agent >/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; ! pgrep -x rexec-agent").exit_code, 0);
  Outcome gone = server.sh("sh /tmp/rexec-install.sh --uninstall");
  ASSERT_EQ(gone.exit_code, 0) << gone.output;
  EXPECT_EQ(server.added(), std::set<std::string>{}) << "left behind after --uninstall";
  for (const auto& f : kInstalled) EXPECT_NE(server.sh("test -e " + f).exit_code, 0) << f;
  EXPECT_TRUE(agent_named(*h.hub, "web-3").is_null()) << "still on the hub";
}

// One byte flipped in the hub's download directory: the installer stops, says why, installs nothing.
TEST_F(Installer, TamperedDownloadIsRefusedAndNothingIsInstalled) {
  InstallerHub h;
  ASSERT_TRUE(h.staged);
  {
    std::fstream f(h.downloads / "rexec-agent-linux-amd64", std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(4096);
    char c = 0;
    f.get(c);
    f.seekp(4096);
    f.put(char(c ^ 0x01));
  }
  Server server;
  ASSERT_TRUE(server.ok());
  Outcome r = server.sh(h.fetch() + "sh /tmp/rexec-install.sh --token-file - --no-start", h.hub->enroll() + "\n");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("checksum mismatch for rexec-agent-linux-amd64"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Nothing was installed"), std::string::npos) << r.output;
  EXPECT_EQ(server.added(), std::set<std::string>{});
}

// A wrong token: a clear message, a non-zero exit, nothing installed, nothing on the hub.
TEST_F(Installer, BadTokenFailsCleanly) {
  InstallerHub h;
  ASSERT_TRUE(h.staged);
  Server server;
  ASSERT_TRUE(server.ok());
  Outcome r = server.sh(h.fetch() + "REXEC_ENROLL_TOKEN=rxe_notarealtoken sh /tmp/rexec-install.sh --name nope --no-start");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("enrollment failed"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("event=link.connect_failed"), std::string::npos) << "not the hub's refusal:\n" << r.output;
  std::printf("%s", r.output.c_str());
  EXPECT_EQ(server.added(), std::set<std::string>{});
  EXPECT_TRUE(agent_named(*h.hub, "nope").is_null());
}

// Refusals before anything is downloaded: an unknown CPU, no systemd without --no-start.
TEST_F(Installer, RefusesWhatItCannotDoBeforeInstallingAnything) {
  InstallerHub h;
  ASSERT_TRUE(h.staged);
  Server server;
  ASSERT_TRUE(server.ok());
  Outcome arch = server.sh(h.fetch() + "mkdir -p /tmp/fake && printf '#!/bin/sh\\necho riscv64\\n' >/tmp/fake/uname && "
                                   "chmod +x /tmp/fake/uname && PATH=/tmp/fake:$PATH sh /tmp/rexec-install.sh "
                                   "--token-file - --no-start",
                       h.hub->enroll() + "\n");
  EXPECT_NE(arch.exit_code, 0);
  EXPECT_NE(arch.output.find("this machine is riscv64"), std::string::npos) << arch.output;
  Outcome nosystemd = server.sh("sh /tmp/rexec-install.sh --token-file -", h.hub->enroll() + "\n");
  EXPECT_NE(nosystemd.exit_code, 0);
  EXPECT_NE(nosystemd.output.find("systemd is not running here"), std::string::npos) << nosystemd.output;
  EXPECT_NE(nosystemd.output.find("--no-start"), std::string::npos) << nosystemd.output;
  Outcome argv = server.sh("sh /tmp/rexec-install.sh --token rxe_x");
  EXPECT_NE(argv.exit_code, 0);
  EXPECT_NE(argv.output.find("not taken on the command line"), std::string::npos) << argv.output;
  EXPECT_EQ(server.added(), std::set<std::string>{});
}

}  // namespace
}  // namespace rx::test
