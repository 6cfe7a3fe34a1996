// TLS end to end: a hub serving HTTPS/WSS with a certificate made by `openssl` here, agents that
// verify it against --ca-file, and an agent that refuses a hub whose certificate its CA did not
// sign, saying so in its log, before its enrollment token ever leaves the machine.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/support/hub_fixture.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

void run_ok(TempDir& dir, std::vector<std::string> argv) {
  Process p(argv, child_env(), dir / "openssl.log");
  auto st = p.wait(60s);
  ASSERT_TRUE(st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << p.log();
}

// A CA, a hub certificate it signed (for 127.0.0.1 and localhost), and an unrelated CA.
void make_certificates(TempDir& dir) {
  const std::string ec = "ec_paramgen_curve:prime256v1";
  for (const char* ca : {"ca", "other-ca"})
    run_ok(dir, {"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", ec, "-nodes", "-keyout",
                 dir / (std::string(ca) + ".key"), "-out", dir / (std::string(ca) + ".pem"), "-days", "2", "-subj",
                 std::string("/CN=Rexec test ") + ca});
  run_ok(dir, {"/usr/bin/openssl", "req", "-newkey", "ec", "-pkeyopt", ec, "-nodes", "-keyout", dir / "hub.key", "-out",
               dir / "hub.csr", "-subj", "/CN=localhost"});
  std::ofstream(dir / "ext.cnf") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
  run_ok(dir, {"/usr/bin/openssl", "x509", "-req", "-in", dir / "hub.csr", "-CA", dir / "ca.pem", "-CAkey", dir / "ca.key",
               "-CAcreateserial", "-out", dir / "hub.pem", "-days", "2", "-extfile", dir / "ext.cnf"});
}

class Tls : public testing::Test {
 protected:
  TempDir certs{"rexec-tls"};
  std::unique_ptr<HubFixture> hub;
  int calls_ = 0;

  void SetUp() override {
    make_certificates(certs);
    auto flags = HubFixture::relaxed_limits();
    for (std::string f : {"--tls-cert", "hub.pem", "--tls-key", "hub.key"})
      flags.push_back(f.starts_with("--") ? f : std::string(certs / f));
    hub = std::make_unique<HubFixture>(flags);
  }

  // An HTTPS call with curl, verifying against our CA; the token goes in a header file, not argv.
  HttpResult https(const std::string& method, const std::string& path, const std::string& body = "") {
    std::ofstream(certs / "auth.h") << "Authorization: Bearer " << hub->admin_token() << "\n";
    std::vector<std::string> argv{"/usr/bin/curl", "-sS", "--cacert", certs / "ca.pem", "-H", "@" + std::string(certs / "auth.h"),
                                  "-X", method, "-o", certs / "body.out", "-w", "%{http_code}",
                                  "https://127.0.0.1:" + std::to_string(hub->port()) + path};
    if (!body.empty()) argv.insert(argv.end() - 1, {"--data-binary", body});
    Process p(argv, child_env(), certs / ("curl-" + std::to_string(calls_++) + ".log"));
    p.wait(20s);
    HttpResult r;
    r.status = std::atoi(p.log().c_str());
    r.body = read_file(certs / "body.out");
    return r;
  }

  std::string enroll() {
    auto r = https("POST", "/api/v1/agent-enrollments", "{}");
    EXPECT_EQ(r.status, 201) << r.body;
    return json::parse(r.body, nullptr, false).value("token", "");
  }

  bool online(const std::string& name, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      json list = json::parse(https("GET", "/api/v1/agents").body, nullptr, false);
      if (list.is_object())
        for (const auto& a : list["agents"])
          if (a["name"] == name && a["online"] == true) return true;
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }

  Process agent(const std::string& binary_path, const std::string& name, const std::string& ca, const std::string& token) {
    return Process({binary_path, "--hub", "wss://127.0.0.1:" + std::to_string(hub->port()), "--ca-file", ca,
                    "--enroll-token-file", "-", "--credential-file", certs / (name + ".credential"), "--name", name,
                    "--shell", "/bin/sh"},
                   child_env(), certs / (name + ".log"), token + "\n");
  }
};

TEST_F(Tls, HubServesHttpsAndAgentsVerifyIt) {
  auto health = https("GET", "/healthz");
  EXPECT_EQ(health.status, 200) << health.body;
  EXPECT_NE(http(hub->port(), "GET", "/healthz").status, 200) << "plain HTTP must not be served on the TLS port";

  // An agent holding the wrong CA refuses the hub and says why; its token is never sent.
  std::string token = enroll();
  Process wrong = agent(binary("agent/rexec-agent"), "doubter", certs / "other-ca.pem", token);
  auto line = wrong.wait_for_log("event=link.connect_failed", 20s);
  ASSERT_TRUE(line) << wrong.log();
  std::printf("wrong CA: %s\n", line->c_str());
  EXPECT_NE(line->find("certificate"), std::string::npos) << "the log line must say it is the certificate: " << *line;
  EXPECT_FALSE(online("doubter", 1s));
  wrong.kill_and_wait();

  // The same (unspent) enrollment token, with the right CA: enrolled and online over WSS.
  Process right = agent(binary("agent/rexec-agent"), "truster", certs / "ca.pem", token);
  EXPECT_TRUE(online("truster", 20s)) << right.log() << hub->log();
}

TEST_F(Tls, StaticAgentVerifiesTheHubToo) {
  std::string static_agent = std::string(REXEC_SOURCE_DIR) + "/build/static-agent/agent/rexec-agent";
  if (!std::filesystem::exists(static_agent)) {
    if (std::getenv("REXEC_REQUIRE_STATIC_AGENT")) FAIL() << static_agent << " was not built";
    GTEST_SKIP() << "no static agent built";
  }
  std::string token = enroll();
  Process wrong = agent(static_agent, "static-doubter", certs / "other-ca.pem", token);
  auto line = wrong.wait_for_log("event=link.connect_failed", 20s);
  ASSERT_TRUE(line) << wrong.log();
  EXPECT_NE(line->find("certificate"), std::string::npos) << *line;
  wrong.kill_and_wait();
  Process right = agent(static_agent, "static-truster", certs / "ca.pem", token);
  EXPECT_TRUE(online("static-truster", 20s)) << right.log();
}

}  // namespace
}  // namespace rx::test
