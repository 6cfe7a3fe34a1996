// The hub as a service: the error contract (one test per status), rate limits, /healthz,
// /metrics, the audit log, secrets kept out of logs, `rexec-hub user add`, the config file, and
// what the hub tells systemd. A real rexec-hub process each time.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "hub/store/sqlite.h"
#include "protocol/viewer.h"
#include "tests/support/api_expect.h"
#include "tests/support/hub_fixture.h"
#include "tests/support/notify_socket.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace viewer = protocol::viewer;


std::string make_user(HubFixture& hub, const std::string& name) {
  auto r = hub.api("POST", "/api/v1/users", json{{"name", name}}.dump());
  EXPECT_EQ(r.status, 201) << r.body;
  return body(r).value("token", "");
}

// An online FakeAgent of the admin's, with the id the hub gave it.
std::string online_agent(HubFixture& hub, FakeAgent& agent, const std::string& name, std::string* credential = nullptr) {
  EXPECT_TRUE(agent.connect(hub.port(), hub.enroll(), name));
  auto w = agent.hello();
  EXPECT_TRUE(w && w->credential);
  if (credential && w && w->credential) *credential = *w->credential;
  json list = body(hub.api("GET", "/api/v1/agents"));
  for (const auto& a : list["agents"])
    if (a["name"] == name) return a["id"];
  return "";
}

// The value of the sample whose name-and-labels text is exactly `series`; -1 when absent.
double sample(const std::string& metrics, const std::string& series) {
  std::istringstream in(metrics);
  std::string line;
  while (std::getline(in, line))
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ')
      return std::stod(line.substr(series.size() + 1));
  return -1;
}

// ---- the error contract ---------------------------------------------------------------------

TEST(ErrorContract, StatusesFrom400To413AreJsonWithACode) {
  HubFixture hub;
  const std::string path = "/api/v1/tokens";
  expect_error(hub.api("POST", path, "{\"name\": "), 400, "bad_json");
  auto field = hub.api("POST", path, R"({"name":"x","scopes":["root"]})");
  expect_error(field, 400, "bad_field");
  EXPECT_NE(body(field).value("error", "").find("scopes"), std::string::npos) << "the message names the field";
  expect_error(http(hub.port(), "GET", path), 401, "unauthorized");
  auto ro = body(hub.api("POST", path, R"({"name":"ro","scopes":["read"]})")).value("token", "");
  expect_error(http(hub.port(), "POST", path, ro, R"({"name":"y"})"), 403, "forbidden");
  expect_error(hub.api("DELETE", path + "/tk_nosuchtoken"), 404, "not_found");
  auto put = hub.api("PUT", path, "{}");
  expect_error(put, 405, "method_not_allowed");
  EXPECT_EQ(put.headers["allow"], "POST, GET");
  expect_error(hub.api("POST", "/api/v1/users", R"({"name":"admin"})"), 409, "conflict");
  expect_error(hub.api("POST", path, std::string(1024 * 1024 + 10, ' ')), 413, "body_too_large");
  // The hub survived all of it.
  EXPECT_EQ(hub.api("GET", path).status, 200);
}

TEST(ErrorContract, RequestsOverTheLimitAre429WithRetryAfter) {
  HubFixture hub({"--rate-requests", "5"});
  for (int i = 0; i < 5; ++i) ASSERT_EQ(hub.api("GET", "/api/v1/tokens").status, 200) << i;
  auto r = hub.api("GET", "/api/v1/tokens");
  expect_error(r, 429, "rate_limited");
  ASSERT_TRUE(r.headers.count("retry-after"));
  int wait = std::stoi(r.headers["retry-after"]);
  EXPECT_GE(wait, 1);
  EXPECT_LE(wait, 60);
  EXPECT_EQ(http(hub.port(), "GET", "/healthz").status, 200) << "health checks are never limited";
}

TEST(ErrorContract, ALockedStoreIs503AndHealthSaysWhy) {
  HubFixture hub;
  EXPECT_EQ(http(hub.port(), "GET", "/healthz").status, 200);
  // Another process (a careless backup, say) holds the write lock past the hub's busy timeout.
  auto db = hub::Db::open(hub.data_dir() + "/data/hub.db", 100);
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE(db->exec("BEGIN EXCLUSIVE").ok());
  expect_error(hub.api("POST", "/api/v1/tokens", R"({"name":"during-lock"})"), 503, "store_busy");
  auto health = http(hub.port(), "GET", "/healthz");
  EXPECT_EQ(health.status, 503) << health.body;
  EXPECT_EQ(body(health)["store"]["writable"], false) << health.body;
  ASSERT_TRUE(db->exec("ROLLBACK").ok());
  EXPECT_EQ(http(hub.port(), "GET", "/healthz").status, 200);
  EXPECT_EQ(hub.api("POST", "/api/v1/tokens", R"({"name":"after-lock"})").status, 201);
}

