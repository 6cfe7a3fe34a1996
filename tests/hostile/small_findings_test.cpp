// Finding 13 of issue 13, the smaller ones outside the HTTP front: replay offsets at or past the
// end of output, NUL inside argv, the Origin check's scheme, viewer resizes, the store's file
// modes, and what a lost terminal tells its viewers.
#include <sys/stat.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "protocol/viewer.h"
#include "tests/hostile/hostile_support.h"
#include "tests/support/api_expect.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

uint64_t output_end(HubFixture& hub, const std::string& id) {
  return json::parse(hub.api("GET", "/api/v1/terminals/" + id).body).value("output_offset", uint64_t(0));
}

// `?since=` at or past the end of output was accepted and then silent; now the viewer is told
// where output ends.
TEST(Finding13Small, SinceAtOrPastTheEndGetsAnAnswer) {
  HubFixture hub;
  LiveTerminal live(hub);
  uint64_t end = output_end(hub, live.id());
  ASSERT_GT(end, 0u);
  for (uint64_t since : {end, end + 1000, uint64_t(UINT64_MAX)}) {
    Viewer v;
    ASSERT_TRUE(v.attach(hub, live.id(), since));
    ASSERT_TRUE(v.until([](const Viewer& x) { return x.event("replay").has_value(); }, 5s))
        << "no replay event for since=" << since;
    auto e = *v.event("replay");
    EXPECT_EQ(e["since"].get<uint64_t>(), since);
    EXPECT_GE(e["end"].get<uint64_t>(), end);
    EXPECT_TRUE(v.output.empty());
  }
  // Inside the ring: the event, then the bytes from there.
  Viewer inside;
  ASSERT_TRUE(inside.attach(hub, live.id(), 1));
  ASSERT_TRUE(inside.until([&](const Viewer& x) { return x.event("replay") && x.next_offset >= end; }, 5s));
  EXPECT_EQ((*inside.event("replay"))["since"], 1);
  live.expect_alive();
}

// A `since` the hub cannot read as an offset is refused before the upgrade, whatever its length.
TEST(Finding13Small, SinceThatIsNoOffsetIs400) {
  HubFixture hub;
  LiveTerminal live(hub);
  for (std::string since : std::vector<std::string>{"abc", "-1", "1e3", "18446744073709551616", std::string(50, '9'), ""}) {
    WsClient ws;
    HttpResult refusal;
    EXPECT_FALSE(ws.connect(hub.port(), "/api/v1/terminals/" + live.id() + "/attach?since=" + since, "rexec.term.v1",
                            {{"Authorization", "Bearer " + hub.admin_token()}}, &refusal))
        << "since=" << since;
    expect_error(refusal, 400, "bad_request");
  }
  live.expect_alive();
}

// 5,000 digits were ignored (the whole ring replayed from 0): libwebsockets dropped a query
// argument over 4 KiB before the hub saw it. The hub's own front hands every argument over.
TEST(Finding13Small, SinceWithThousandsOfDigitsIs400) {
  HubFixture hub;
  LiveTerminal live(hub);
  WsClient ws;
  HttpResult refusal;
  EXPECT_FALSE(ws.connect(hub.port(), "/api/v1/terminals/" + live.id() + "/attach?since=" + std::string(5000, '7'),
                          "rexec.term.v1", {{"Authorization", "Bearer " + hub.admin_token()}}, &refusal));
  expect_error(refusal, 400, "bad_request");
  live.expect_alive();
}

// A NUL inside an argv item (or an env value) was silently cut off by the agent's execve.
TEST(Finding13Small, NulInsideArgvOrEnvIs400) {
  HubFixture hub;
  LiveTerminal live(hub);
  json argv{{"targets", {"live"}}, {"argv", {"echo", std::string("a\0b", 3)}}};
  auto r = hub.api("POST", "/api/v1/exec", argv.dump());
  expect_error(r, 400, "bad_field");
  EXPECT_NE(r.body.find("argv[1]"), std::string::npos) << r.body;
  json program{{"targets", {"live"}}, {"argv", {std::string("/bin/true\0x", 11)}}};
  expect_error(hub.api("POST", "/api/v1/exec", program.dump()), 400, "bad_field");
  json env{{"targets", {"live"}}, {"argv", {"true"}}, {"env", {{"A", std::string("x\0y", 3)}}}};
  auto e = hub.api("POST", "/api/v1/exec", env.dump());
  expect_error(e, 400, "bad_field");
  EXPECT_NE(e.body.find("env.A"), std::string::npos) << e.body;
  json terminal{{"kind", "agent"}, {"agent", "live"}, {"env", {{"A", std::string("x\0y", 3)}}}};
  expect_error(hub.api("POST", "/api/v1/terminals", terminal.dump()), 400, "bad_field");
  live.expect_alive();
}

// The Origin check compared only host:port: https://HUB passed on a plain-HTTP hub (and the
// reverse). A cookie-signed request must come from exactly this hub's origin.
TEST(Finding13Small, OriginCheckComparesTheScheme) {
  HubFixture hub;
  auto signin = hub.api("POST", "/api/v1/sessions", json{{"token", hub.admin_token()}}.dump());
  ASSERT_EQ(signin.status, 201) << signin.body;
  std::string cookie = signin.headers["set-cookie"].substr(0, signin.headers["set-cookie"].find(';'));
  std::string authority = "127.0.0.1:" + std::to_string(hub.port());
  auto post = [&](const std::string& origin) {
    return http(hub.port(), "POST", "/api/v1/tokens", "", R"({"name": "x"})", {{"Cookie", cookie}, {"Origin", origin}});
  };
  expect_error(post("https://" + authority), 403, "forbidden");
  expect_error(post("ws://" + authority), 403, "forbidden");
  expect_error(post("http://" + authority + ".evil"), 403, "forbidden");
  EXPECT_EQ(post("http://" + authority).status, 201);
  // The viewer upgrade by cookie too.
  WsClient ws;
  HttpResult refusal;
  auto created = hub.api("POST", "/api/v1/tokens", R"({"name": "y"})");
  ASSERT_EQ(created.status, 201);
  EXPECT_FALSE(ws.connect(hub.port(), "/api/v1/events", "rexec.events.v1", {{"Cookie", cookie}, {"Origin", "https://" + authority}},
                          &refusal));
  EXPECT_EQ(refusal.status, 403);
  WsClient ok;
  EXPECT_TRUE(ok.connect(hub.port(), "/api/v1/events", "rexec.events.v1", {{"Cookie", cookie}, {"Origin", "http://" + authority}}));
}

