// Terminals survive every disconnect: the hub killed with SIGKILL and restarted, and the agent's
// link cut by the network for 10 s, both while a shell prints 200,000 numbered lines. The shell
// keeps its PID and the viewer gets every line exactly once, in order.
#include <gtest/gtest.h>

#include <sstream>
#include <thread>

#include "tests/integration/relay_support.h"
#include "tests/support/tcp_proxy.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr int kLines = 200000;

// The shell's PID as printed by `echo PID=$$` (the typed line shows "PID=$$", the answer digits).
std::string pid_after(const std::string& output, size_t from = 0) {
  for (auto p = output.find("PID=", from); p != std::string::npos; p = output.find("PID=", p + 1)) {
    auto end = p + 4;
    while (end < output.size() && std::isdigit(static_cast<unsigned char>(output[end]))) ++end;
    if (end > p + 4 && end < output.size() && output[end] == '\r') return output.substr(p + 4, end - p - 4);
  }
  return "";
}

// Checks the numbered lines 1..kLines appear once each, in order, between BEGIN and END markers.
void expect_every_line_once(const std::string& output) {
  auto begin = output.find("\r\nBEGIN\r\n");
  auto end = output.find("\r\nEND\r\n");
  ASSERT_NE(begin, std::string::npos);
  ASSERT_NE(end, std::string::npos);
  std::istringstream in(output.substr(begin + 9, end - begin - 9));
  int expected = 1;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    ASSERT_EQ(line, std::to_string(expected)) << "line " << expected << " is wrong or missing";
    ++expected;
  }
  EXPECT_EQ(expected - 1, kLines);
}

// Starts the numbered output in a shell and returns its PID.
std::string start_printing(Viewer& v) {
  v.type("echo PID=$$\n");
  EXPECT_TRUE(v.until([](const Viewer& v) { return !pid_after(v.output).empty(); }, 10s)) << v.output;
  std::string pid = pid_after(v.output);
  // A shell loop rather than `seq`: slow enough (seconds) that the disconnect lands mid-stream.
  v.type("echo BEGIN; i=1; while [ $i -le " + std::to_string(kLines) + " ]; do echo $i; i=$((i+1)); done; echo END\n");
  return pid;
}

TEST(Resume, HubKilledAndRestartedMidStream) {
  HubFixture hub;
  AgentProcess agent(hub, "resumer", {"--shell", "/bin/sh"});
  ASSERT_TRUE(wait_online(hub, "resumer", 5s));
  auto id = create_terminal(hub, "resumer");
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  std::string pid = start_printing(v);
  ASSERT_FALSE(pid.empty());
  // Let a good part of the stream through, then kill the hub hard.
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("\r\n20000\r\n"); }, 60s)) << v.output.size();
  ASSERT_FALSE(v.saw("\r\nEND\r\n")) << "the stream finished before the kill: nothing was tested";
  hub.kill9();
  EXPECT_FALSE(v.until([](const Viewer&) { return false; }, 2s));  // the viewer's socket is dead
  uint64_t resume_at = v.next_offset;
  hub.start();
  ASSERT_TRUE(wait_online(hub, "resumer", 40s)) << agent.log();

  Viewer again;
  again.output = v.output;  // keep what was received; new bytes must continue it exactly
  ASSERT_TRUE(again.attach(hub, id, resume_at));
  ASSERT_TRUE(again.until([](const Viewer& v) { return v.saw("\r\nEND\r\n"); }, 120s))
      << "received up to offset " << again.next_offset << "\n" << hub.log() << agent.log();
  EXPECT_EQ(again.duplicates, 0u);
  EXPECT_EQ(again.gaps, 0u);
  expect_every_line_once(again.output);
  // Same shell, same PID.
  again.type("echo PID=$$\n");
  size_t mark = again.output.size();
  ASSERT_TRUE(again.until([&](const Viewer& v) { return !pid_after(v.output, mark).empty(); }, 10s));
  EXPECT_EQ(pid_after(again.output, mark), pid);
}

TEST(Resume, AgentLinkCutByTheNetworkFor10Seconds) {
  HubFixture hub;
  TcpProxy proxy(hub.port());
  AgentProcess agent(hub, "cut", {"--shell", "/bin/sh"}, "ws://127.0.0.1:" + std::to_string(proxy.port()));
  ASSERT_TRUE(wait_online(hub, "cut", 5s));
  auto id = create_terminal(hub, "cut");
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  std::string pid = start_printing(v);
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("\r\n20000\r\n"); }, 60s));
  ASSERT_FALSE(v.saw("\r\nEND\r\n")) << "the stream finished before the cut: nothing was tested";
  proxy.cut();
  ASSERT_TRUE(v.until([](const Viewer& v) {
    auto e = v.event("status");
    return e && (*e)["status"] == "offline";
  }, 10s)) << "the viewer should be told the terminal is offline";
  std::this_thread::sleep_for(10s);
  proxy.heal();
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("\r\nEND\r\n"); }, 90s))
      << "received up to offset " << v.next_offset << "\n" << agent.log();
  EXPECT_EQ(v.duplicates, 0u);
  EXPECT_EQ(v.gaps, 0u);
  expect_every_line_once(v.output);
  v.type("echo PID=$$\n");
  size_t mark = v.output.size();
  ASSERT_TRUE(v.until([&](const Viewer& v) { return !pid_after(v.output, mark).empty(); }, 10s));
  EXPECT_EQ(pid_after(v.output, mark), pid);
  EXPECT_GE(proxy.connections_accepted(), 2);
}

}  // namespace
}  // namespace rx::test