// ---- limits ---------------------------------------------------------------------------------

TEST(Limits, TerminalCreatesAndViewerSocketsAreCapped) {
  HubFixture hub({"--rate-requests", "0", "--rate-terminal-creates", "2", "--viewers-per-terminal", "2"});
  FakeAgent agent;
  auto agent_id = online_agent(hub, agent, "capped");
  auto create = [&] { return hub.api("POST", "/api/v1/terminals", json{{"kind", "agent"}, {"agent", agent_id}}.dump()); };
  auto first = create();
  ASSERT_EQ(first.status, 201) << first.body;
  ASSERT_EQ(create().status, 201);
  auto third = create();
  expect_error(third, 429, "rate_limited");
  EXPECT_TRUE(third.headers.count("retry-after"));

  std::string attach = "/api/v1/terminals/" + body(first).value("id", "") + "/attach";
  std::map<std::string, std::string> auth{{"Authorization", "Bearer " + hub.admin_token()}};
  WsClient v1, v2, v3;
  ASSERT_TRUE(v1.connect(hub.port(), attach, "rexec.term.v1", auth));
  ASSERT_TRUE(v2.connect(hub.port(), attach, "rexec.term.v1", auth));
  HttpResult refusal;
  EXPECT_FALSE(v3.connect(hub.port(), attach, "rexec.term.v1", auth, &refusal));
  expect_error(refusal, 429, "rate_limited");
  // Closing one frees its place.
  v1.close();
  bool again = false;
  for (int i = 0; i < 50 && !again; ++i) {
    WsClient v4;
    again = v4.connect(hub.port(), attach, "rexec.term.v1", auth);
    if (!again) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(again) << "a closed viewer must free its place";

  auto metrics = hub.api("GET", "/metrics").body;
  EXPECT_EQ(sample(metrics, R"(rexec_rate_limited_total{limit="terminal_create"})"), 1) << metrics;
  EXPECT_GE(sample(metrics, R"(rexec_rate_limited_total{limit="viewers_per_terminal"})"), 1) << metrics;
}

// ---- health and metrics ---------------------------------------------------------------------

TEST(Health, ReportsStoreLoopAndDocker) {
  HubFixture hub;
  auto r = http(hub.port(), "GET", "/healthz");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = body(r);
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["store"]["writable"], true);
  EXPECT_EQ(j["loop"]["alive"], true);
  EXPECT_LT(j["loop"]["last_tick_ms_ago"].get<int>(), 5000);
  EXPECT_TRUE(j["docker"]["reachable"].is_boolean()) << "docker is reported either way";
  EXPECT_EQ(j["docker"]["reachable"].get<bool>(), std::filesystem::exists("/var/run/docker.sock") &&
                                                      j["docker"].value("error", "").empty());
}

