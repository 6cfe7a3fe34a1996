// Pastes larger than the terminal's input queue (issue #13, finding 8): input that the program
// has not read yet must keep flowing into the PTY as the program reads it, with no further
// keystroke. A real hub, a real agent, a real shell on a real PTY: the shell goes raw, sleeps so
// the paste piles up in front of it (the kernel's tty queue holds only a few KiB, so the agent's
// writes hit EAGAIN), then `head -c N | wc -c` reads it all and prints the count.
#include <gtest/gtest.h>

#include "tests/integration/relay_support.h"

namespace rx::test {
namespace {

using namespace std::chrono_literals;

// Types `bytes` of paste in 16 KiB viewer messages (a client cuts pastes, SPEC 2) and waits for
// the count `wc -c` prints; nothing is typed after the paste.
void paste_and_count(Viewer& v, size_t bytes) {
  // -echo: the paste is not echoed back. The count is asked for as an expression, so the only
  // "=<count>" in the output is wc's answer (the tty echoes the typed line before stty runs).
  v.type("stty raw -echo; echo RE''ADY; sleep 1; echo N=$(head -c $((" + std::to_string(bytes) +
         "+0)) | wc -c); stty sane\n");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("READY"); }, 10s)) << v.output;
  std::string chunk(16 * 1024, 'x');
  for (size_t sent = 0; sent < bytes; sent += chunk.size()) v.type(chunk.substr(0, std::min(chunk.size(), bytes - sent)));
  std::string want = "N=" + std::to_string(bytes);
  EXPECT_TRUE(v.until([&](const Viewer& v) { return v.saw(want); }, 30s))
      << "the paste stalled: no \"" << want << "\" without another keystroke; output tail: "
      << v.output.substr(v.output.size() > 300 ? v.output.size() - 300 : 0);
}

TEST(Paste, HundredThousandBytesReachAProgramThatReadsLate) {
  HubFixture hub;
  AgentProcess agent(hub, "paste", {"--shell", "/bin/sh"});
  ASSERT_TRUE(wait_online(hub, "paste", 5s)) << agent.log();
  auto id = create_terminal(hub, "paste");
  ASSERT_FALSE(id.empty());
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  paste_and_count(v, 100000);
  EXPECT_EQ(v.event("error"), std::nullopt) << "the hub refused some of the paste";
}

TEST(Paste, TwoHundredSixtyKilobytesReachAProgramThatReadsLate) {
  HubFixture hub;
  AgentProcess agent(hub, "paste260", {"--shell", "/bin/sh"});
  ASSERT_TRUE(wait_online(hub, "paste260", 5s)) << agent.log();
  auto id = create_terminal(hub, "paste260");
  ASSERT_FALSE(id.empty());
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  paste_and_count(v, 260000);
  EXPECT_EQ(v.event("error"), std::nullopt) << "the hub refused some of the paste";
  // The terminal is still a working shell afterwards.
  v.type("echo $((6*7))\n");
  EXPECT_TRUE(v.until([](const Viewer& v) { return v.saw("42\r\n"); }, 10s)) << v.output;
}

}  // namespace
}  // namespace rx::test
