// installers/install-agent.sh as a new user runs it: served by a live hub (its URL filled in,
// its downloads dir staged by scripts/stage-downloads.sh from the static-agent build), run in a
// fresh Debian 12 container (rexec/debian-curl:12, `make images`) that shares the host's network
// namespace to reach the hub on loopback.
//
// In that image systemd is not PID 1, so these tests run the installer with --no-start (it still
// downloads, verifies, enrolls and installs everything, unit included) and then start the agent
// as the unit would: the ExecStart= line of the unit the installer wrote, run inside
// the container. `docker diff` (every file added or changed against the image) is the list of
// what the installer left on the machine.
//
// Installer.UnderRealSystemd... runs the same installer without --no-start in a container of
// rexec/debian-systemd:12 (scripts/build-images.sh) with systemd as PID 1: the installer itself
// installs, enables and starts the shipped unit, and its second run (and a systemctl restart)
// upgrade the agent while a shell prints, which must keep the shell and every line.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/container_support.h"
#include "tests/integration/relay_support.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kImage = "rexec/debian-curl:12";
constexpr const char* kSystemdImage = "rexec/debian-systemd:12";
const std::string kInstalled[] = {"/usr/local/bin/rexec-agent", "/etc/rexec/agent.conf",
                                  "/var/lib/rexec-agent/credential", "/etc/systemd/system/rexec-agent.service"};

struct Outcome {
  int exit_code = -1;
  std::string output;
};

