// Upgrades keep every shell (issue #14): a terminal prints numbered lines while its agent is
// replaced, and afterwards it is the same shell (same PID), the attached viewer and a viewer that
// resumes by offset (?since=) each have every line exactly once, in order. Both roads of
// agent/handover.h, with a real hub, real agents and real shells on real PTYs:
//   - re-exec (SIGHUP): the binary at the agent's path is replaced first, as an installer does,
//     and the new file is what runs afterwards;
//   - systemd's fd store (SIGTERM, then a new process): systemd cannot be PID 1 in this container,
//     so the test plays its part exactly as systemd does it: a $NOTIFY_SOCKET that takes
//     FDSTORE=1/FDNAME= descriptors, removes them on FDSTOREREMOVE=1 and answers BARRIER=1, then
//     starts the next agent with them at fd 3.. and LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES; and, as
//     the unit's subreaper, it inherits and reaps the orphaned shell, whose exit code the new
//     agent still reports.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tests/integration/container_support.h"
#include "tests/integration/relay_support.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr int kLines = 100;

// Lines 1..kLines, one every 50 ms (about 5 s): the upgrade lands in the middle.
void print_slowly(Viewer& v) {
  v.type("echo B''EGIN; i=1; while [ $i -le " + std::to_string(kLines) +
         " ]; do echo $i; i=$((i+1)); sleep 0.05; done; echo E''ND\n");
}

// The agents here are plain Processes (not AgentProcess): their logs are checked the same way.
void expect_no_sanitizer_report(const std::string& log) {
  for (const char* needle : {"ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"})
    EXPECT_EQ(log.find(needle), std::string::npos) << "rexec-agent reported a sanitizer error:\n" << log;
}

std::string exe_of(pid_t pid) {
  char buf[4096];
  ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, size_t(n)) : "";
}

// The parts both tests share: before the upgrade, a viewer that stays and one that leaves early
// and comes back with ?since= after it.
struct Watchers {
  Viewer stays;
  Viewer leaves;
  std::string pid;
};

void before_upgrade(HubFixture& hub, const std::string& terminal, Watchers& w) {
  ASSERT_TRUE(w.stays.attach(hub, terminal));
  w.pid = ask_pid(w.stays);
  ASSERT_FALSE(w.pid.empty());
  ASSERT_TRUE(w.leaves.attach(hub, terminal));
  print_slowly(w.stays);
  ASSERT_TRUE(w.leaves.until([](const Viewer& v) { return v.saw("\r\n20\r\n"); }, 20s)) << w.leaves.output;
  w.leaves.ws.close();
}

void after_upgrade(HubFixture& hub, const std::string& terminal, Watchers& w, const std::string& agent_log) {
  ASSERT_TRUE(w.stays.until([](const Viewer& v) { return v.saw(kEnd); }, 60s)) << w.stays.output << agent_log;
  Viewer back;
  ASSERT_TRUE(back.attach(hub, terminal, w.leaves.next_offset));
  ASSERT_TRUE(back.until([](const Viewer& v) { return v.saw(kEnd); }, 20s)) << back.output;
  EXPECT_EQ(back.duplicates, 0u);
  EXPECT_EQ(back.gaps, 0u);
  EXPECT_EQ(back.event("gap"), std::nullopt) << "the hub lost output across the upgrade";
  expect_every_line_once(w.leaves.output + back.output, kLines);
  EXPECT_EQ(w.stays.duplicates, 0u);
  EXPECT_EQ(w.stays.gaps, 0u);
  expect_every_line_once(w.stays.output, kLines);
  EXPECT_EQ(ask_pid(w.stays), w.pid) << "not the same shell after the upgrade";
}

