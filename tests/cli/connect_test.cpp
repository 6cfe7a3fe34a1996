// rexec connect, driven the way a person uses it: inside a real PTY the test owns, against a real
// hub and agent. Typing reaches the shell and its answer comes back; resizing the outer PTY
// resizes the remote one; a 5 s network cut is resumed with every line shown once; ~? lists the
// escapes and ~. detaches with the outer terminal's mode as it was; the shell's exit code is
// rexec's; an unknown name and a wrong token are one clear line each.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/viewer_link.h"
#include "tests/cli/cli_support.h"
#include "tests/integration/relay_support.h"
#include "tests/support/tcp_proxy.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// A shell script running in a fresh PTY (the test holds the master): the outer terminal a
// person would have. The script records the terminal's mode before and after rexec, sends
// rexec's stderr to a file (status lines stay out of the screen's bytes), and exits with
// rexec's status.
class OuterTerminal {
 public:
  OuterTerminal(Cli& cli, const std::vector<std::string>& args, uint16_t cols, uint16_t rows) {
    std::string command = quoted(binary("cli/rexec"));
    for (const auto& a : args) command += " " + quoted(a);
    std::string script = "cd " + quoted(dir_.path()) + " && stty -g > before && " + command +
                         " 2> err; rc=$?; stty -g > after; exit $rc";
    std::map<std::string, std::string> env = cli.env();
    env["TERM"] = "xterm";
    std::vector<std::string> envs;
    for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
    std::vector<std::string> argv{"/bin/sh", "-c", script};
    std::vector<char*> a, e;
    for (auto& s : argv) a.push_back(s.data());
    for (auto& s : envs) e.push_back(s.data());
    a.push_back(nullptr);
    e.push_back(nullptr);
    winsize ws{};
    ws.ws_col = cols;
    ws.ws_row = rows;
    pid_ = ::forkpty(&master_, nullptr, nullptr, &ws);
    if (pid_ == 0) {
      ::execve(a[0], a.data(), e.data());
      ::_exit(127);
    }
    ::fcntl(master_, F_SETFL, ::fcntl(master_, F_GETFL) | O_NONBLOCK);
  }
  ~OuterTerminal() {
    if (pid_ > 0 && !status_) {
      ::kill(-pid_, SIGKILL);  // the script's whole session: sh and rexec
      ::waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) ::close(master_);
  }
  OuterTerminal(const OuterTerminal&) = delete;
  OuterTerminal& operator=(const OuterTerminal&) = delete;

  void type(const std::string& keys) { ASSERT_EQ(::write(master_, keys.data(), keys.size()), ssize_t(keys.size())); }
  // The kernel tells the foreground process group (rexec) with SIGWINCH.
  void resize(uint16_t cols, uint16_t rows) {
    winsize ws{};
    ws.ws_col = cols;
    ws.ws_row = rows;
    ASSERT_EQ(::ioctl(master_, TIOCSWINSZ, &ws), 0);
  }
  termios mode() const {
    termios t{};
    ::tcgetattr(master_, &t);  // a PTY master reports its slave's mode
    return t;
  }

  // Reads the screen's bytes until `done` holds; false at the deadline or when the PTY closes.
  bool until(const std::function<bool(const std::string&)>& done, std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (!done(output)) {
      if (Clock::now() >= deadline || !pump(50)) return done(output);
    }
    return true;
  }
  bool saw(const std::string& text) { return until([&](const std::string& o) { return o.find(text) != std::string::npos; }, 20s); }

  // The script's (= rexec's) exit status; nullopt at the deadline.
  std::optional<int> wait(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (!status_ && Clock::now() < deadline) {
      pump(20);
      int raw = 0;
      if (::waitpid(pid_, &raw, WNOHANG) == pid_) status_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
    }
    return status_;
  }

  // rexec's pid: the script's one child.
  pid_t rexec_pid() const {
    std::string children = read_file("/proc/" + std::to_string(pid_) + "/task/" + std::to_string(pid_) + "/children");
    return pid_t(std::atoi(children.c_str()));
  }
  std::string file(const std::string& name) const { return read_file(dir_ / name); }
  std::string err() const { return file("err"); }
  bool err_has(const std::string& text, std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (err().find(text) == std::string::npos) {
      if (Clock::now() >= deadline) return false;
      pump(50);
    }
    return true;
  }

  std::string output;

 private:
  bool pump(int ms) {
    pollfd p{master_, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) return true;
    char buf[65536];
    ssize_t n = ::read(master_, buf, sizeof(buf));
    if (n > 0) output.append(buf, size_t(n));
    return n > 0 || (n < 0 && errno == EAGAIN);  // EIO: every slave fd is closed
  }

