// Findings 1-3 of issue 13: bytes that are not UTF-8 — in a request path, in a stored audit row,
// in what an agent says about itself — crashed the hub (nlohmann's dump() throws on them and
// nothing caught it). Every JSON the hub writes now goes through one path that cannot throw, and
// strings from peers are made valid where they enter; these tests send the bytes and check the
// answers are JSON and the hub relays on.
#include <sqlite3.h>

#include <future>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "protocol/viewer.h"
#include "tests/hostile/hostile_support.h"
#include "tests/support/api_expect.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

bool is_json(const std::string& s) { return json::parse(s, nullptr, false).is_object(); }

// Finding 1: `curl http://HUB/%ff` aborted the hub (no auth needed).
TEST(Finding01NonUtf8Path, RawAndEscapedBytesGetJsonErrors) {
  HubFixture hub;
  LiveTerminal live(hub);
  std::string host = "Host: 127.0.0.1:" + std::to_string(hub.port()) + "\r\n";
  for (std::string path : {"/\xff", "/%ff", "/%FF%FE/x", "/api/v1/terminals/\xc3\x28", "/api/v1/nothing/%ed%a0%80",
                           "/healthz?x=%ff", "/api/v1/audit?action=%ff"}) {
    auto raw = raw_exchange(hub.port(), "GET " + path + " HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n");
    auto r = parse_response(raw);
    EXPECT_NE(r.status, 0) << "no HTTP answer for " << path << ": " << raw;
    EXPECT_TRUE(is_json(r.body)) << path << " -> " << r.status << " " << r.body;
    ASSERT_TRUE(hub.process().running()) << "the hub died on " << path << ":\n" << hub.log();
  }
  // The same with a valid token: the routes' own error messages quote the path too.
  for (std::string path : {"/api/v1/terminals/%ff", "/api/v1/agents/%fe%ff", "/api/v1/terminals/%ff/shares"}) {
    auto r = hub.api("GET", path);
    EXPECT_TRUE(is_json(r.body)) << path << " -> " << r.status << " " << r.body;
    ASSERT_TRUE(hub.process().running()) << "the hub died on " << path << ":\n" << hub.log();
  }
  live.expect_alive();
}

// Finding 2: an unauthenticated request to a non-UTF-8 path wrote its path into an auth.failed
// audit row, and from then on every read of the audit log aborted the hub. Such a path is now
// refused (400) before anything looks at it; and a row with bad bytes that is in the store
// already (an older hub wrote it) reads as JSON too.
TEST(Finding02StoredAuditRow, AuditLogWithBadBytesStillReads) {
  HubFixture hub;
  LiveTerminal live(hub);
  auto refused = http(hub.port(), "GET", "/api/v1/terminals/%ff");
  EXPECT_EQ(refused.status, 400) << refused.body;
  EXPECT_TRUE(is_json(refused.body)) << refused.body;
  // Refused credentials on such a path: the same.
  auto with_token = http(hub.port(), "GET", "/api/v1/terminals/%ff", "rxk_" + std::string(32, 'A'));
  EXPECT_EQ(with_token.status, 400) << with_token.body;
  auto r = hub.api("GET", "/api/v1/audit?action=auth.failed");
  ASSERT_EQ(r.status, 200) << r.body << "\n" << hub.log();
  ASSERT_TRUE(is_json(r.body)) << r.body;

  // A row that holds bad bytes already (written by an older hub): reading it must not crash either.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((hub.data_dir() + "/data/hub.db").c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "INSERT INTO audit (at, actor, action, target, detail, ip) VALUES "
                               "(1, 'anonymous', 'auth.failed', ?, ?, '127.0.0.1')",
                               -1, &s, nullptr),
            SQLITE_OK);
  std::string bad_target = "/api/v1/terminals/\xff\xfe", bad_detail = "reason \xc3\x28";
  sqlite3_bind_text(s, 1, bad_target.data(), int(bad_target.size()), SQLITE_TRANSIENT);
  sqlite3_bind_text(s, 2, bad_detail.data(), int(bad_detail.size()), SQLITE_TRANSIENT);
  EXPECT_EQ(sqlite3_step(s), SQLITE_DONE);
  sqlite3_finalize(s);
  sqlite3_close(db);
  for (int i = 0; i < 3; ++i) {
    auto again = hub.api("GET", "/api/v1/audit?action=auth.failed&limit=1000");
    ASSERT_EQ(again.status, 200) << again.body << "\n" << hub.log();
    auto entries = json::parse(again.body, nullptr, false)["entries"];
    ASSERT_TRUE(entries.is_array()) << again.body;
    bool found = false;
    for (const auto& e : entries) found = found || e["detail"].get<std::string>().starts_with("reason ");
    EXPECT_TRUE(found) << "the stored row is not listed: " << again.body;
  }
  live.expect_alive();
}

