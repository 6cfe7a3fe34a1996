// GET /install-agent.sh and GET /downloads/NAME (hub/api/downloads.h) against a real hub: the real
// static agent comes back byte for byte through the streaming route (fetched with curl, which
// decodes chunked bodies the way the installer's curl does), its .sha256 as placed, and every
// name that is not one of the four fixed ones is refused with JSON — path tricks included.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "tests/support/hub_fixture.h"
#include "tests/support/process.h"

namespace rx::test {
namespace {

namespace fs = std::filesystem;

std::string static_agent() { return std::string(REXEC_SOURCE_DIR) + "/build/static-agent/agent/rexec-agent"; }

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class Downloads : public testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(static_agent())) {
      if (std::getenv("REXEC_REQUIRE_STATIC_AGENT")) FAIL() << "no static agent at " << static_agent();
      GTEST_SKIP() << "no static agent (cmake --preset static-agent)";
    }
    // Only amd64 is placed: arm64 is the missing arch.
    fs::copy_file(static_agent(), dir_ / "rexec-agent-linux-amd64");
    std::ofstream(dir_ / "rexec-agent-linux-amd64.sha256") << "abc123  rexec-agent-linux-amd64\n";
    auto flags = HubFixture::relaxed_limits();
    flags.insert(flags.end(), {"--downloads-dir", dir_.path()});
    hub_ = std::make_unique<HubFixture>(flags);
  }
  TempDir dir_{"rexec-downloads"};
  std::unique_ptr<HubFixture> hub_;
};

TEST_F(Downloads, TheAgentComesBackByteForByteAndItsChecksumAsPlaced) {
  TempDir out("rexec-downloads-out");
  std::string url = "http://127.0.0.1:" + std::to_string(hub_->port()) + "/downloads/rexec-agent-linux-amd64";
  int rc = std::system(("curl -fsS -o " + (out / "agent") + " " + url).c_str());
  ASSERT_EQ(WEXITSTATUS(rc), 0);
  std::string got = slurp(out / "agent"), want = slurp(static_agent());
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want) << "the streamed agent differs from the file";
  auto sum = http(hub_->port(), "GET", "/downloads/rexec-agent-linux-amd64.sha256");
  EXPECT_EQ(sum.status, 200);
  EXPECT_EQ(sum.body, "abc123  rexec-agent-linux-amd64\n") << "served as placed, never recomputed";
}

// A write that drains at once calls back into the stream from inside itself: with a big file and
// fast clients that nested one frame per chunk and freed the stream under the outer frame (ASan
// caught a heap-use-after-free in make test). Many whole downloads, one after another and at once,
// each byte for byte.
TEST_F(Downloads, BigFilesToFastClientsComeWholeEveryTime) {
  std::string big(24 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = char((i * 2654435761u) >> 13);
  std::ofstream(dir_ / "rexec-agent-linux-arm64", std::ios::binary) << big;
  TempDir out("rexec-downloads-big");
  std::string url = "http://127.0.0.1:" + std::to_string(hub_->port()) + "/downloads/rexec-agent-linux-arm64";
  std::string cmd;
  for (int i = 0; i < 4; ++i) cmd += "curl -fsS -o " + (out / ("p" + std::to_string(i))) + " " + url + " & ";
  cmd += "wait";
  for (int i = 0; i < 4; ++i) cmd += "; curl -fsS -o " + (out / ("s" + std::to_string(i))) + " " + url;
  ASSERT_EQ(WEXITSTATUS(std::system(("sh -c '" + cmd + "'").c_str())), 0);
  for (const char* name : {"p0", "p1", "p2", "p3", "s0", "s1", "s2", "s3"}) EXPECT_TRUE(slurp(out / name) == big) << name;
  EXPECT_EQ(http(hub_->port(), "GET", "/healthz").status, 200);
}

TEST_F(Downloads, AnythingElseIsRefusedWithJson) {
  struct Case {
    std::string path;
    int status;
    std::string names;  // what the error must mention ("" = anything)
  };
  for (const auto& c : {Case{"/downloads/rexec-agent-linux-arm64", 404, "arm64"},
                        Case{"/downloads/rexec-agent-linux-arm64.sha256", 404, "arm64"},
                        Case{"/downloads/rexec-agent-linux-riscv64", 404, ""},
                        Case{"/downloads/hub.db", 404, ""},
                        Case{"/downloads/", 404, ""},
                        Case{"/downloads/../data/hub.db", 400, ""},
                        Case{"/downloads/rexec-agent-linux-amd64%2f..", 400, ""},
                        Case{"/downloads/%2e%2e%2fadmin.token", 400, ""},
                        Case{"/downloads/rexec-agent-linux-amd64%00", 400, ""}}) {
    SCOPED_TRACE(c.path);
    auto r = http(hub_->port(), "GET", c.path);
    EXPECT_EQ(r.status, c.status) << r.body;
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r.body;
    EXPECT_TRUE(j.contains("error") && j.contains("code")) << r.body;
    if (!c.names.empty()) {
      EXPECT_NE(r.body.find(c.names), std::string::npos) << r.body;
    }
    EXPECT_EQ(r.body.find("not really"), std::string::npos);
  }
}

TEST_F(Downloads, TheInstallerNamesThisHubAndIsCutSafe) {
  auto r = http(hub_->port(), "GET", "/install-agent.sh");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body.rfind("#!/bin/sh\n", 0), 0u);
  EXPECT_NE(r.body.find("http://127.0.0.1:" + std::to_string(hub_->port())), std::string::npos);
  EXPECT_EQ(r.body.find("@REXEC_PUBLIC_URL@"), std::string::npos);
  // The whole script is one function, called on its last line: a cut download runs nothing.
  std::string tail = r.body.substr(r.body.size() > 64 ? r.body.size() - 64 : 0);
  EXPECT_NE(tail.find("main \"$@\"\n"), std::string::npos) << tail;
}

}  // namespace
}  // namespace rx::test