TEST(Upgrade, ReexecOfTheReplacedBinaryKeepsTheShellAndEveryLine) {
  HubFixture hub;
  TempDir dir("rexec-upgrade");
  // The agent runs from its own copy, so the test can replace the file as an installer does.
  std::string path = dir / "rexec-agent";
  fs::copy_file(binary("agent/rexec-agent"), path);
  Process agent({path, "--hub", "ws://127.0.0.1:" + std::to_string(hub.port()), "--enroll-token-file", "-",
                 "--credential-file", dir / "credential", "--name", "inplace", "--shell", "/bin/sh"},
                child_env(), dir / "agent.log", hub.enroll() + "\n");
  ASSERT_TRUE(wait_online(hub, "inplace", 10s)) << agent.log();
  auto id = create_terminal(hub, "inplace");
  ASSERT_FALSE(id.empty());
  Watchers w;
  before_upgrade(hub, id, w);
  if (HasFatalFailure()) return;

  // The "new version": a fresh file renamed over the old one (the old inode lives on, deleted).
  fs::copy_file(binary("agent/rexec-agent"), dir / "rexec-agent.new");
  fs::rename(dir / "rexec-agent.new", path);
  ASSERT_TRUE(exe_of(agent.pid()).ends_with(" (deleted)")) << exe_of(agent.pid());
  agent.signal(SIGHUP);
  ASSERT_TRUE(agent.wait_for_log("event=agent.resumed", 20s)) << agent.log();
  EXPECT_EQ(exe_of(agent.pid()), path) << "the agent did not re-execute the binary at its path";
  EXPECT_TRUE(agent.running());

  after_upgrade(hub, id, w, agent.log());
  EXPECT_NE(agent.log().find("from=re-exec"), std::string::npos) << agent.log();
  agent.signal(SIGINT);  // not under systemd: a plain stop, which hangs the shell up
  EXPECT_TRUE(agent.wait(10s).has_value());
  EXPECT_TRUE(eventually([&] { return ::kill(std::stoi(w.pid), 0) != 0; }, 5s)) << "the shell outlived a real stop";
  expect_no_sanitizer_report(agent.log());
}

// systemd's side of the notify protocol, with descriptors: what a unit's fd store does.
class FdStore {
 public:
  explicit FdStore(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    // Read all the time, as systemd does: a full datagram queue would block the agent's sends.
    thread_ = std::thread([this] { pump(); });
  }
  ~FdStore() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
    for (auto& [name, fd] : store_) ::close(fd);
  }
  // The stored descriptors, taken out to pass to the next process (the store keeps its copies).
  std::vector<std::pair<std::string, int>> entries() {
    std::lock_guard lock(mu_);
    std::vector<std::pair<std::string, int>> out;
    for (const auto& [name, fd] : store_) out.emplace_back(name, fd);
    return out;
  }
  bool saw(const std::string& text) {
    std::lock_guard lock(mu_);
    for (const auto& m : messages_)
      if (m.find(text) != std::string::npos) return true;
    return false;
  }
  int barriers() {
    std::lock_guard lock(mu_);
    return barriers_;
  }

 private:
  void pump() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      char control[CMSG_SPACE(sizeof(int) * 16)];
      iovec iov{buf, sizeof(buf)};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      ssize_t n = ::recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC);
      if (n < 0) continue;
      std::vector<int> fds;
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
          for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            fds.push_back(fd);
          }
      std::string text(buf, size_t(n));
      std::string name;
      if (auto p = text.find("FDNAME="); p != std::string::npos) name = text.substr(p + 7, text.find('\n', p) - p - 7);
      std::lock_guard lock(mu_);
      messages_.push_back(text);
      if (text.starts_with("FDSTORE=1") && fds.size() == 1 && !name.empty()) {
        store_.emplace(name, fds[0]);
        continue;
      }
      if (text.starts_with("FDSTOREREMOVE=1"))
        for (auto it = store_.find(name); it != store_.end(); it = store_.find(name)) {
          ::close(it->second);
          store_.erase(it);
        }
      if (text.starts_with("BARRIER=1")) ++barriers_;
      for (int fd : fds) ::close(fd);  // (closing BARRIER=1's pipe is the answer)
    }
  }
  int fd_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> messages_;
  std::multimap<std::string, int> store_;
  int barriers_ = 0;
};