// Finding 3: an agent whose name or HELLO host info is not UTF-8 aborted the hub in agent_hello
// or on every later GET /api/v1/agents (a reconnecting agent kept it crash-looping).
TEST(Finding03AgentStrings, NonUtf8NameAndHostInfo) {
  HubFixture hub;
  LiveTerminal live(hub);
  // The dashboard's events feed shows agents too: it must keep working through this.
  WsClient feed;
  ASSERT_TRUE(feed.connect(hub.port(), "/api/v1/events", "rexec.events.v1", {{"Authorization", "Bearer " + hub.admin_token()}}));
  ASSERT_TRUE(feed.receive(5s)) << "no snapshot";

  for (int round = 0; round < 2; ++round) {  // the second time: a reconnecting agent, same bytes
    FakeAgent a;
    ASSERT_TRUE(a.connect(hub.port(), hub.enroll(), "bad\xff\xfename-" + std::to_string(round))) << hub.log();
    protocol::Hello h;
    h.proto_min = 1;
    h.proto_max = 1;
    h.agent_version = "fake-\xff";
    h.capabilities = {"pty", "exec", "\xc3\x28"};
    h.host.hostname = "host\xfe";
    h.host.os = "OS \xc3\x28";
    h.host.kernel = "6.1-\xed\xa0\x80";  // an encoded surrogate: not UTF-8 either
    h.host.arch = "\x80";
    h.host.gpus = {{0, "GPU-\xff", "model \xfe", 1024}};
    ASSERT_TRUE(a.send(h));
    auto welcome = a.next_of<protocol::Welcome>(10s);
    ASSERT_TRUE(welcome) << "no WELCOME:\n" << hub.log();
    auto agents = hub.api("GET", "/api/v1/agents");
    ASSERT_EQ(agents.status, 200) << agents.body << "\n" << hub.log();
    auto j = json::parse(agents.body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << agents.body;
    bool found = false;
    for (const auto& ag : j["agents"]) {
      if (ag["id"] != welcome->agent_id) continue;
      found = true;
      EXPECT_TRUE(ag["name"].get<std::string>().starts_with("bad")) << ag.dump();
      EXPECT_TRUE(ag["host"]["hostname"].get<std::string>().starts_with("host")) << ag.dump();
    }
    EXPECT_TRUE(found) << agents.body;
    ASSERT_TRUE(hub.process().running()) << hub.log();
  }
  // The feed got through it too (its messages are JSON text).
  bool saw_agent = false;
  for (int i = 0; i < 50 && !saw_agent; ++i) {
    auto m = feed.receive(3s);
    ASSERT_TRUE(m) << "the events feed stopped:\n" << hub.log();
    auto j = json::parse(std::string(m->data.begin(), m->data.end()), nullptr, false);
    ASSERT_TRUE(j.is_object());
    saw_agent = j["type"] == "agent" && j["agent"]["name"].get<std::string>().starts_with("bad");
  }
  EXPECT_TRUE(saw_agent);
  live.expect_alive();
}

// Finding 3, the other agent-supplied strings: ERROR messages (exec errors and terminal spawn
// failures) and EXIT signal names.
TEST(Finding03AgentStrings, NonUtf8ErrorMessagesAndSignals) {
  HubFixture hub;
  LiveTerminal live(hub);
  FakeAgent a;
  ASSERT_TRUE(a.connect(hub.port(), hub.enroll(), "fake-errors"));
  ASSERT_TRUE(a.hello());
  ASSERT_TRUE(wait_online(hub, "fake-errors", 10s));

  // An exec whose target answers with an ERROR that is not UTF-8.
  auto exec = std::async(std::launch::async, [&] {
    return hub.api("POST", "/api/v1/exec", R"({"targets": ["fake-errors"], "argv": ["true"], "timeout_s": 20})");
  });
  auto open = a.next_of<protocol::Open>(10s);
  ASSERT_TRUE(open);
  ASSERT_TRUE(a.send(protocol::ErrorFrame{open->channel, "spawn_\xff", "no such \xfe\xff program"}));
  ASSERT_TRUE(a.send(protocol::Close{open->channel, "\xff"}));
  auto r = exec.get();
  ASSERT_EQ(r.status, 200) << r.body << "\n" << hub.log();
  auto j = json::parse(r.body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.body;
  EXPECT_TRUE(j["results"][0]["error"]["error"].get<std::string>().starts_with("no such")) << r.body;

  // A terminal whose shell cannot start, with a message that is not UTF-8: it is lost, and its
  // reason (that message) shows in the API.
  auto created = hub.api("POST", "/api/v1/terminals", R"({"kind": "agent", "agent": "fake-errors"})");
  ASSERT_EQ(created.status, 201) << created.body;
  std::string id = json::parse(created.body)["id"];
  auto pty = a.next_of<protocol::Open>(10s);
  ASSERT_TRUE(pty);
  ASSERT_TRUE(a.send(protocol::ErrorFrame{pty->channel, "spawn_failed", "cannot exec \xff\xfe"}));
  ASSERT_TRUE(eventually([&] { return json::parse(hub.api("GET", "/api/v1/terminals/" + id).body, nullptr, false)
                                          .value("status", "") == "lost"; }, 10s))
      << hub.log();
  auto t = hub.api("GET", "/api/v1/terminals/" + id);
  ASSERT_EQ(t.status, 200) << t.body;
  EXPECT_NE(json::parse(t.body).value("reason", "").find("cannot exec"), std::string::npos) << t.body;
  ASSERT_EQ(hub.api("GET", "/api/v1/terminals").status, 200);

  // An EXIT whose signal name is not UTF-8 is a malformed frame: that agent's link closes (4400),
  // nobody else's.
  auto second = hub.api("POST", "/api/v1/terminals", R"({"kind": "agent", "agent": "fake-errors"})");
  ASSERT_EQ(second.status, 201) << second.body;
  auto pty2 = a.next_of<protocol::Open>(10s);
  ASSERT_TRUE(pty2);
  ASSERT_TRUE(a.send(protocol::Opened{pty2->channel, 4242}));
  ASSERT_TRUE(a.send(protocol::Exit{pty2->channel, 130, "INT\xff"}));
  EXPECT_FALSE(a.next_of<protocol::Welcome>(5s));  // reads until the hub closes the link
  EXPECT_EQ(a.ws.close_code().value_or(0), 4400) << a.ws.close_reason();
  live.expect_alive();
}

}  // namespace
}  // namespace rx::test
