// The relay end to end: a real hub, a real agent, real shells on real PTYs.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "tests/integration/relay_support.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

TEST(Relay, EnrollAttachEchoResizeExit) {
  HubFixture hub;
  AgentProcess agent(hub, "box");
  ASSERT_TRUE(wait_online(hub, "box", 2s)) << agent.process().log();
  auto id = create_terminal(hub, "box");
  ASSERT_FALSE(id.empty());
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  ASSERT_TRUE(v.wait_prompt()) << agent.process().log();
  v.type("echo $((6*7))\r");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("42\r\n"); }, 10s)) << v.output << agent.process().log();
  v.resize(100, 40);
  v.type("stty size\r");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("40 100"); }, 10s)) << v.output;
  v.type("exit 3\r");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.event("exit").has_value(); }, 10s)) << v.output;
  EXPECT_EQ((*v.event("exit"))["code"], 3);
  EXPECT_EQ(v.duplicates, 0u);
  EXPECT_EQ(v.gaps, 0u);
  EXPECT_TRUE(eventually([&] { return json::parse(hub.api("GET", "/api/v1/terminals/" + id).body)["status"] == "exited"; }, 5s));
}

TEST(Relay, SecretsStayOutOfArgvEnvironmentAndLogs) {
  HubFixture hub;
  AgentProcess agent(hub, "secretive", {"--shell", "/bin/sh"});
  ASSERT_TRUE(wait_online(hub, "secretive", 2s));
  // The hub lists the agent online at its HELLO; the agent saves its credential when WELCOME
  // reaches it, a moment later.
  std::string credential;
  ASSERT_TRUE(eventually([&] {
    credential = read_file(agent.credential_file());
    while (!credential.empty() && credential.back() == '\n') credential.pop_back();
    return credential.starts_with("rxa_");
  }, 5s)) << credential;
  struct stat st {};
  ASSERT_EQ(::stat(agent.credential_file().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  std::string cmdline = read_file("/proc/" + std::to_string(agent.process().pid()) + "/cmdline");
  EXPECT_EQ(cmdline.find(credential), std::string::npos);
  EXPECT_EQ(cmdline.find("rxe_"), std::string::npos);
  EXPECT_EQ(cmdline.find("rxa_"), std::string::npos);

  auto id = create_terminal(hub, "secretive");
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  v.type("echo SHELLPID=$$\r");
  // The echoed command line shows "SHELLPID=$$"; the answer line starts with digits.
  auto answer = [](const Viewer& v) -> std::string {
    for (auto p = v.output.find("SHELLPID="); p != std::string::npos; p = v.output.find("SHELLPID=", p + 1)) {
      auto end = v.output.find('\r', p + 9);
      if (end != std::string::npos && p + 9 < end && std::isdigit(static_cast<unsigned char>(v.output[p + 9])))
        return v.output.substr(p + 9, end - p - 9);
    }
    return "";
  };
  ASSERT_TRUE(v.until([&](const Viewer& v) { return !answer(v).empty(); }, 10s)) << v.output;
  std::string pid = answer(v);
  std::string environ = read_file("/proc/" + pid + "/environ");
  ASSERT_FALSE(environ.empty()) << "shell pid " << pid;
  EXPECT_EQ(environ.find(credential), std::string::npos);
  EXPECT_EQ(environ.find("rxa_"), std::string::npos);
  EXPECT_EQ(environ.find("rxe_"), std::string::npos);
  EXPECT_EQ(environ.find("NOTIFY_SOCKET"), std::string::npos);
  // Neither the hub's nor the agent's log ever shows a secret.
  for (const std::string& log : {hub.log(), agent.process().log()}) {
    EXPECT_EQ(log.find(credential), std::string::npos);
    EXPECT_EQ(log.find(hub.admin_token()), std::string::npos);
  }
}

TEST(Relay, ExecRunsArgvNotAShellLine) {
  HubFixture hub;
  AgentProcess agent(hub, "runner");
  ASSERT_TRUE(wait_online(hub, "runner", 2s));
  auto r = hub.api("POST", "/api/v1/exec",
                   json{{"targets", {"runner"}}, {"argv", {"/bin/sh", "-c", "echo out; echo err >&2; exit 5"}}, {"timeout_s", 10}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  auto res = json::parse(r.body)["results"][0];
  EXPECT_EQ(res["exit_code"], 5);
  EXPECT_EQ(res["stdout"], "out\n");
  EXPECT_EQ(res["stderr"], "err\n");
  // argv is not re-parsed by a shell: a ';' is just an argument.
  r = hub.api("POST", "/api/v1/exec", json{{"targets", {"runner"}}, {"argv", {"/bin/echo", "a;", "touch", "/tmp/rexec-pwned"}}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["results"][0]["stdout"], "a; touch /tmp/rexec-pwned\n");
  EXPECT_FALSE(std::filesystem::exists("/tmp/rexec-pwned"));
  // A program that does not exist is a clear error, not exit 127.
  r = hub.api("POST", "/api/v1/exec", json{{"targets", {"runner"}}, {"argv", {"/no/such/program"}}}.dump());
  auto missing = json::parse(r.body)["results"][0];
  EXPECT_EQ(missing["error"]["code"], "spawn_failed") << r.body;
}

}  // namespace
}  // namespace rx::test