// systemd starting the unit's next process: the stored fds at 3.., LISTEN_* naming them.
class ServiceProcess {
 public:
  ServiceProcess(std::vector<std::string> argv, std::map<std::string, std::string> env, const std::string& log,
                 const std::vector<std::pair<std::string, int>>& fds) {
    std::string names;
    for (const auto& [name, fd] : fds) names += (names.empty() ? "" : ":") + name;
    env["LISTEN_FDS"] = std::to_string(fds.size());
    env["LISTEN_FDNAMES"] = names;
    std::vector<std::string> strings;
    for (const auto& [k, v] : env) strings.push_back(k + "=" + v);
    strings.push_back("LISTEN_PID=0000000000");  // the child writes its own pid in
    std::vector<char*> cargv, cenv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    for (auto& e : strings) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    char* listen_pid = cenv[cenv.size() - 2];
    int logfd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    pid_ = ::fork();
    if (pid_ == 0) {
      std::vector<int> high;  // out of the way of 3.. first, then into place
      for (const auto& [name, fd] : fds) high.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 100));
      for (size_t i = 0; i < high.size(); ++i) ::dup2(high[i], int(3 + i));  // dup2: no close-on-exec
      ::dup2(logfd, 1);
      ::dup2(logfd, 2);
      int devnull = ::open("/dev/null", O_RDONLY);
      ::dup2(devnull, 0);
      ::setpgid(0, 0);
      std::snprintf(listen_pid, 22, "LISTEN_PID=%d", int(::getpid()));
      ::execve(cargv[0], cargv.data(), cenv.data());
      ::_exit(127);
    }
    ::close(logfd);
  }
  ~ServiceProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

TEST(Upgrade, SystemdFdStoreRestartKeepsTheShellAndEveryLine) {
  // The unit's subreaper, as systemd is: the shells the old agent leaves behind become ours.
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  HubFixture hub;
  TempDir dir("rexec-fdstore");
  FdStore store(dir / "notify");
  auto env = child_env();
  env["NOTIFY_SOCKET"] = dir / "notify";
  std::vector<std::string> argv{binary("agent/rexec-agent"), "--hub", "ws://127.0.0.1:" + std::to_string(hub.port()),
                                "--enroll-token-file", "-", "--credential-file", dir / "credential", "--name", "unit",
                                "--shell", "/bin/sh"};
  Process agent(argv, env, dir / "agent-0.log", hub.enroll() + "\n");
  ASSERT_TRUE(wait_online(hub, "unit", 10s)) << agent.log();
  ASSERT_TRUE(eventually([&] { return store.saw("READY=1"); }, 5s));
  auto id = create_terminal(hub, "unit");
  ASSERT_FALSE(id.empty());
  Watchers w;
  before_upgrade(hub, id, w);
  if (HasFatalFailure()) return;

  // systemctl restart: SIGTERM to the main process (KillMode=process), wait for it to exit.
  agent.signal(SIGTERM);
  auto status = agent.wait(20s);
  ASSERT_TRUE(status.has_value()) << agent.log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << agent.log();
  EXPECT_EQ(store.barriers(), 1) << "the agent did not wait for the store to take its descriptors";
  auto stored = store.entries();
  std::set<std::string> names;
  for (const auto& [name, fd] : stored) names.insert(name);
  EXPECT_EQ(names.count("rexec.state"), 1u);
  ASSERT_EQ(names.size(), 3u) << "want the state, the terminal's master and its pidfd: " << agent.log();
  EXPECT_EQ(::kill(std::stoi(w.pid), 0), 0) << "the shell died with its agent";

  ServiceProcess next(argv, env, dir / "agent-1.log", stored);
  auto next_log = [&] { return read_file(dir / "agent-1.log"); };
  ASSERT_TRUE(eventually([&] { return next_log().find("event=agent.resumed") != std::string::npos; }, 20s)) << next_log();
  EXPECT_NE(next_log().find("from=\"systemd fd store\""), std::string::npos) << next_log();
  // The new agent takes its descriptors out of the store (FDSTOREREMOVE=1).
  EXPECT_TRUE(eventually([&] { return store.entries().empty(); }, 10s)) << "descriptors left in the fd store";
  after_upgrade(hub, id, w, next_log());
  if (HasFatalFailure()) return;

  // The shell is no longer the agent's child but ours (the subreaper's); its exit code still
  // reaches the viewer: the kernel keeps it on the pidfd once we have reaped it (Linux >= 6.15).
  pid_t shell = std::stoi(w.pid);
  w.stays.type("exit 7\n");
  int st = 0;
  ASSERT_TRUE(eventually([&] { return ::waitpid(shell, &st, WNOHANG) == shell; }, 10s)) << "the shell did not exit";
  ASSERT_TRUE(w.stays.until([](const Viewer& v) { return v.event("exit").has_value(); }, 20s)) << next_log();
  EXPECT_EQ((*w.stays.event("exit"))["code"], 7) << next_log();
  expect_no_sanitizer_report(agent.log() + next_log());
}