TEST(Metrics, PrometheusTextWithTheHubsOwnNumbers) {
  HubFixture hub;
  FakeAgent agent;
  auto agent_id = online_agent(hub, agent, "measured");
  auto created = hub.api("POST", "/api/v1/terminals", json{{"kind", "agent"}, {"agent", agent_id}}.dump());
  ASSERT_EQ(created.status, 201);
  auto open = agent.next_of<protocol::Open>();
  ASSERT_TRUE(open);
  agent.send(protocol::Opened{open->channel, 4242});
  agent.send(protocol::Data{open->channel, protocol::Stream::kOutput, 0, std::vector<uint8_t>(1000, 'x')});
  WsClient v;
  ASSERT_TRUE(v.connect(hub.port(), "/api/v1/terminals/" + body(created).value("id", "") + "/attach", "rexec.term.v1",
                        {{"Authorization", "Bearer " + hub.admin_token()}}));
  size_t got = 0;
  while (got < 1000) {
    auto m = v.receive(5s);
    ASSERT_TRUE(m);
    auto d = viewer::decode_server(m->data);
    if (auto* o = d ? std::get_if<viewer::Output>(&*d) : nullptr) got += o->bytes.size();
  }
  ASSERT_TRUE(v.send_binary(viewer::encode_input(std::vector<uint8_t>{'a', 'b', 'c'})));
  ASSERT_TRUE(agent.next_of<protocol::Data>());

  auto r = hub.api("GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "text/plain; version=0.0.4");
  // Every line is a comment or `rexec_name{labels} value`.
  std::regex line_re(R"(^(# (HELP|TYPE) rexec_\w+ .+|rexec_\w+(\{(\w+="[^"]*",?)+\})? -?[0-9.e+]+)$)");
  std::istringstream in(r.body);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    EXPECT_TRUE(std::regex_match(line, line_re)) << line;
    ++lines;
  }
  EXPECT_GT(lines, 20);
  const auto& m = r.body;
  EXPECT_EQ(sample(m, "rexec_agents_online"), 1) << m;
  EXPECT_EQ(sample(m, "rexec_viewers"), 1) << m;
  EXPECT_EQ(sample(m, R"(rexec_relayed_bytes_total{direction="out"})"), 1000) << m;
  EXPECT_EQ(sample(m, R"(rexec_relayed_bytes_total{direction="in"})"), 3) << m;
  EXPECT_EQ(sample(m, R"(rexec_terminals{kind="agent",state="running"})"), 1) << m;
  EXPECT_EQ(sample(m, R"(rexec_http_requests_total{route="/api/v1/terminals",method="POST",code="201"})"), 1) << m;
  EXPECT_GE(sample(m, R"(rexec_http_request_duration_seconds_count{route="/api/v1/agents"})"), 1) << m;
  EXPECT_GE(sample(m, R"(rexec_http_request_duration_seconds_bucket{route="/api/v1/agents",le="+Inf"})"), 1) << m;
  // A frame for a channel that is not open is dropped and counted.
  agent.send(protocol::Data{999, protocol::Stream::kOutput, 0, {'z'}});
  ASSERT_TRUE(agent.next_of<protocol::ErrorFrame>());
  EXPECT_EQ(sample(hub.api("GET", "/metrics").body, "rexec_frames_dropped_total"), 1);
}

// ---- audit and logs -------------------------------------------------------------------------

