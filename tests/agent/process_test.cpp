// agent/process.cpp with real PTYs and real processes.
#include "agent/process.h"
#include "tests/agent/read_output.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <fcntl.h>

#include <chrono>
#include <functional>
#include <filesystem>
#include <fstream>
#include <thread>

namespace rx::agent {
namespace {

using namespace std::chrono_literals;

using test::read_until;

ExitStatus wait_exit(Child& c, std::chrono::milliseconds timeout = 5s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto s = c.try_reap()) return *s;
    pollfd p{c.pidfd(), POLLIN, 0};
    ::poll(&p, 1, 50);
  }
  ADD_FAILURE() << "child did not exit";
  return {};
}

SpawnOptions sh(const std::string& script) {
  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", script};
  return o;
}

TEST(Pty, RunsAndReadsUntilEio) {
  auto p = PtyProcess::spawn(sh("echo $((6*7))"));
  ASSERT_TRUE(p.ok()) << p.error().message;
  auto out = read_until((*p)->master(), [](const std::string&) { return false; });
  EXPECT_NE(out.find("42"), std::string::npos) << out;
  auto st = wait_exit((*p)->child());
  EXPECT_EQ(st.code, 0);
}

TEST(Pty, ExitCodesAndSignals) {
  auto p = PtyProcess::spawn(sh("exit 3"));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(wait_exit((*p)->child()).code, 3);

  auto q = PtyProcess::spawn(sh("sleep 30"));
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE((*q)->signal("TERM").ok());
  auto st = wait_exit((*q)->child());
  EXPECT_EQ(st.code, 143);
  EXPECT_EQ(st.signal, "TERM");
  EXPECT_EQ((*q)->signal("NOPE").error().code, "bad_signal");
}

TEST(Pty, ResizeChangesSttySize) {
  SpawnOptions o = sh("read x; stty size");
  o.cols = 80;
  o.rows = 24;
  auto p = PtyProcess::spawn(o);
  ASSERT_TRUE(p.ok());
  (*p)->resize(100, 40);
  std::string line = "go\n";
  ASSERT_EQ(write_some((*p)->master(), std::span(reinterpret_cast<const uint8_t*>(line.data()), line.size())), 3);
  auto out = read_until((*p)->master(), [](const std::string& s) { return s.find("40 100") != std::string::npos; });
  EXPECT_NE(out.find("40 100"), std::string::npos) << out;
}

TEST(Pty, SessionLeaderWithTheTerminalAndTerm) {
  auto p = PtyProcess::spawn(sh("echo sid=$(ps -o sid= -p $$ | tr -d ' ') pid=$$ tty=$(tty) term=$TERM"));
  ASSERT_TRUE(p.ok());
  auto out = read_until((*p)->master(), [](const std::string&) { return false; });
  pid_t pid = (*p)->child().pid();
  EXPECT_NE(out.find("sid=" + std::to_string(pid) + " pid=" + std::to_string(pid)), std::string::npos) << out;
  EXPECT_NE(out.find("tty=/dev/pts/"), std::string::npos) << out;
  EXPECT_NE(out.find("term=xterm-256color"), std::string::npos) << out;
}

TEST(Pty, ChildEnvironmentIsExactlyWhatWasGiven) {
  ::setenv("REXEC_SECRET_TEST", "do-not-leak", 1);
  SpawnOptions o = sh("env; echo END");
  o.env = {{"CUDA_VISIBLE_DEVICES", "1"}};
  auto p = PtyProcess::spawn(o);
  ::unsetenv("REXEC_SECRET_TEST");
  ASSERT_TRUE(p.ok());
  auto out = read_until((*p)->master(), [](const std::string& s) { return s.find("END") != std::string::npos; });
  EXPECT_EQ(out.find("REXEC_SECRET_TEST"), std::string::npos) << out;
  EXPECT_EQ(out.find("do-not-leak"), std::string::npos);
  EXPECT_NE(out.find("CUDA_VISIBLE_DEVICES=1"), std::string::npos) << out;
  EXPECT_NE(out.find("TERM=xterm-256color"), std::string::npos);
}

TEST(Pty, NoInheritedFileDescriptors) {
  int leak = ::open("/dev/null", O_RDONLY);  // not close-on-exec: would leak without close_range
  auto p = PtyProcess::spawn(sh("ls /proc/self/fd | tr '\\n' ' '; echo END"));
  ::close(leak);
  ASSERT_TRUE(p.ok());
  auto out = read_until((*p)->master(), [](const std::string& s) { return s.find("END") != std::string::npos; });
  // 0 1 2 and the fd ls itself opens to list the directory.
  EXPECT_EQ(out.substr(0, out.find("END")), "0 1 2 3 ") << out;
}

TEST(Pty, MissingProgramIsSpawnFailedWithTheReason) {
  SpawnOptions o;
  o.argv = {"/nonexistent/program"};
  auto p = PtyProcess::spawn(o);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code, "spawn_failed");
  EXPECT_NE(p.error().message.find("No such file"), std::string::npos) << p.error().message;
}