  TempDir dir_{"rexec-connect"};
  int master_ = -1;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

void expect_no_sanitizer_report(const std::string& err) {
  for (const char* needle : {"ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"})
    EXPECT_EQ(err.find(needle), std::string::npos) << "rexec reported a sanitizer error:\n" << err;
}

size_t count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (auto p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1)) ++n;
  return n;
}

class ConnectTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(wait_online(hub, "conn", 10s)) << agent.log();
    json body{{"kind", "agent"}, {"agent", "conn"}, {"name", "devbox"}, {"cols", 80}, {"rows", 24}};
    auto r = hub.api("POST", "/api/v1/terminals", body.dump());
    ASSERT_EQ(r.status, 201) << r.body;
    id = json::parse(r.body)["id"];
  }
  // Attached once the shell's prompt ($ or, for root, #; replayed by the hub) is on the outer screen: by then the
  // outer terminal is raw.
  void attached(OuterTerminal& t) {
    ASSERT_TRUE(t.until([](const std::string& o) { return o.find("$ ") != std::string::npos || o.find("# ") != std::string::npos; },
                        20s))
        << "[" << t.output << "]\n" << t.err();
  }

  HubFixture hub;
  AgentProcess agent{hub, "conn", {"--shell", "/bin/sh"}};
  std::string id;
};

TEST_F(ConnectTest, TypedCommandsReachTheShellAndItsAnswerComesBack) {
  Cli cli(hub, hub.admin_token());
  OuterTerminal t(cli, {"connect", "devbox"}, 80, 24);
  attached(t);
  termios raw = t.mode();
  EXPECT_FALSE(raw.c_lflag & (ECHO | ICANON | ISIG)) << "the outer terminal is raw while connected";
  t.type("echo R''ESULT=$((6*7))\r");  // the typed line shows R''ESULT: only the answer has RESULT=
  EXPECT_TRUE(t.saw("RESULT=42\r\n")) << t.output;
  t.type("exit\r");
  EXPECT_EQ(t.wait(15s), 0) << t.output << t.err();
  expect_no_sanitizer_report(t.err());
}

TEST_F(ConnectTest, ResizingTheOuterTerminalResizesTheRemoteOne) {
  Cli cli(hub, hub.admin_token());
  OuterTerminal t(cli, {"connect", id}, 100, 30);
  attached(t);
  // The real size is sent at the start (the terminal was created 80x24)...
  auto size_is = [&](const std::string& answer) {
    size_t mark = t.output.size();
    return eventually([&] {
      t.type("echo S''Z=$(stty size)\r");
      return t.until([&](const std::string& o) { return o.find("SZ=" + answer + "\r\n", mark) != std::string::npos; }, 500ms);
    }, 10s);
  };
  EXPECT_TRUE(size_is("30 100")) << t.output;
  // ...and again on each SIGWINCH.
  t.resize(132, 43);
  EXPECT_TRUE(size_is("43 132")) << t.output;
  t.type("exit\r");
  EXPECT_EQ(t.wait(15s), 0) << t.err();
  expect_no_sanitizer_report(t.err());
}

TEST_F(ConnectTest, SurvivesAFiveSecondNetworkCutShowingEveryLineOnce) {
  TcpProxy proxy(hub.port());
  Cli cli("http://127.0.0.1:" + std::to_string(proxy.port()), hub.admin_token());
  OuterTerminal t(cli, {"connect", "devbox"}, 80, 24);
  attached(t);
  constexpr int kLines = 9;  // one a second: lines 3..7 are printed while the network is cut
  t.type("echo B''EGIN; i=1; while [ $i -le " + std::to_string(kLines) + " ]; do echo $i; sleep 1; i=$((i+1)); done; echo E''ND\r");
  ASSERT_TRUE(t.saw("\r\n2\r\n")) << t.output;
  ASSERT_EQ(t.output.find(kEnd), std::string::npos);
  proxy.cut();
  EXPECT_TRUE(t.err_has("connection lost", 5s)) << t.err();
  std::this_thread::sleep_for(5s);
  EXPECT_EQ(t.output.find(kEnd), std::string::npos) << "the cut did not cut anything";
  proxy.heal();
  ASSERT_TRUE(t.saw(kEnd)) << t.output << "\n" << t.err().substr(0, 20000);
  EXPECT_TRUE(t.err_has("reconnected", 5s)) << t.err();
  expect_every_line_once(t.output, kLines);
  EXPECT_EQ(count(t.err(), "connection lost"), 1u) << t.err();
  EXPECT_GE(proxy.connections_accepted(), 2);
  // Still the same session, and still typing into it.
  t.type("echo A''GAIN=$((1+1))\r");
  EXPECT_TRUE(t.saw("AGAIN=2\r\n")) << t.output;
  t.type("exit\r");
  EXPECT_EQ(t.wait(15s), 0) << t.err();
  expect_no_sanitizer_report(t.err());
}