TEST(Audit, RecordsWhoDidWhatFromWhereAndLogsHoldNoSecret) {
  HubFixture hub;
  std::vector<std::string> secrets{hub.admin_token()};
  secrets.push_back(make_user(hub, "dora"));
  auto minted = body(hub.api("POST", "/api/v1/tokens", R"({"name":"temp"})"));
  secrets.push_back(minted["token"]);
  ASSERT_EQ(hub.api("DELETE", "/api/v1/tokens/" + minted["id"].get<std::string>()).status, 200);
  EXPECT_EQ(http(hub.port(), "GET", "/api/v1/agents", secrets.back()).status, 401);  // revoked
  std::string guessed = "rxk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  secrets.push_back(guessed);
  EXPECT_EQ(http(hub.port(), "GET", "/api/v1/agents", guessed).status, 401);
  FakeAgent agent;
  std::string credential;
  auto agent_id = online_agent(hub, agent, "audited", &credential);
  secrets.push_back(credential);
  auto enrollment = hub.enroll();
  secrets.push_back(enrollment);
  auto created = body(hub.api("POST", "/api/v1/terminals", json{{"kind", "agent"}, {"agent", agent_id}}.dump()));
  std::string term = created["id"];
  {
    WsClient v;
    ASSERT_TRUE(v.connect(hub.port(), "/api/v1/terminals/" + term + "/attach", "rexec.term.v1",
                          {{"Authorization", "Bearer " + hub.admin_token()}}));
    v.close();
  }
  std::thread exec([&] {
    hub.api("POST", "/api/v1/exec", json{{"targets", {agent_id}}, {"argv", {"uname"}}, {"timeout_s", 1}}.dump());
  });
  exec.join();
  ASSERT_EQ(hub.api("DELETE", "/api/v1/terminals/" + term).status, 200);
  ASSERT_EQ(hub.api("DELETE", "/api/v1/agents/" + agent_id).status, 200);

  std::set<std::string> actions;
  json all;
  for (int i = 0; i < 50; ++i) {  // the detach is written when the hub notices the socket closed
    all = body(hub.api("GET", "/api/v1/audit?limit=1000"));
    actions.clear();
    for (const auto& e : all["entries"]) actions.insert(e["action"]);
    if (actions.count("terminal.detach")) break;
    std::this_thread::sleep_for(50ms);
  }
  for (const char* want : {"auth.failed", "user.create", "token.create", "token.revoke", "enrollment.create", "agent.enroll",
                           "agent.revoke", "terminal.create", "terminal.attach", "terminal.detach", "terminal.delete", "exec"})
    EXPECT_TRUE(actions.count(want)) << want << " is not in the audit log: " << all.dump();
  for (const auto& e : all["entries"]) {
    if (e["action"] == "auth.failed") {
      EXPECT_EQ(e["actor"], "anonymous");
    }
    if (e["action"] != "terminal.exit") {
      EXPECT_EQ(e["ip"], "127.0.0.1") << e;
    }
  }
  // Filters: an action prefix, a target, paging.
  json terminal_only = body(hub.api("GET", "/api/v1/audit?action=terminal."));
  EXPECT_GE(terminal_only["entries"].size(), 4u);
  for (const auto& e : terminal_only["entries"]) EXPECT_EQ(e["action"].get<std::string>().rfind("terminal.", 0), 0u) << e;
  json by_target = body(hub.api("GET", "/api/v1/audit?target=" + term));
  for (const auto& e : by_target["entries"]) EXPECT_EQ(e["target"], term);
  json page = body(hub.api("GET", "/api/v1/audit?limit=2"));
  ASSERT_EQ(page["entries"].size(), 2u);
  json next = body(hub.api("GET", "/api/v1/audit?limit=2&since_id=" + std::to_string(page["next_since_id"].get<int64_t>())));
  ASSERT_FALSE(next["entries"].empty());
  EXPECT_GT(next["entries"][0]["id"].get<int64_t>(), page["entries"][1]["id"].get<int64_t>());
  expect_error(hub.api("GET", "/api/v1/audit?limit=0"), 400, "bad_field");
  // A POST without a body is handled once, not twice (lws completes even an empty body).
  json before = body(hub.api("GET", "/api/v1/audit?action=enrollment.create"));
  ASSERT_EQ(hub.api("POST", "/api/v1/agent-enrollments").status, 201);
  json after = body(hub.api("GET", "/api/v1/audit?action=enrollment.create"));
  EXPECT_EQ(after["entries"].size(), before["entries"].size() + 1);

  // Not one secret the hub handed out or was handed is in its log.
  std::string log = hub.log();
  ASSERT_NE(log.find("auth.failed"), std::string::npos) << "the log is being written";
  for (const auto& s : secrets) {
    ASSERT_GT(s.size(), 20u);
    EXPECT_EQ(log.find(s), std::string::npos) << "a secret is in the hub's log: " << s.substr(0, 6) << "...";
    EXPECT_EQ(log.find(s.substr(4)), std::string::npos) << "a secret's body is in the hub's log";
  }
}

// ---- the command line -----------------------------------------------------------------------

std::string last_token_line(const std::string& text) {
  auto pos = text.rfind("rxk_");
  return pos == std::string::npos ? "" : text.substr(pos, text.find('\n', pos) - pos);
}