// A viewer's resize of 65535x65535 was applied as it was; sizes are clamped to 1..1000 (the range
// POST /api/v1/terminals takes).
TEST(Finding13Small, ViewerResizeIsClamped) {
  HubFixture hub;
  LiveTerminal live(hub);
  Viewer v;
  ASSERT_TRUE(v.attach(hub, live.id()));
  v.resize(65535, 65535);
  v.type("echo SIZE=$(stty size | tr ' ' x)\n");
  EXPECT_TRUE(v.until([](const Viewer& x) { return x.saw("SIZE=1000x1000"); }, 10s)) << v.output;
  v.resize(120, 40);
  v.type("echo SIZE=$(stty size | tr ' ' x)\n");
  EXPECT_TRUE(v.until([](const Viewer& x) { return x.saw("SIZE=40x120"); }, 10s)) << v.output;
  live.expect_alive();
}

// hub.db (and its -wal and -shm) hold token hashes and the audit log: 0600, like admin.token.
TEST(Finding13Small, StoreFilesAreOwnerOnly) {
  HubFixture hub;
  ASSERT_EQ(hub.api("POST", "/api/v1/tokens", R"({"name": "touch"})").status, 201);  // the WAL exists after a write
  for (const char* f : {"hub.db", "hub.db-wal", "hub.db-shm"}) {
    struct stat st {};
    ASSERT_EQ(::stat((hub.data_dir() + "/data/" + f).c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f << " is " << std::oct << (st.st_mode & 0777);
  }
}

// A terminal lost because its agent restarted had no reason, and input sent to it was accepted
// without a word. Now it has a reason, and input to a lost or exited terminal is answered with an
// error event.
TEST(Finding13Small, LostTerminalHasAReasonAndRefusesInput) {
  HubFixture hub;
  LiveTerminal live(hub);
  std::string doomed = create_terminal(hub, "live");
  ASSERT_FALSE(doomed.empty());
  live.agent().kill9();  // its shells die with it
  live.agent().start();
  ASSERT_TRUE(eventually([&] {
    return json::parse(hub.api("GET", "/api/v1/terminals/" + doomed).body, nullptr, false).value("status", "") == "lost";
  }, 20s));
  auto t = json::parse(hub.api("GET", "/api/v1/terminals/" + doomed).body);
  EXPECT_FALSE(t.value("reason", "").empty()) << t.dump();
  Viewer v;
  ASSERT_TRUE(v.attach(hub, doomed));
  v.type("echo hello\n");
  auto refused = [](const Viewer& x) {
    for (const auto& e : x.events)
      if (e["type"] == "error" && e["code"] == "not_running") return true;
    return false;
  };
  EXPECT_TRUE(v.until(refused, 5s)) << "no error event for input to a lost terminal";

  // An exited one the same way.
  std::string ending = create_terminal(hub, "live");
  Viewer w;
  ASSERT_TRUE(w.attach(hub, ending));
  w.type("exit\n");
  ASSERT_TRUE(w.until([](const Viewer& x) { return x.event("exit").has_value(); }, 10s));
  w.type("echo hello\n");
  EXPECT_TRUE(w.until(refused, 5s)) << "no error event for input to an exited terminal";
  // The live terminal's own shell died with the agent too: a new one for the check.
  LiveTerminal again(hub, "live2");
  again.expect_alive();
}

// A connection the hub cuts for misbehaving says why in the hub's log (it used to be dropped
// silently: close_now's reason was unused). Here: a frame a client must never send (unmasked);
// the ordinary end of a well-behaved one is not logged.
TEST(Finding13Small, AConnectionCutForMisbehavingIsLoggedWithWhy) {
  HubFixture hub;
  std::map<std::string, std::string> auth{{"Authorization", "Bearer " + hub.admin_token()}};
  {
    WsClient polite;
    ASSERT_TRUE(polite.connect(hub.port(), "/api/v1/events", "rexec.events.v1", auth));
    ASSERT_TRUE(polite.receive(5s).has_value());  // the snapshot
    polite.close();
  }
  WsClient rude;
  ASSERT_TRUE(rude.connect(hub.port(), "/api/v1/events", "rexec.events.v1", auth));
  // FIN + text, length 2, no mask bit: a protocol error from a client (RFC 6455 5.1).
  ASSERT_TRUE(rude.send_raw({0x81, 0x02, 'h', 'i'}));
  EXPECT_TRUE(eventually([&] { return hub.log().find("why=\"client frames must be masked\"") != std::string::npos; }, 10s))
      << hub.log();
  std::string log = hub.log();
  EXPECT_NE(log.find("event=connection.dropped"), std::string::npos);
  size_t dropped = 0;
  for (size_t at = log.find("event=connection.dropped"); at != std::string::npos;
       at = log.find("event=connection.dropped", at + 1))
    ++dropped;
  EXPECT_EQ(dropped, 1u) << "only the rude connection is news:\n" << log;
}

}  // namespace
}  // namespace rx::test