TEST_F(ConnectTest, TildeQuestionListsEscapesAndTildeDotDetachesRestoringTheTerminal) {
  Cli cli(hub, hub.admin_token());
  OuterTerminal t(cli, {"connect", "devbox"}, 80, 24);
  attached(t);
  EXPECT_FALSE(t.mode().c_lflag & ECHO) << "raw while connected";
  t.type("\r~?");
  ASSERT_TRUE(t.err_has("~.", 10s)) << t.err();
  EXPECT_NE(t.err().find("detach"), std::string::npos) << t.err();
  EXPECT_NE(t.err().find("~~"), std::string::npos) << t.err();
  // ~~ at the start of a line sends one ~ to the shell.
  t.type("\r~~x; echo T''ILDE=done\r");
  ASSERT_TRUE(t.saw("TILDE=done\r\n")) << t.output;
  EXPECT_NE(t.output.find("~x; echo T''ILDE"), std::string::npos) << t.output;
  EXPECT_EQ(t.output.find("~~x"), std::string::npos) << t.output;
  t.type("\r~.");
  EXPECT_EQ(t.wait(15s), 0) << t.err();
  std::string before = t.file("before"), after = t.file("after");
  ASSERT_FALSE(before.empty());
  EXPECT_EQ(before, after) << "stty -g before and after rexec";
  EXPECT_NE(t.err().find("detached"), std::string::npos) << t.err();
  auto status = json::parse(hub.api("GET", "/api/v1/terminals/" + id).body)["status"];
  EXPECT_EQ(status, "running") << "a detach leaves the shell running";
  expect_no_sanitizer_report(t.err());
}

TEST_F(ConnectTest, SigtermPutsTheTerminalBackBeforeRexecDies) {
  Cli cli(hub, hub.admin_token());
  OuterTerminal t(cli, {"connect", "devbox"}, 80, 24);
  attached(t);
  ASSERT_FALSE(t.mode().c_lflag & ECHO);
  pid_t pid = t.rexec_pid();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  EXPECT_EQ(t.wait(15s), 128 + SIGTERM) << t.err();
  ASSERT_FALSE(t.file("before").empty());
  EXPECT_EQ(t.file("before"), t.file("after")) << "stty -g before and after a SIGTERM";
}

TEST_F(ConnectTest, ExitStatusIsTheShells) {
  Cli cli(hub, hub.admin_token());
  OuterTerminal t(cli, {"connect", "devbox"}, 80, 24);
  attached(t);
  t.type("exit 3\r");
  EXPECT_EQ(t.wait(15s), 3) << t.output << t.err();
  EXPECT_EQ(t.file("before"), t.file("after"));
  expect_no_sanitizer_report(t.err());
}

TEST_F(ConnectTest, WorksAsAPipeWithoutATerminal) {
  Cli cli(hub, hub.admin_token());
  auto r = cli.run({"connect", "devbox"}, "echo P''IPE=$((2+3))\nexit 4\n", 20s);
  EXPECT_EQ(r.status, 4) << r.out << r.err;
  EXPECT_NE(r.out.find("PIPE=5"), std::string::npos) << r.out;
  expect_no_sanitizer_report(r.err);
}