TEST(HubCommandLine, UserAddAndAConfigFileWithFlagsOverIt) {
  TempDir dir("rexec-hub-cli");
  std::string data = dir / "data";
  auto run = [&](std::vector<std::string> args, int* code) {
    args.insert(args.begin(), binary("hub/rexec-hub"));
    std::string log = dir / "cli.log";
    Process p(args, child_env(), log);
    auto st = p.wait(20s);
    *code = st && WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
    return p.log();
  };
  int code = 0;
  std::string carol = last_token_line(run({"user", "add", "carol", "--data-dir", data}, &code));
  EXPECT_EQ(code, 0);
  ASSERT_FALSE(carol.empty());
  auto dup = run({"user", "add", "carol", "--data-dir", data}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(dup.find("already exists"), std::string::npos) << dup;
  run({"user", "add", "Bad Name", "--data-dir", data}, &code);
  EXPECT_EQ(code, 1);
  std::string root = last_token_line(run({"user", "add", "root", "--admin", "--data-dir", data}, &code));
  ASSERT_FALSE(root.empty());

  int port = free_port();
  std::string conf = dir / "hub.conf";
  std::ofstream(conf) << "# test hub\nlisten = 127.0.0.1:" << port << "\ndata-dir = " << data
                      << "\nrate-requests = 3\nviewers-per-terminal = 1\n";
  {
    Process hub({binary("hub/rexec-hub"), "serve", "--config", conf}, child_env(), dir / "hub1.log");
    ASSERT_TRUE(hub.wait_for_log("event=hub.listening", 20s)) << hub.log();
    EXPECT_EQ(http(port, "GET", "/api/v1/tokens", carol).status, 200);
    EXPECT_EQ(http(port, "GET", "/api/v1/users", carol).status, 403) << "carol is no admin";
    EXPECT_EQ(http(port, "GET", "/api/v1/users", root).status, 200);
    EXPECT_EQ(http(port, "GET", "/api/v1/users", root).status, 429) << "rate-requests = 3 from the file";
  }
  {
    Process hub({binary("hub/rexec-hub"), "serve", "--config", conf, "--rate-requests", "0"}, child_env(), dir / "hub2.log");
    ASSERT_TRUE(hub.wait_for_log("event=hub.listening", 20s)) << hub.log();
    for (int i = 0; i < 10; ++i) ASSERT_EQ(http(port, "GET", "/api/v1/tokens", carol).status, 200) << "the flag wins";
  }
  std::ofstream(conf) << "listen = 127.0.0.1:" << port << "\nrate-requests = lots\n";
  auto bad = run({"serve", "--config", conf, "--data-dir", data}, &code);
  EXPECT_EQ(code, 2);
  EXPECT_NE(bad.find("rate-requests"), std::string::npos) << bad;
}

// A bad value, from a flag or the file, stops the hub before it opens its store or binds a port:
// exit 2, the key and the value named, the data directory never created.
TEST(HubCommandLine, BadValuesExit2BeforeAnythingIsOpened) {
  TempDir dir("rexec-hub-bad-flags");
  std::string data = dir / "data";
  std::string conf = dir / "hub.conf";
  std::ofstream(conf) << "# fine so far\nlisten = h:abc\n";
  struct Case {
    std::vector<std::string> args;
    std::vector<std::string> named;
  };
  std::vector<Case> cases{
      {{"serve", "--listen", "h:abc", "--data-dir", data}, {"--listen", "\"h:abc\""}},
      {{"serve", "--listen", "127.0.0.1:65536", "--data-dir", data}, {"--listen", "65536"}},
      {{"serve", "--rate-requests", "ten", "--data-dir", data}, {"--rate-requests", "\"ten\""}},
      {{"serve", "--colour", "blue", "--data-dir", data}, {"--colour"}},
      {{"serve", "--config", conf, "--data-dir", data}, {conf, "line 2", "listen", "\"h:abc\""}},
      {{"serve", "--listen", "127.0.0.1:0"}, {"--data-dir"}},
      {{"token", "create", "--data-dir", data}, {"--name"}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    auto& c = cases[i];
    c.args.insert(c.args.begin(), binary("hub/rexec-hub"));
    Process p(c.args, child_env(), dir / ("hub" + std::to_string(i) + ".log"));  // one log each: it appends
    auto st = p.wait(20s);
    ASSERT_TRUE(st && WIFEXITED(*st)) << c.args[2];
    EXPECT_EQ(WEXITSTATUS(*st), 2) << p.log();
    for (const auto& part : c.named) EXPECT_NE(p.log().find(part), std::string::npos) << part << " in: " << p.log();
    EXPECT_FALSE(std::filesystem::exists(data)) << "nothing is opened before the flags are checked";
  }
}

TEST(HubCommandLine, TellsSystemdReadyWatchdogAndStopping) {
  TempDir dir("rexec-hub-notify");
  NotifySocket notify(dir / "notify");
  int port = free_port();
  auto env = child_env();
  env["NOTIFY_SOCKET"] = dir / "notify";
  env["WATCHDOG_USEC"] = "400000";
  Process hub({binary("hub/rexec-hub"), "serve", "--listen", "127.0.0.1:" + std::to_string(port), "--data-dir", dir / "data"},
              env, dir / "hub.log");
  ASSERT_TRUE(notify.wait_for("READY=1", 20s)) << hub.log();
  EXPECT_EQ(http(port, "GET", "/healthz").status, 200) << "READY means the listener is up";
  ASSERT_TRUE(notify.wait_for("WATCHDOG=1", 2s));
  notify.messages.clear();
  ASSERT_TRUE(notify.wait_for("WATCHDOG=1", 1s)) << "the watchdog is fed at least every WATCHDOG_USEC/2";
  auto t0 = std::chrono::steady_clock::now();
  hub.signal(SIGTERM);
  EXPECT_TRUE(notify.wait_for("STOPPING=1", 2s));
  auto st = hub.wait(5s);
  ASSERT_TRUE(st) << "the hub did not exit within 5 s of SIGTERM";
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0);
  std::printf("hub stopped %lld ms after SIGTERM\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count()));
}

}  // namespace
}  // namespace rx::test
