// Finding 10 of issue 13: failed agent-link authentications were not throttled and each wrote an
// audit row: 2,000 random rxa_ credentials took half a second and ~2 MB of audit log, so a
// stranger could fill the data disk. Failed authentications (agent link and API) are now limited
// per IP (429 before any lookup), and their audit rows are aggregated (one row per IP per minute
// with a count).
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/hostile/hostile_support.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// A credential of the right shape (rxa_ + 32 base64url characters) that no agent has.
std::string random_credential(std::mt19937& rng) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string t = "rxa_";
  for (int i = 0; i < 32; ++i) t += kAlphabet[rng() % 64];
  return t;
}

std::string upgrade(int port, const std::string& token) {
  return "GET /api/v1/agent/connect HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
         "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
         "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: rexec.agent.v1\r\nAuthorization: Bearer " +
         token + "\r\n\r\n";
}

TEST(Finding10AgentAuthFailures, ThrottledPerIpAndAggregatedInTheAudit) {
  // The default failure limit (the request limits are off so the test's own polling is free).
  HubFixture hub({"--rate-requests", "0", "--rate-terminal-creates", "0", "--viewers-per-terminal", "1000"});
  LiveTerminal live(hub);
  // An agent that will come back with its credential after the attack.
  FakeAgent returning;
  ASSERT_TRUE(returning.connect(hub.port(), hub.enroll(), "returning"));
  auto welcome = returning.hello();
  ASSERT_TRUE(welcome && welcome->credential);
  returning.ws.close();
  int64_t rows_before = audit_rows(hub);
  ASSERT_GE(rows_before, 0);
  std::mt19937 rng(12345);
  std::map<int, int> statuses;
  constexpr int kAttempts = 2000;
  for (int i = 0; i < kAttempts; ++i) {
    // From another loopback address: the stranger is not the live agent's IP.
    auto r = parse_response(raw_exchange(hub.port(), upgrade(hub.port(), random_credential(rng)), 5s, "127.0.0.2"));
    ++statuses[r.status];
  }
  ASSERT_TRUE(hub.process().running()) << hub.log();
  int64_t rows_after = audit_rows(hub);
  std::printf("agent auth failures: 401 x %d, 429 x %d, other x %d; audit rows %lld -> %lld\n", statuses[401],
              statuses[429], kAttempts - statuses[401] - statuses[429], (long long)rows_before, (long long)rows_after);
  EXPECT_EQ(statuses[401] + statuses[429], kAttempts);
  EXPECT_LE(statuses[401], 60) << "failed authentications are not throttled";
  EXPECT_GE(statuses[429], kAttempts - 60);
  // One row per IP per minute (the run may straddle a minute boundary).
  EXPECT_LE(rows_after - rows_before, 3) << "every failure wrote an audit row";
  auto failed = hub.api("GET", "/api/v1/audit?action=auth.failed");
  auto entries = json::parse(failed.body)["entries"];
  ASSERT_FALSE(entries.empty()) << failed.body;
  // The aggregated row: "N failures in this minute". When the run straddles a minute boundary
  // the newest row may be the next minute's "1 failure", so look at every row of the attacker.
  bool aggregated = false;
  for (const auto& e : entries)
    aggregated |= e.value("ip", "") == "127.0.0.2" && e.value("detail", "").find(" failures in this minute") != std::string::npos;
  EXPECT_TRUE(aggregated) << failed.body;
  EXPECT_EQ(entries.back()["ip"], "127.0.0.2");

  // The stranger stays refused (429 with Retry-After, before any lookup)...
  auto again = parse_response(raw_exchange(hub.port(), upgrade(hub.port(), random_credential(rng)), 5s, "127.0.0.2"));
  EXPECT_EQ(again.status, 429) << again.body;
  EXPECT_TRUE(again.headers.count("retry-after"));
  // ...while agents from elsewhere connect: one comes back with its credential, a new one enrolls.
  FakeAgent back;
  HttpResult refusal;
  ASSERT_TRUE(back.connect(hub.port(), *welcome->credential, "returning", &refusal)) << refusal.status << " " << refusal.body;
  ASSERT_TRUE(back.hello());
  EXPECT_TRUE(wait_online(hub, "returning", 10s));
  FakeAgent fresh;
  ASSERT_TRUE(fresh.connect(hub.port(), hub.enroll(), "fresh"));
  ASSERT_TRUE(fresh.hello());
  live.expect_alive();
}

TEST(Finding10AgentAuthFailures, ApiFailuresAreThrottledAndAggregatedToo) {
  HubFixture hub({"--rate-requests", "0", "--rate-terminal-creates", "0", "--viewers-per-terminal", "1000"});
  LiveTerminal live(hub);
  int64_t rows_before = audit_rows(hub);
  std::map<int, int> statuses;
  for (int i = 0; i < 500; ++i) {
    std::string req = "GET /api/v1/terminals HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer rxk_" +
                      std::string(32, char('A' + i % 26)) + "\r\n\r\n";
    ++statuses[parse_response(raw_exchange(hub.port(), req, 5s, "127.0.0.3")).status];
  }
  int64_t rows_after = audit_rows(hub);
  std::printf("api auth failures: 401 x %d, 429 x %d; audit rows %lld -> %lld\n", statuses[401], statuses[429],
              (long long)rows_before, (long long)rows_after);
  EXPECT_LE(statuses[401], 60);
  EXPECT_GE(statuses[429], 440);
  EXPECT_LE(rows_after - rows_before, 3);
  live.expect_alive();  // the admin's own requests (from 127.0.0.1) are unaffected
}

}  // namespace
}  // namespace rx::test