// A fresh "server": a container on the host's network, removed at the end.
class Server {
 public:
  enum class Init { kNone, kSystemd };
  explicit Server(Init init = Init::kNone) {
    name_ = "rexec-installer-" + std::to_string(::getpid()) + "-" + std::to_string(serial_++);
    if (init == Init::kNone) {
      // --init: a PID 1 that reaps, as systemd would, so a stopped agent does not linger as a zombie.
      ok_ = docker({"run", "-d", "--rm", "--init", "--network", "host", "--name", name_, kImage, "sleep", "infinity"})
                .has_value();
      return;
    }
    // systemd as PID 1, as upgrade_test's SystemdUnit runs it here: it needs to mount (SYS_ADMIN,
    // no seccomp/apparmor filter), its own /run, and a view of the cgroup tree. Nothing of the
    // agent is mounted in: the installer must bring the binary and the unit from the hub.
    ok_ = docker({"run", "-d", "--rm", "--name", name_, "--hostname", name_, "--network", "host", "--cap-add",
                  "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                  "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp", "-v",
                  "/sys/fs/cgroup:/sys/fs/cgroup:ro", kSystemdImage, "/lib/systemd/systemd"})
              .has_value();
    // Until systemd is PID 1 in there, systemctl just says it is not: ask again, bounded.
    ok_ = ok_ && eventually([&] {
            auto state = sh("systemctl is-system-running --wait || true").output;
            return state.starts_with("running") || state.starts_with("degraded");
          }, 60s);
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
      std::error_code ec;
      // Processes come and go while /proc is listed: an entry gone mid-walk ends this sample early.
      for (auto it = fs::directory_iterator("/proc", fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::directory_iterator(); it.increment(ec)) {
        const auto& e = *it;
        std::string n = e.path().filename();
        if (n.empty() || !std::isdigit(static_cast<unsigned char>(n[0]))) continue;
        // read(2), not an ifstream: a process that exits mid-read makes read fail with ESRCH, and
        // libstdc++'s filebuf throws on that from inside istreambuf_iterator (seen under ASan).
        std::string argv;
        if (int fd = ::open((e.path() / "cmdline").c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
          char buf[4096];
          for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) argv.append(buf, size_t(n));
          ::close(fd);
        }
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

// A newer agent build staged into the hub's downloads (the same binary with bytes appended): what
// a second installer run then installs as an upgrade.
void stage_newer_build(InstallerHub& h, const std::string& tag) {
  TempDir build("rexec-newbuild");
  fs::create_directories(build / "static-agent/agent");
  fs::copy_file(static_agent_path(), build / "static-agent/agent/rexec-agent");
  std::ofstream(build / "static-agent/agent/rexec-agent", std::ios::app) << "\n# a newer build: " << tag << "\n";
  TempDir log("rexec-restage");
  Process p({"/bin/bash", std::string(REXEC_SOURCE_DIR) + "/scripts/stage-downloads.sh", h.downloads.path(),
             build.path()},
            child_env(), log / "out");
  auto st = p.wait(60s);
  ASSERT_TRUE(st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << p.log();
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// How many numbered lines the upgrade tests print: one every 20 ms plus a fork, about 10 s, so
// the upgrade (a download and a restart, or a restart) lands in the middle of them.
constexpr int kLines = 400;

// A shell printing lines 1..kLines while its agent is upgraded, watched by a viewer that stays and
// one that leaves at line 20 and comes back with ?since= afterwards (as upgrade_test does). The
// loop also writes its position to /tmp/rexec-at, so the test can see the upgrade was done
// while it was still printing.
struct PrintingShell {
  Viewer stays;
  Viewer leaves;
  std::string pid;
  // Where this round's output starts at each viewer: a viewer attached without ?since= first gets
  // the terminal's history, earlier rounds' BEGIN..END included, which must not count.
  size_t stays_mark = 0, leaves_mark = 0;

  static bool saw_after(const Viewer& v, size_t mark, const std::string& text) {
    return v.output.find(text, mark) != std::string::npos;
  }
  void start(HubFixture& hub, const std::string& terminal) {
    ASSERT_TRUE(stays.attach(hub, terminal));
    pid = ask_pid(stays);
    ASSERT_FALSE(pid.empty());
    ASSERT_TRUE(leaves.attach(hub, terminal));
    // The history is in once this viewer sees live output typed after it attached: a marker the
    // shell prints (written S''YNC so the echoed command line does not match it). Counting earlier
    // answers instead was flaky under ASan: the two viewers' replays need not start at one byte.
    std::string marker = "SYNC-" + std::to_string(std::random_device{}()) + "-" + pid;
    stays.type("echo S''" + marker.substr(1) + "\n");
    ASSERT_TRUE(leaves.until([&](const Viewer& v) { return v.output.find(marker + "\r\n") != std::string::npos; }, 20s))
        << leaves.output;
    ASSERT_TRUE(stays.until([&](const Viewer& v) { return v.output.find(marker + "\r\n") != std::string::npos; }, 20s))
        << stays.output;
    stays_mark = stays.output.size();
    leaves_mark = leaves.output.size();
    stays.type("echo B''EGIN; for i in $(seq 1 " + std::to_string(kLines) +
               "); do echo $i; echo $i >/tmp/rexec-at; sleep 0.02; done; echo E''ND\n");
    ASSERT_TRUE(leaves.until([&](const Viewer& v) { return saw_after(v, leaves_mark, "\r\n20\r\n"); }, 20s))
        << leaves.output.substr(leaves_mark);
    leaves.ws.close();
  }
  // After the upgrade: the same shell, and every line exactly once, in order, at both viewers.
  void check(HubFixture& hub, const std::string& terminal, const std::string& what, const std::string& journal) {
    ASSERT_TRUE(stays.until([&](const Viewer& v) { return saw_after(v, stays_mark, kEnd); }, 60s))
        << what << "\n" << stays.output.substr(stays_mark) << journal;
    Viewer back;
    ASSERT_TRUE(back.attach(hub, terminal, leaves.next_offset));
    ASSERT_TRUE(back.until([](const Viewer& v) { return v.saw(kEnd); }, 20s)) << what << "\n" << back.output;
    EXPECT_EQ(back.duplicates, 0u) << what;
    EXPECT_EQ(back.gaps, 0u) << what;
    EXPECT_EQ(back.event("gap"), std::nullopt) << what << ": the hub lost output across the upgrade";
    std::string resumed = leaves.output.substr(leaves_mark) + back.output;
    expect_every_line_once(resumed, kLines);
    EXPECT_EQ(stays.duplicates, 0u) << what;
    EXPECT_EQ(stays.gaps, 0u) << what;
    expect_every_line_once(stays.output.substr(stays_mark), kLines);
    std::string after = ask_pid(stays);
    EXPECT_EQ(after, pid) << what << ": not the same shell afterwards";
    std::printf("%s: shell pid %s before, %s after; the viewer that left at line 20 resumed at offset %llu; "
                "both viewers: lines 1..%d once each, in order\n",
                what.c_str(), pid.c_str(), after.c_str(), static_cast<unsigned long long>(leaves.next_offset), kLines);
  }
};

// The one-line install as the README gives it, under a real systemd: the installer enables and
// starts the shipped unit, its second run upgrades the running agent (a restart through systemd's
// fd store) and a shell survives that, as it survives systemctl restart; --uninstall undoes it all.
TEST_F(Installer, UnderRealSystemdStartsTheUnitAndAnUpgradeKeepsTheShell) {
  if (!docker({"image", "inspect", kSystemdImage})) {
    if (std::getenv("REXEC_REQUIRE_DOCKER")) FAIL() << kSystemdImage << " is missing (scripts/build-images.sh builds it)";
    GTEST_SKIP() << kSystemdImage << " is missing (scripts/build-images.sh builds it)";
  }
  InstallerHub h;
  ASSERT_TRUE(h.staged);
  Server server(Server::Init::kSystemd);
  ASSERT_TRUE(server.ok()) << "systemd did not come up as PID 1 in " << kSystemdImage;
  auto journal = [&] { return server.sh("journalctl -u rexec-agent.service --no-pager -o cat").output; };
  auto main_pid = [&] { return trimmed(server.sh("systemctl show -p MainPID --value rexec-agent").output); };

  // 1. Install and start: the installer returns once the unit is up and the agent connected.
  const std::string install = h.fetch() + "sh /tmp/rexec-install.sh --token-file - --name sd-web --label env=test "
                                          "--label rack=c1";
  Outcome first = server.sh(install, h.hub->enroll() + "\n");
  ASSERT_EQ(first.exit_code, 0) << first.output << journal();
  std::printf("first run:\n%s", first.output.c_str());
  EXPECT_NE(first.output.find("checksum verified"), std::string::npos) << first.output;
  EXPECT_NE(first.output.find("enrolled as sd-web"), std::string::npos) << first.output;
  EXPECT_NE(first.output.find("connected as sd-web"), std::string::npos) << first.output;
  EXPECT_EQ(server.sh("systemctl is-active rexec-agent").output, "active\n");
  EXPECT_EQ(server.sh("systemctl is-enabled rexec-agent").output, "enabled\n");
  // The unit systemd runs is the shipped one, as the installer wrote it.
  EXPECT_EQ(trimmed(server.sh("systemctl show -p FragmentPath --value rexec-agent").output),
            "/etc/systemd/system/rexec-agent.service");
  EXPECT_EQ(server.sh("cat /etc/systemd/system/rexec-agent.service").output,
            read_file(std::string(REXEC_SOURCE_DIR) + "/systemd/rexec-agent.service"));
  // Type=notify: `systemctl start` returned after READY=1, so the hub has it online already.
  json agent = agent_named(*h.hub, "sd-web");
  ASSERT_FALSE(agent.is_null()) << h.hub->api("GET", "/api/v1/agents").body;
  EXPECT_TRUE(agent["online"].get<bool>()) << agent.dump();
  EXPECT_EQ(agent["labels"], (json{{"env", "test"}, {"rack", "c1"}})) << agent.dump();

  // 2. An upgrade by the installer's second run, while a shell prints.
  std::string terminal = create_terminal(*h.hub, "sd-web");
  ASSERT_FALSE(terminal.empty());
  {
    PrintingShell shell;
    shell.start(*h.hub, terminal);
    if (HasFatalFailure()) return;
    stage_newer_build(h, "upgrade 1");
    if (HasFatalFailure()) return;
    std::string old_pid = main_pid();
    Outcome second = server.sh(h.fetch() + "sh /tmp/rexec-install.sh");
    ASSERT_EQ(second.exit_code, 0) << second.output << journal();
    std::printf("second run:\n%s", second.output.c_str());
    EXPECT_NE(second.output.find("keeping the credential"), std::string::npos) << second.output;
    EXPECT_NE(second.output.find("connected as sd-web"), std::string::npos) << second.output;
    int at = std::atoi(server.sh("cat /tmp/rexec-at").output.c_str());
    EXPECT_LT(at, kLines) << "the shell had finished printing before the upgrade was done: it proves nothing";
    EXPECT_NE(main_pid(), old_pid) << "the second run did not restart the agent";
    // The new process runs the new file (not a deleted inode: the old binary).
    EXPECT_EQ(trimmed(server.sh("readlink /proc/$(systemctl show -p MainPID --value rexec-agent)/exe").output),
              "/usr/local/bin/rexec-agent");
    EXPECT_TRUE(eventually([&] {
      return journal().find("event=agent.resumed from=\"systemd fd store\" channels=1") != std::string::npos;
    }, 20s)) << journal();
    shell.check(*h.hub, terminal, "installer re-run (line " + std::to_string(at) + " when it returned)", journal());
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(agent_named(*h.hub, "sd-web")["labels"], (json{{"env", "test"}, {"rack", "c1"}}))
      << "the upgrade lost the labels";

  // 3. And systemctl restart, the same way, in the same shell.
  {
    PrintingShell shell;
    shell.start(*h.hub, terminal);
    if (HasFatalFailure()) return;
    std::string old_pid = main_pid();
    ASSERT_EQ(server.sh("systemctl restart rexec-agent").exit_code, 0) << journal();
    int at = std::atoi(server.sh("cat /tmp/rexec-at").output.c_str());
    EXPECT_LT(at, kLines) << "the shell had finished printing before the restart was done";
    EXPECT_NE(main_pid(), old_pid);
    // The second handover through the store, as the first.
    EXPECT_TRUE(eventually([&] {
      std::string j = journal(), resumed = "event=agent.resumed from=\"systemd fd store\" channels=1";
      auto p = j.find(resumed);
      return p != std::string::npos && j.find(resumed, p + 1) != std::string::npos;
    }, 20s)) << journal();
    shell.check(*h.hub, terminal, "systemctl restart (line " + std::to_string(at) + " when it returned)", journal());
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(trimmed(server.sh("systemctl show -p NFileDescriptorStore --value rexec-agent").output), "0")
      << "the agent left its descriptors in systemd's store";

  // 4. --uninstall: stopped, disabled, every file gone (the shell with it), gone from the hub.
  Viewer v;
  ASSERT_TRUE(v.attach(*h.hub, terminal));
  std::string shell_pid = ask_pid(v);
  ASSERT_FALSE(shell_pid.empty());
  Outcome gone = server.sh("sh /tmp/rexec-install.sh --uninstall");
  ASSERT_EQ(gone.exit_code, 0) << gone.output << journal();
  std::printf("uninstall:\n%s", gone.output.c_str());
  EXPECT_EQ(server.sh("systemctl is-active rexec-agent").output, "inactive\n");
  Outcome enabled = server.sh("systemctl is-enabled rexec-agent 2>&1");
  EXPECT_NE(enabled.exit_code, 0) << enabled.output;
  EXPECT_EQ(enabled.output.find("enabled\n"), std::string::npos) << enabled.output;
  for (const auto& f : kInstalled) EXPECT_NE(server.sh("test -e " + f).exit_code, 0) << f << " left behind";
  for (const char* f : {"/etc/systemd/system/multi-user.target.wants/rexec-agent.service", "/etc/rexec",
                        "/var/lib/rexec-agent", "/usr/local/bin/rexec-agent.new"})
    EXPECT_NE(server.sh(std::string("test -e ") + f + " || test -L " + f).exit_code, 0) << f << " left behind";
  EXPECT_EQ(server.sh("pgrep -x rexec-agent").exit_code, 1) << "an agent still runs";
  EXPECT_TRUE(eventually([&] { return server.sh("kill -0 " + shell_pid).exit_code != 0; }, 10s))
      << "the shell outlived the uninstall";
  EXPECT_TRUE(agent_named(*h.hub, "sd-web").is_null()) << "still on the hub";
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