// The same under a real systemd (252, Debian 12's): PID 1 of a Docker container of the image
// scripts/build-images.sh makes, sharing the host's network so the agent reaches the test's hub on
// loopback. systemctl restart goes through the fd store, systemctl reload (ExecReload=kill -HUP)
// re-executes in place, systemctl stop hangs the shells up.
class SystemdUnit {
 public:
  SystemdUnit(const std::string& image, TempDir& dir, int hub_port, const std::string& enroll_token)
      : name_("rexec-upgrade-test-" + std::to_string(::getpid())) {
    fs::create_directories(dir / "etc");
    write(dir / "etc/enroll-token", enroll_token + "\n");
    write(dir / "rexec-agent.service",
          "[Service]\nType=notify\nNotifyAccess=main\n"
          "ExecStart=/usr/local/bin/rexec-agent --hub ws://127.0.0.1:" + std::to_string(hub_port) +
              " --enroll-token-file /etc/rexec/enroll-token --credential-file /var/lib/rexec-agent/credential"
              " --name sdbox --shell /bin/bash\n"
          "ExecReload=/bin/kill -HUP $MAINPID\nRestart=always\nRestartSec=1\nKillMode=process\n"
          "FileDescriptorStoreMax=64\nStateDirectory=rexec-agent\nWatchdogSec=30\n");
    (void)docker({"rm", "-f", name_});
    started_ = docker({"run", "-d", "--name", name_, "--hostname", "sdbox", "--network", "host", "--cap-add", "SYS_ADMIN",
                       "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined", "--tmpfs", "/run",
                       "--tmpfs", "/run/lock", "--tmpfs", "/tmp", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro", "-v",
                       static_agent_path() + ":/usr/local/bin/rexec-agent:ro", "-v",
                       dir / "rexec-agent.service" + ":/etc/systemd/system/rexec-agent.service:ro", "-v",
                       dir / "etc" + ":/etc/rexec:ro", image, "/lib/systemd/systemd"})
                   .has_value();
  }
  ~SystemdUnit() {
    if (!std::getenv("REXEC_KEEP_CONTAINER")) (void)docker({"rm", "-f", name_});
  }
  bool started() const { return started_; }
  // A command in the container; its output, or nullopt when it failed.
  std::optional<std::string> sh(const std::string& script) { return docker({"exec", name_, "sh", "-c", script}); }
  std::string show(const std::string& property) {
    auto v = sh("systemctl show -p " + property + " --value rexec-agent");
    std::string out = v.value_or("");
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }
  std::string journal() { return sh("journalctl -u rexec-agent --no-pager -o cat").value_or(""); }

 private:
  static void write(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
    fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
  }
  std::string name_;
  bool started_ = false;
};