TEST(Pty, InputReachesTheProgram) {
  auto p = PtyProcess::spawn(sh("read line; echo got:$line"));
  ASSERT_TRUE(p.ok());
  std::string in = "hello\n";
  write_some((*p)->master(), std::span(reinterpret_cast<const uint8_t*>(in.data()), in.size()));
  auto out = read_until((*p)->master(), [](const std::string& s) { return s.find("got:hello") != std::string::npos; });
  EXPECT_NE(out.find("got:hello"), std::string::npos) << out;
}

TEST(Pty, DestructorHangsUpAndReaps) {
  pid_t pid;
  {
    auto p = PtyProcess::spawn(sh("sleep 60"));
    ASSERT_TRUE(p.ok());
    pid = (*p)->child().pid();
    EXPECT_TRUE(std::filesystem::exists("/proc/" + std::to_string(pid)));
  }
  EXPECT_FALSE(std::filesystem::exists("/proc/" + std::to_string(pid))) << "child left running or as a zombie";
}

TEST(Pty, LoginShellWhenArgvIsEmpty) {
  SpawnOptions o;
  o.shell = "/bin/sh";
  auto p = PtyProcess::spawn(o);
  ASSERT_TRUE(p.ok());
  std::string cmd = "echo $0 $((6*7)); exit 0\n";
  write_some((*p)->master(), std::span(reinterpret_cast<const uint8_t*>(cmd.data()), cmd.size()));
  auto out = read_until((*p)->master(), [](const std::string&) { return false; });
  EXPECT_NE(out.find("-sh 42"), std::string::npos) << out;
}

TEST(Exec, SeparatesStdoutAndStderrAndKeepsTheExitCode) {
  auto e = ExecProcess::spawn(sh("echo out; echo err >&2; exit 7"));
  ASSERT_TRUE(e.ok());
  (*e)->close_stdin();
  auto out = read_until((*e)->stdout_fd(), [](const std::string&) { return false; });
  auto err = read_until((*e)->stderr_fd(), [](const std::string&) { return false; });
  EXPECT_EQ(out, "out\n");
  EXPECT_EQ(err, "err\n");
  EXPECT_EQ(wait_exit((*e)->child()).code, 7);
}

TEST(Exec, ABareProgramNameIsFoundInTheChildsPath) {
  SpawnOptions o;
  o.argv = {"sh", "-c", "echo found"};  // no slash: looked up in PATH, as a shell would
  auto e = ExecProcess::spawn(o);
  ASSERT_TRUE(e.ok()) << e.error().message;
  (*e)->close_stdin();
  EXPECT_EQ(read_until((*e)->stdout_fd(), [](const std::string&) { return false; }), "found\n");
  EXPECT_EQ(wait_exit((*e)->child()).code, 0);
  o.argv = {"no-such-program-anywhere"};
  auto missing = ExecProcess::spawn(o);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, "spawn_failed");
}

TEST(Exec, StdinAndKillOfTheWholeGroup) {
  auto e = ExecProcess::spawn(sh("cat; sleep 60 & wait"));
  ASSERT_TRUE(e.ok());
  std::string in = "piped";
  write_some((*e)->stdin_fd(), std::span(reinterpret_cast<const uint8_t*>(in.data()), in.size()));
  (*e)->close_stdin();
  auto out = read_until((*e)->stdout_fd(), [](const std::string& s) { return s == "piped"; });
  EXPECT_EQ(out, "piped");
  ASSERT_TRUE((*e)->signal("KILL").ok());
  auto st = wait_exit((*e)->child());
  EXPECT_EQ(st.signal, "KILL");
  EXPECT_EQ(st.code, 137);
}

TEST(Accounts, ParsesPasswdAndGroup) {
  auto dir = std::filesystem::temp_directory_path() / ("rexec-etc-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "passwd") << "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/zsh\n";
  std::ofstream(dir / "group") << "alice:x:1000:\ndocker:x:999:bob,alice\nvideo:x:44:alice\n";
  auto a = find_account("alice", dir.string());
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->uid, 1000u);
  EXPECT_EQ(a->home, "/home/alice");
  EXPECT_EQ(a->shell, "/bin/zsh");
  EXPECT_EQ(a->groups, (std::vector<gid_t>{1000, 999, 44}));
  EXPECT_EQ(find_account("1000", dir.string())->name, "alice");
  EXPECT_EQ(find_account("mallory", dir.string()).error().code, "unknown_user");
  std::filesystem::remove_all(dir);
}

TEST(Pty, RunsAsAnotherUserWhenRoot) {
  if (::getuid() != 0) GTEST_SKIP() << "needs root to switch users";
  auto nobody = find_account("nobody");
  ASSERT_TRUE(nobody.ok());
  SpawnOptions o = sh("id -u");
  o.account = *nobody;
  auto p = PtyProcess::spawn(o);
  ASSERT_TRUE(p.ok()) << p.error().message;
  auto out = read_until((*p)->master(), [](const std::string&) { return false; });
  EXPECT_NE(out.find(std::to_string(nobody->uid)), std::string::npos) << out;
}

}  // namespace
}  // namespace rx::agent