TEST_F(ConnectTest, UnknownNameAndWrongTokenAreOneClearLine) {
  Cli cli(hub, hub.admin_token());
  auto unknown = cli.run({"connect", "devbx"}, "", 20s);
  EXPECT_NE(unknown.status, 0);
  EXPECT_EQ(count(unknown.err, "\n"), 1u) << unknown.err;
  EXPECT_NE(unknown.err.find("devbox"), std::string::npos) << "close names are suggested: " << unknown.err;
  EXPECT_EQ(unknown.err.find(hub.admin_token()), std::string::npos);

  std::string wrong = "rxk_" + std::string(40, 'x');
  Cli bad(hub, wrong);
  auto refused = bad.run({"connect", "devbox"}, "", 20s);
  EXPECT_NE(refused.status, 0);
  EXPECT_EQ(count(refused.err, "\n"), 1u) << refused.err;
  EXPECT_NE(refused.err.find("401"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("login"), std::string::npos) << refused.err;
  EXPECT_EQ(refused.err.find(wrong), std::string::npos) << "the token never shows: " << refused.err;
  expect_no_sanitizer_report(unknown.err + refused.err);
}

// ViewerLink itself (connect and mcp both stand on it), on a loop of the test's own.
struct LinkRun {
  bool opened = false, closed = false, timed_out = false;
  int code = -1;
  long http_status = -1;
  std::string reason, output;
  int loop_close = -1;  // uv_loop_close after the link is gone: 0 when lws left nothing behind
};

LinkRun run_link(const std::string& hub_url, const std::string& token, const std::string& terminal_id) {
  LinkRun r;
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_timer_t deadline;
  uv_timer_init(&loop, &deadline);
  deadline.data = &r;
  uv_timer_start(&deadline, [](uv_timer_t* t) { static_cast<LinkRun*>(t->data)->timed_out = true; }, 15000, 0);
  cli::ViewerLink* link = nullptr;
  cli::ViewerLink::Handlers h;
  // The size reaches the agent on its own way: ask the shell until it answers with the new one.
  std::string keys = "echo L''INK=$(stty size)\r";
  auto type = [&] {
    EXPECT_TRUE(link->send_input(std::span(reinterpret_cast<const uint8_t*>(keys.data()), keys.size())));
  };
  size_t answers = 0;
  h.on_open = [&] {
    r.opened = true;
    EXPECT_TRUE(link->send_resize(90, 20));
    type();
  };
  h.on_output = [&](uint64_t, std::span<const uint8_t> bytes) {
    r.output.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    if (r.output.find("LINK=20 90\r\n") != std::string::npos) return link->close();  // from inside a handler
    size_t seen = 0;
    for (auto at = r.output.find("LINK="); at != std::string::npos; at = r.output.find("LINK=", at + 1))
      if (r.output.find("\r\n", at) != std::string::npos) ++seen;
    if (seen > answers && answers < 50) {
      answers = seen;
      type();
    }
  };
  // A terminal just created may not have its agent yet: the hub drops a resize until it does.
  h.on_event = [&](const json& event) {
    if (event.value("type", "") == "status" && event.value("status", "") == "running") {
      EXPECT_TRUE(link->send_resize(90, 20));
    }
  };
  h.on_closed = [&](int code, const std::string& reason, long http_status) {
    r.closed = true;
    r.code = code;
    r.reason = reason;
    r.http_status = http_status;
  };
  auto owned = std::make_unique<cli::ViewerLink>(&loop, cli::Profile{hub_url, token}, terminal_id, std::move(h));
  link = owned.get();
  link->open();
  while (!r.closed && !r.timed_out) uv_run(&loop, UV_RUN_ONCE);
  owned.reset();
  uv_close(reinterpret_cast<uv_handle_t*>(&deadline), nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);
  r.loop_close = uv_loop_close(&loop);
  return r;
}

TEST_F(ConnectTest, ViewerLinkCarriesATerminalAndReportsRefusalsWithTheirStatus) {
  std::string url = "http://127.0.0.1:" + std::to_string(hub.port());
  auto good = run_link(url, hub.admin_token(), id);
  EXPECT_TRUE(good.opened);
  EXPECT_FALSE(good.timed_out) << good.output;
  EXPECT_NE(good.output.find("LINK=20 90\r\n"), std::string::npos) << "typed, resized, answered: " << good.output;
  EXPECT_EQ(good.code, 1000) << good.reason;
  EXPECT_EQ(good.http_status, 0);
  EXPECT_EQ(good.loop_close, 0) << "lws left handles on the loop";

  auto bad_token = run_link(url, "rxk_" + std::string(40, 'y'), id);
  EXPECT_FALSE(bad_token.opened);
  EXPECT_EQ(bad_token.http_status, 401) << bad_token.reason;
  EXPECT_EQ(bad_token.loop_close, 0);

  auto unknown = run_link(url, hub.admin_token(), "no-such-terminal");
  EXPECT_FALSE(unknown.opened);
  EXPECT_EQ(unknown.http_status, 404) << unknown.reason;
  EXPECT_EQ(unknown.loop_close, 0);

  auto nobody = run_link("http://127.0.0.1:" + std::to_string(free_port()), hub.admin_token(), id);
  EXPECT_FALSE(nobody.opened);
  EXPECT_TRUE(nobody.closed);
  EXPECT_EQ(nobody.http_status, 0);
  EXPECT_EQ(nobody.code, 0);
  EXPECT_NE(nobody.reason.find("127.0.0.1"), std::string::npos) << nobody.reason;
  EXPECT_EQ(nobody.loop_close, 0);
}

}  // namespace
}  // namespace rx::test