TEST(Upgrade, RealSystemdRestartReloadAndStop) {
  REXEC_REQUIRE_DOCKER_OR_SKIP();
  const char* env_image = std::getenv("REXEC_SYSTEMD_IMAGE");
  std::string image = env_image ? env_image : "rexec/debian-systemd:12";
  if (!docker({"image", "inspect", image})) {
    if (std::getenv("REXEC_REQUIRE_DOCKER")) FAIL() << image << " is missing (scripts/build-images.sh builds it)";
    GTEST_SKIP() << image << " is missing (scripts/build-images.sh builds it)";
  }
  HubFixture hub;
  TempDir dir("rexec-sdunit");
  SystemdUnit unit(image, dir, hub.port(), hub.enroll());
  ASSERT_TRUE(unit.started()) << "docker run of " << image << " with systemd as PID 1 failed";
  // (Until systemd is PID 1 in there, systemctl just says it is not.)
  ASSERT_TRUE(eventually([&] {
    auto state = unit.sh("systemctl is-system-running --wait || true").value_or("");
    return state.starts_with("running") || state.starts_with("degraded");
  }, 30s)) << "systemd did not come up in the container";
  ASSERT_TRUE(unit.sh("systemctl start rexec-agent").has_value())
      << unit.sh("systemctl status rexec-agent --no-pager || true").value_or("") << unit.journal();
  ASSERT_TRUE(wait_online(hub, "sdbox", 30s)) << unit.journal();
  auto id = create_terminal(hub, "sdbox");
  ASSERT_FALSE(id.empty());

  // systemctl restart: a new agent process, the terminal through the fd store.
  Watchers w;
  before_upgrade(hub, id, w);
  if (HasFatalFailure()) return;
  std::string first = unit.show("MainPID");
  ASSERT_TRUE(unit.sh("systemctl restart rexec-agent").has_value()) << unit.journal();
  EXPECT_TRUE(eventually([&] { return unit.journal().find("event=agent.resumed from=\"systemd fd store\" channels=1") !=
                                      std::string::npos; }, 20s)) << unit.journal();
  EXPECT_NE(unit.show("MainPID"), first) << "systemctl restart did not start a new process";
  after_upgrade(hub, id, w, unit.journal());
  if (HasFatalFailure()) return;
  EXPECT_NE(unit.journal().find("event=agent.handed_over channels=1 confirmed=yes"), std::string::npos) << unit.journal();
  EXPECT_EQ(unit.show("NFileDescriptorStore"), "0") << "the new agent left its descriptors in systemd's store";

  // systemctl reload: the same process re-executes, the same shell goes on.
  std::string second = unit.show("MainPID");
  ASSERT_TRUE(unit.sh("systemctl reload rexec-agent").has_value()) << unit.journal();
  EXPECT_TRUE(eventually([&] { return unit.journal().find("event=agent.resumed from=re-exec channels=1") != std::string::npos; }, 20s))
      << unit.journal();
  EXPECT_EQ(unit.show("MainPID"), second);
  EXPECT_EQ(ask_pid(w.stays), w.pid);

  // The shell's parent is systemd now, which reaps it; its exit code still reaches the viewer.
  w.stays.type("exit 7\n");
  ASSERT_TRUE(w.stays.until([](const Viewer& v) { return v.event("exit").has_value(); }, 20s)) << unit.journal();
  EXPECT_EQ((*w.stays.event("exit"))["code"], 7) << unit.journal();

  // systemctl stop ends the shells: systemd closes the store when the unit stops.
  auto id2 = create_terminal(hub, "sdbox");
  Viewer v2;
  ASSERT_TRUE(v2.attach(hub, id2));
  std::string pid2 = ask_pid(v2);
  ASSERT_FALSE(pid2.empty());
  ASSERT_TRUE(unit.sh("systemctl stop rexec-agent").has_value());
  EXPECT_TRUE(eventually([&] { return !unit.sh("kill -0 " + pid2).has_value(); }, 10s)) << "a shell outlived systemctl stop";
}

TEST(Upgrade, BadHandoverStateIsRefusedWithAReasonAndTheAgentStartsClean) {
  HubFixture hub;
  TempDir dir("rexec-badstate");
  // A predecessor's leftovers: a state that is not one, and a "terminal" (a pipe's write end) that
  // must be closed, as a real terminal's master would be (hanging its shell up), not leaked.
  int state = ::memfd_create("garbage", 0);
  ASSERT_EQ(::write(state, "not a handover", 14), 14);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ::fcntl(pipe_fds[0], F_SETFD, FD_CLOEXEC);
  auto env = child_env();
  env["REXEC_HANDOVER_FDS"] = "rexec.state=" + std::to_string(state) + ",rexec.c1.pty=" + std::to_string(pipe_fds[1]);
  Process agent({binary("agent/rexec-agent"), "--hub", "ws://127.0.0.1:" + std::to_string(hub.port()),
                 "--enroll-token-file", "-", "--credential-file", dir / "credential", "--name", "clean", "--shell", "/bin/sh"},
                env, dir / "agent.log", hub.enroll() + "\n");
  ::close(state);
  ::close(pipe_fds[1]);
  ASSERT_TRUE(wait_online(hub, "clean", 10s)) << agent.log();
  auto line = agent.wait_for_log("event=agent.handover_failed", 5s);
  ASSERT_TRUE(line.has_value()) << agent.log();
  EXPECT_NE(line->find("no RXHO magic"), std::string::npos) << *line;
  // Its terminal's descriptor was closed: the read end sees EOF.
  pollfd p{pipe_fds[0], POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  char c;
  EXPECT_EQ(::read(pipe_fds[0], &c, 1), 0);
  ::close(pipe_fds[0]);
  // And the agent works as a fresh one.
  auto id = create_terminal(hub, "clean");
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  EXPECT_FALSE(ask_pid(v).empty());
  expect_no_sanitizer_report(agent.log());
}

}  // namespace
}  // namespace rx::test
