// rexec exec: fan-out with output streamed as it arrives, the exit-status rule and summary line,
// an offline target failing alone, --json against the API's own answer, bounded memory for a
// target printing 200 MB, Ctrl-C cancelling the runs on the hub, and (with Docker) one command
// across busybox and Debian containers and a host agent.
#include <gtest/gtest.h>
#include <dirent.h>
#include <signal.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/cli/cli_support.h"
#include "tests/integration/container_support.h"
#include "tests/integration/relay_support.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

int64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Peak resident memory (VmHWM) of a process, in KiB.
long peak_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

// Every process whose command line contains `needle`.
std::vector<pid_t> processes_with(const std::string& needle) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (auto* e = ::readdir(d)) {
    pid_t pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
    std::stringstream s;
    s << in.rdbuf();
    if (s.str().find(needle) != std::string::npos) out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

// Exits 7 on the agent named fail-b (the agent's own argv says which it is), else prints "fine".
const std::vector<std::string> kSevenOnFailB = {
    "sh", "-c", "if tr '\\0' ' ' < /proc/$PPID/cmdline | grep -q fail-b; then echo bad; echo oops >&2; exit 7; fi; echo fine"};

TEST(CliExec, ExitStatusSummaryAndAnOfflineTargetFollowTheRule) {
  HubFixture hub;
  AgentProcess a(hub, "ok-a"), b(hub, "fail-b");
  {
    AgentProcess c(hub, "gone-c");
    ASSERT_TRUE(wait_online(hub, "gone-c", 10s));
  }  // killed: gone-c is offline from here on
  ASSERT_TRUE(wait_online(hub, "ok-a", 10s));
  ASSERT_TRUE(wait_online(hub, "fail-b", 10s));
  ASSERT_TRUE(eventually([&] { return hub.api("GET", "/api/v1/agents").body.find("\"online\":false") != std::string::npos; }, 10s));
  Cli cli(hub, hub.admin_token());

  std::vector<std::string> args{"exec", "ok-a", "fail-b", "gone-c", "--"};
  args.insert(args.end(), kSevenOnFailB.begin(), kSevenOnFailB.end());
  auto r = cli.run(args);
  EXPECT_EQ(r.status, 3) << "1 + two targets that did not exit 0\n" << r.out << r.err;
  EXPECT_NE(r.out.find("ok-a   | fine\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fail-b | bad\n"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("fail-b | oops\n"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("gone-c | rexec: agent gone-c is not connected"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("\n1 ok, 1 failed (exit 7), 1 offline\n"), std::string::npos) << r.err;

  // Every target exiting 0 is status 0.
  auto ok = cli.run({"exec", "ok-a", "--", "true"});
  EXPECT_EQ(ok.status, 0) << ok.err;
  EXPECT_NE(ok.err.find("1 ok\n"), std::string::npos) << ok.err;

  // --json: one object per target, the same facts as the API's plain answer.
  args[0] = "exec";
  args.insert(args.begin() + 1, "--json");
  auto j = cli.run(args);
  EXPECT_EQ(j.status, 3) << j.err;
  std::map<std::string, json> by_name;
  std::istringstream lines(j.out);
  for (std::string line; std::getline(lines, line);) {
    auto o = json::parse(line, nullptr, false);
    ASSERT_FALSE(o.is_discarded()) << line;
    by_name[o["name"]] = o;
  }
  ASSERT_EQ(by_name.size(), 3u) << j.out;
  auto api = json::parse(hub.api("POST", "/api/v1/exec", json{{"targets", {"ok-a", "fail-b", "gone-c"}}, {"argv", kSevenOnFailB}}.dump()).body);
  for (const auto& res : api["results"]) {
    const json& mine = by_name[res["target"].get<std::string>()];
    EXPECT_EQ(mine["target"], res["agent"]) << "the CLI sends ids";
    for (const char* k : {"agent", "exit_code", "stdout", "stderr"}) EXPECT_EQ(mine[k], res[k]) << k << " " << res.dump();
    EXPECT_EQ(mine.contains("error"), res.contains("error"));
    if (res.contains("error")) {
      EXPECT_EQ(mine["error"]["code"], res["error"]["code"]);
    }
    EXPECT_TRUE(mine["duration_ms"].is_number()) << mine.dump();
  }
  EXPECT_EQ(by_name["fail-b"]["stdout"], "bad\n");
  EXPECT_EQ(by_name["fail-b"]["exit_code"], 7);
  EXPECT_EQ(by_name["gone-c"]["error"]["code"], "agent_offline");
}

TEST(CliExec, OutputIsStreamedAsItArrives) {
  HubFixture hub;
  AgentProcess agent(hub, "tick-box");
  ASSERT_TRUE(wait_online(hub, "tick-box", 10s));
  Cli cli(hub, hub.admin_token());
  // Five lines a second apart, each with the target's own clock.
  CliChild child(cli, {"exec", "tick-box", "--", "sh", "-c", "for i in 1 2 3 4 5; do echo \"$i $(date +%s%N)\"; sleep 1; done"});
  std::vector<int64_t> arrived, printed;
  for (int i = 0; i < 5; ++i) {
    auto line = child.read_line(30s);
    ASSERT_TRUE(line) << child.err();
    arrived.push_back(realtime_ns());
    std::istringstream fields(line->substr(line->find('|') + 1));
    int n = 0;
    int64_t t = 0;
    fields >> n >> t;
    EXPECT_EQ(n, i + 1) << *line;
    printed.push_back(t);
  }
  std::string rest;
  EXPECT_EQ(child.wait(30s, &rest), 0) << child.err();
  // Ordering against the target's own clock, not a threshold on ours: each line reached us
  // before the target had printed the next one (a second later), so the first line showed well
  // within 1.5 s of the start, and nothing waited for the end.
  for (int i = 0; i + 1 < 5; ++i)
    EXPECT_LT(arrived[size_t(i)], printed[size_t(i) + 1]) << "line " << i + 1 << " arrived only after line " << i + 2 << " was printed";
  std::printf("first line arrived %.1f ms after the target printed it\n", double(arrived[0] - printed[0]) / 1e6);
}

TEST(CliExec, TwoHundredMegabytesKeepTheHubAndTheCliSmall) {
  // A sanitizer build keeps freed memory in quarantine (256 MB by default): the peaks would
  // measure that, not what the hub and the CLI hold. Children read ASAN_OPTIONS when they start.
  if (const char* asan = std::getenv("ASAN_OPTIONS"))
    ::setenv("ASAN_OPTIONS", (std::string(asan) + ":quarantine_size_mb=8").c_str(), 1);
  HubFixture hub;
  AgentProcess agent(hub, "big-box");
  ASSERT_TRUE(wait_online(hub, "big-box", 10s));
  Cli cli(hub, hub.admin_token());
  // Lines of 1000 bytes (999 zeros and a newline) through `rexec exec`: how many arrived, and the
  // CLI's peak memory while they did. A reader that stalls for a while at the start: the CLI and
  // the hub must hold back, not buffer.
  auto run = [&](long total, long sample_every, bool stall) {
    CliChild child(cli, {"exec", "big-box", "--timeout", "10m", "--", "sh", "-c",
                         "yes $(printf '%0999d' 0) | head -c " + std::to_string(total)});
    long lines = 0, peak = 0;
    auto started = std::chrono::steady_clock::now();
    for (;;) {
      auto line = child.read_line(120s);
      if (!line) break;
      if (line->size() == 999 + 10 && line->compare(10, 5, "00000") == 0) ++lines;  // "big-box | " + 999 zeros
      if (lines % sample_every == 0) peak = std::max(peak, peak_kib(child.pid()));
      if (stall && lines == 1000 && std::chrono::steady_clock::now() - started < 30s) std::this_thread::sleep_for(2s);
    }
    peak = std::max(peak, peak_kib(child.pid()));
    EXPECT_EQ(child.wait(60s), 0) << child.err();
    EXPECT_EQ(lines, total / 1000);
    return peak;
  };
  // The same CLI for 1 MB first: what it needs whatever the output (under ASan that includes
  // the sanitizer's own runtime and shadow memory).
  long cli_base = run(1'000'000, 100, false);
  long hub_before = peak_kib(hub.process().pid());
  long cli_peak = run(200'000'000, 20000, true);
  long hub_growth = peak_kib(hub.process().pid()) - hub_before;
  std::printf("200 MB through exec: hub VmHWM +%ld KiB, CLI VmHWM %ld KiB (%ld KiB for 1 MB)\n", hub_growth, cli_peak,
              cli_base);
  // Caps stated in docs/cli.md: the hub grows by less than 64 MiB, and so does the CLI over what
  // 1 MB needs; without a sanitizer the CLI stays under 64 MiB in all.
  EXPECT_LT(hub_growth, 64 * 1024);
  EXPECT_LT(cli_peak - cli_base, 64 * 1024);
  if (!std::getenv("ASAN_OPTIONS")) {
    EXPECT_LT(cli_peak, 64 * 1024);
  }
}

TEST(CliExec, CtrlCCancelsTheRunsOnTheHubAndTheTokenIsInNoArgv) {
  HubFixture hub;
  AgentProcess agent(hub, "long-box");
  ASSERT_TRUE(wait_online(hub, "long-box", 10s));
  Cli cli(hub, hub.admin_token());
  std::string marker = "rexec-cancel-" + std::to_string(::getpid());
  CliChild child(cli, {"exec", "long-box", "--timeout", "10m", "--", "sh", "-c", "echo started; exec sleep 300 # " + marker});
  ASSERT_TRUE(child.read_line(30s)) << child.err();
  ASSERT_TRUE(eventually([&] { return !processes_with(marker).empty(); }, 10s));
  // No process anywhere here (the CLI, the hub, the agent, the command) has the token in its argv.
  EXPECT_TRUE(processes_with(hub.admin_token()).empty());
  ::kill(child.pid(), SIGINT);
  EXPECT_EQ(child.wait(20s), 130) << child.err();
  EXPECT_NE(child.err().find("interrupted"), std::string::npos) << child.err();
  EXPECT_EQ(child.err().find(hub.admin_token()), std::string::npos);
  // The hub saw the client go and killed the run on the agent.
  EXPECT_TRUE(eventually([&] { return processes_with(marker).empty(); }, 20s)) << "the remote sleep survived Ctrl-C";
}

// -j N: at most N targets run at once. Each command appends "s" to a log when it starts and "e"
// before it ends; the most starts without their ends is how many ran at once (the hub starts the
// next only after one's CLOSE, which follows its "e"). With the default (16) each also waits until
// all four started: they all ran at once, so -j is what held them apart.
TEST(CliExec, ParallelFlagBoundsHowManyRunAtOnce) {
  HubFixture hub;
  std::vector<std::unique_ptr<AgentProcess>> agents;
  std::vector<std::string> names{"p-1", "p-2", "p-3", "p-4"};
  for (const auto& n : names) agents.push_back(std::make_unique<AgentProcess>(hub, n));
  for (const auto& n : names) ASSERT_TRUE(wait_online(hub, n, 10s));
  Cli cli(hub, hub.admin_token());
  TempDir dir("rexec-cli-parallel");
  std::string log = dir / "log";
  auto run = [&](std::vector<std::string> flags, const std::string& wait) {
    std::vector<std::string> args{"exec"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), names.begin(), names.end());
    args.insert(args.end(), {"--", "sh", "-c", overlap_command(log, wait)});
    auto r = cli.run(args);
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    auto overlap = read_overlap(log);
    EXPECT_EQ(overlap.ends, 4);
    return overlap.most;
  };
  EXPECT_EQ(run({"-j", "2"}, "sleep 1"), 2);
  EXPECT_EQ(run({}, until_started(log, 4)), 4) << "by default (16) all four run at once";
  for (std::string bad : {"0", "257", "x"}) {
    auto r = cli.run({"exec", "-j", bad, "p-1", "--", "true"});
    EXPECT_NE(r.status, 0) << bad;
    EXPECT_NE(r.err.find("parallel"), std::string::npos) << r.err;
  }
}

class CliExecContainers : public ContainerTest {};

TEST_F(CliExecContainers, OneCommandAcrossBusyboxDebianAndAHostAgent) {
  HubFixture hub(container_hub_flags());
  AgentProcess host(hub, "host-1", {"--label", "role=ci"});
  AgentProcess other(hub, "host-2");  // no role=ci: not in the --label run
  ASSERT_TRUE(wait_online(hub, "host-1", 10s));
  ASSERT_TRUE(wait_online(hub, "host-2", 10s));
  Cli cli(hub, hub.admin_token());
  for (auto [image, name] : {std::pair{"rexec/busybox:latest", "bb"}, std::pair{"rexec/debian:12", "deb"}}) {
    auto r = cli.run({"create", "--image", image, "--name", name, "--label", "role=ci"});
    ASSERT_EQ(r.status, 0) << r.err;
    std::string id = r.out.substr(0, r.out.find('\n'));
    created_.push_back(id);
    ASSERT_TRUE(wait_status(hub, id, "running")) << name;
  }
  const std::vector<std::string> probe{"--", "sh", "-c", "uname -m; . /etc/os-release 2>/dev/null; echo id=$ID"};
  std::vector<std::string> all{"exec", "--all"};
  all.insert(all.end(), probe.begin(), probe.end());
  auto r = cli.run(all);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  std::string arch = r.out.substr(r.out.find("| ") + 2, r.out.find('\n') - r.out.find("| ") - 2);
  for (const char* line : {"bb     | id=busybox\n", "deb    | id=debian\n", "host-1 | id=debian\n", "host-2 | id=debian\n"})
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
  EXPECT_NE(r.out.find("bb     | " + arch + "\n"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("4 ok\n"), std::string::npos) << r.err;

  std::vector<std::string> ci{"exec", "--label", "role=ci"};
  ci.insert(ci.end(), probe.begin(), probe.end());
  r = cli.run(ci);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.find("host-2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("host-1 | id=debian"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bb     | id=busybox\n"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("3 ok\n"), std::string::npos) << r.err;

  r = cli.run({"exec", "--kind", "container", "--", "sh", "-c", "test -e /etc/debian_version || exit 7"});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("1 ok, 1 failed (exit 7)"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace rx::test
