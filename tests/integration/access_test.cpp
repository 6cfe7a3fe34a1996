// The authorization matrix: every route of the hub against every kind of caller, each cell an
// exact status code. A route added to the hub and not to this table fails the test, so no route
// ships without its access rules being stated and checked.
#include <gtest/gtest.h>
#include <uv.h>

#include <ctime>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "hub/api/api.h"
#include "hub/base/rfc3339.h"
#include "hub/base/tokens.h"
#include "hub/channel/relay.h"
#include "hub/store/sqlite_store.h"
#include "tests/support/api_expect.h"
#include "tests/support/hub_fixture.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

enum Who { kAnonymous, kMalformed, kOwner, kOther, kAdmin, kReadOnly, kRevoked, kExpired, kUse, kView, kWhoCount };
const char* kWhoNames[] = {"anonymous", "malformed", "owner",   "other user",     "admin",
                           "read-only", "revoked",   "expired", "grantee (use)", "grantee (view)"};

// Expected status for the callers that get past authentication; the other four always get 401. A
// public route answers every caller alike: with `owner`'s status. `use` and `view` are users with
// a grant of that role on alice's machine; unset (-1), they fare as `other` does (a grant on a
// machine gives nothing on its owner's tokens, terminals or shares).
struct Expect {
  int owner, other, admin, read_only;
  int use = -1, view = -1;
};

struct Row {
  std::string method;
  std::string pattern;  // as the router spells it
  bool websocket = false;
  bool is_public = false;
  Expect expect;
  // Makes what the call needs (a fresh resource for destructive calls); returns {path, body}.
  std::function<std::pair<std::string, std::string>()> prepare;
};

class AccessMatrix : public testing::Test {
 protected:
  static inline std::unique_ptr<TempDir> downloads;  // --downloads-dir: an amd64 "agent", no arm64
  static inline std::unique_ptr<HubFixture> hub;
  static inline std::string tokens[kWhoCount];
  static inline std::string alice_agent;  // owned by alice (the owner), online
  static inline std::unique_ptr<FakeAgent> alice_link;
  static inline std::string alice_terminal;
  static inline std::string alice_recording;  // alice_terminal's
  // What GET /api/v1/images answers past authentication: 200 with a Docker daemon, else 503.
  static inline int images_status = 0;

  static json call(const std::string& token, const std::string& method, const std::string& path, const std::string& b = "") {
    auto r = http(hub->port(), method, path, token, b);
    return body(r);
  }

  static std::string enroll_as(const std::string& token) {
    auto r = http(hub->port(), "POST", "/api/v1/agent-enrollments", token, "{}");
    EXPECT_EQ(r.status, 201) << r.body;
    return body(r).value("token", "");
  }

  // An agent of alice's that enrolled and left again (a target for DELETE).
  static std::string offline_agent_of_alice(const std::string& name) {
    FakeAgent a;
    EXPECT_TRUE(a.connect(hub->port(), enroll_as(tokens[kOwner]), name));
    auto w = a.hello();
    EXPECT_TRUE(w);
    a.ws.close();
    json list = call(tokens[kOwner], "GET", "/api/v1/agents");  // (a named value: range-for over a temporary's [] dangles)
    for (const auto& ag : list["agents"])
      if (ag["name"] == name) return ag["id"];
    return "";
  }

  static std::string terminal_of_alice() {
    auto r = http(hub->port(), "POST", "/api/v1/terminals", tokens[kOwner], json{{"kind", "agent"}, {"agent", alice_agent}}.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return body(r).value("id", "");
  }

  // The recording of a terminal of alice's (recorded by default).
  static std::string recording_of(const std::string& terminal) {
    json list = call(tokens[kOwner], "GET", "/api/v1/recordings?terminal=" + terminal);
    EXPECT_EQ(list["recordings"].size(), 1u) << list.dump();
    return list["recordings"].empty() ? "" : list["recordings"][0].value("id", "");
  }
  static json recording_share_of_alice() {
    auto r = http(hub->port(), "POST", "/api/v1/recordings/" + alice_recording + "/shares", tokens[kOwner], "{}");
    EXPECT_EQ(r.status, 201) << r.body;
    return body(r);
  }
  // A recording of alice's whose terminal is gone (only such a one can be deleted).
  static std::string ended_recording_of_alice() {
    std::string terminal = terminal_of_alice();
    std::string id = recording_of(terminal);
    EXPECT_EQ(http(hub->port(), "DELETE", "/api/v1/terminals/" + terminal, tokens[kOwner]).status, 200);
    return id;
  }

  static std::string token_of_alice(const std::string& name, const json& extra = json::object()) {
    json req = extra;
    req["name"] = name;
    auto r = http(hub->port(), "POST", "/api/v1/tokens", tokens[kOwner], req.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return body(r).dump();
  }

  // A new user (for grants to be made to and revoked from); its name.
  static std::string new_user() {
    static int n = 0;
    std::string name = "grantee-" + std::to_string(n++);
    EXPECT_EQ(http(hub->port(), "POST", "/api/v1/users", tokens[kAdmin], json{{"name", name}}.dump()).status, 201);
    return name;
  }

  // A reservation of alice's on her machine's GPU 0, in an hour of its own (no two overlap).
  static json reservation_of_alice(const std::string& token = "") {
    auto r = http(hub->port(), "POST", "/api/v1/agents/" + alice_agent + "/reservations",
                  token.empty() ? tokens[kOwner] : token, reservation_body());
    EXPECT_EQ(r.status, 201) << r.body;
    return body(r);
  }
  static std::string reservation_body() {
    static int hour = 1;
    auto at = [](int h) { return hub::format_rfc3339(int64_t(std::time(nullptr)) + int64_t(h) * 3600); };
    int h = hour;
    hour += 2;
    return json{{"gpus", {0}}, {"from", at(h)}, {"until", at(h + 1)}, {"note", "matrix"}}.dump();
  }

  static std::string share_of_alice(const std::string& mode = "view") {
    auto r = http(hub->port(), "POST", "/api/v1/terminals/" + alice_terminal + "/shares", tokens[kOwner],
                  json{{"mode", mode}}.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return r.body;
  }

  static void SetUpTestSuite() {
    downloads = std::make_unique<TempDir>("rexec-access-downloads");
    {
      std::ofstream(*downloads / "rexec-agent-linux-amd64") << "not really an agent";
      std::ofstream(*downloads / "rexec-agent-linux-amd64.sha256") << "0000  rexec-agent-linux-amd64\n";
    }
    auto flags = HubFixture::relaxed_limits();
    flags.insert(flags.end(), {"--downloads-dir", downloads->path()});
    hub = std::make_unique<HubFixture>(flags);
    tokens[kAnonymous] = "";
    tokens[kMalformed] = "rxk_this-is-not-a-token";
    tokens[kAdmin] = hub->admin_token();
    tokens[kOwner] = call(tokens[kAdmin], "POST", "/api/v1/users", R"({"name":"alice"})")["token"];
    tokens[kOther] = call(tokens[kAdmin], "POST", "/api/v1/users", R"({"name":"bob"})")["token"];
    tokens[kReadOnly] = json::parse(token_of_alice("ro", {{"scopes", {"read"}}}))["token"];
    auto revoked = json::parse(token_of_alice("revoked"));
    tokens[kRevoked] = revoked["token"];
    EXPECT_EQ(call(tokens[kOwner], "DELETE", "/api/v1/tokens/" + revoked["id"].get<std::string>())["revoked"], true);
    tokens[kExpired] = json::parse(token_of_alice("expired", {{"expires_in", 1}}))["token"];
    tokens[kUse] = call(tokens[kAdmin], "POST", "/api/v1/users", R"({"name":"carol"})")["token"];
    tokens[kView] = call(tokens[kAdmin], "POST", "/api/v1/users", R"({"name":"dave"})")["token"];
    alice_link = std::make_unique<FakeAgent>();
    alice_link->gpus = {{0, "GPU-0000", "Fake GPU", 1u << 30}, {1, "GPU-1111", "Fake GPU", 1u << 30}};
    ASSERT_TRUE(alice_link->connect(hub->port(), enroll_as(tokens[kOwner]), "alice-box"));
    ASSERT_TRUE(alice_link->hello());
    json list = call(tokens[kOwner], "GET", "/api/v1/agents");
    for (const auto& ag : list["agents"])
      if (ag["name"] == "alice-box") alice_agent = ag["id"];
    ASSERT_FALSE(alice_agent.empty()) << call(tokens[kOwner], "GET", "/api/v1/agents").dump();
    alice_terminal = terminal_of_alice();
    alice_recording = recording_of(alice_terminal);
    for (auto [who, role] : {std::pair{"carol", "use"}, std::pair{"dave", "view"}}) {
      auto g = http(hub->port(), "POST", "/api/v1/agents/" + alice_agent + "/grants", tokens[kOwner],
                    json{{"user", who}, {"role", role}}.dump());
      ASSERT_EQ(g.status, 201) << g.body;
    }
    images_status = http(hub->port(), "GET", "/api/v1/images", tokens[kAdmin]).status;
    ASSERT_TRUE(images_status == 200 || images_status == 503) << images_status;
    std::this_thread::sleep_for(1100ms);  // let the expiring token expire
  }

  static void TearDownTestSuite() {
    alice_link.reset();
    hub.reset();
    downloads.reset();
  }

  // Every route with its access rule.
  static std::vector<Row> table() {
    auto fixed = [](std::string path, std::string b = "") {
      return [path, b] { return std::make_pair(path, b); };
    };
    static int serial = 0;
    return {
        {"GET", "/healthz", false, true, {200, 200, 200, 200}, fixed("/healthz")},
        {"GET", "/metrics", false, false, {403, 403, 200, 403}, fixed("/metrics")},
        {"POST", "/api/v1/agent-enrollments", false, false, {201, 201, 201, 403}, fixed("/api/v1/agent-enrollments", "{}")},
        {"GET", "/api/v1/agents", false, false, {200, 200, 200, 200}, fixed("/api/v1/agents")},
        {"GET", "/api/v1/agents/{id}", false, false, {200, 404, 200, 200, 200, 200},
         [] { return std::make_pair("/api/v1/agents/" + alice_agent, std::string()); }},
        // Grantees may not revoke the machine: 403 (they see it); the one revoked is another machine of alice's
        // they have no grant on, hence 404.
        {"DELETE", "/api/v1/agents/{id}", false, false, {200, 404, 200, 403},
         [] { return std::make_pair("/api/v1/agents/" + offline_agent_of_alice("gone-" + std::to_string(serial++)), std::string()); }},
        {"POST", "/api/v1/terminals", false, false, {201, 404, 201, 403, 201, 403},
         [] { return std::make_pair(std::string("/api/v1/terminals"), json{{"kind", "agent"}, {"agent", alice_agent}}.dump()); }},
        {"GET", "/api/v1/terminals", false, false, {200, 200, 200, 200}, fixed("/api/v1/terminals")},
        {"GET", "/api/v1/terminals/{id}", false, false, {200, 404, 200, 200},
         [] { return std::make_pair("/api/v1/terminals/" + alice_terminal, std::string()); }},
        {"DELETE", "/api/v1/terminals/{id}", false, false, {200, 404, 200, 403},
         [] { return std::make_pair("/api/v1/terminals/" + terminal_of_alice(), std::string()); }},
        // Agent terminals cannot be stopped (409); the point here is who gets that far.
        {"POST", "/api/v1/terminals/{id}/stop", false, false, {409, 404, 409, 403},
         [] { return std::make_pair("/api/v1/terminals/" + alice_terminal + "/stop", std::string()); }},
        {"POST", "/api/v1/terminals/{id}/start", false, false, {409, 404, 409, 403},
         [] { return std::make_pair("/api/v1/terminals/" + alice_terminal + "/start", std::string()); }},
        // Files: a path the hub refuses itself (400), so the fake agent is never asked; the
        // point is who gets that far (write scope, the terminal's owner or an admin).
        {"GET", "/api/v1/terminals/{id}/files", false, false, {400, 404, 400, 403},
         [] { return std::make_pair("/api/v1/terminals/" + alice_terminal + "/files?path=a/../b", std::string()); }},
        {"PUT", "/api/v1/terminals/{id}/files", false, false, {400, 404, 400, 403},
         [] { return std::make_pair("/api/v1/terminals/" + alice_terminal + "/files?path=a/../b", std::string("x")); }},
        {"DELETE", "/api/v1/terminals/{id}/files", false, false, {400, 404, 400, 403},
         [] { return std::make_pair("/api/v1/terminals/" + alice_terminal + "/files?path=a/../b", std::string()); }},
        {"GET", "/api/v1/terminals/{id}/attach", true, false, {101, 404, 101, 101},
         [] { return std::make_pair("/api/v1/terminals/" + alice_terminal + "/attach", std::string()); }},
        {"POST", "/api/v1/exec", false, false, {200, 404, 200, 403, 200, 403},
         [] {
           return std::make_pair(std::string("/api/v1/exec"),
                                 json{{"targets", {alice_agent}}, {"argv", {"true"}}, {"timeout_s", 1}}.dump());
         }},
        {"DELETE", "/api/v1/terminals/{id}/gpus", false, false, {200, 404, 200, 403},
         [] { return std::make_pair("/api/v1/terminals/" + alice_terminal + "/gpus", std::string()); }},
        {"POST", "/api/v1/agents/{id}/grants", false, false, {201, 404, 201, 403, 403, 403},
         [] {
           return std::make_pair("/api/v1/agents/" + alice_agent + "/grants",
                                 json{{"user", new_user()}, {"role", "view"}}.dump());
         }},
        {"GET", "/api/v1/agents/{id}/grants", false, false, {200, 404, 200, 200, 403, 403},
         [] { return std::make_pair("/api/v1/agents/" + alice_agent + "/grants", std::string()); }},
        {"DELETE", "/api/v1/agents/{id}/grants/{user}", false, false, {200, 404, 200, 403, 403, 403},
         [] {
           std::string name = new_user();
           EXPECT_EQ(http(hub->port(), "POST", "/api/v1/agents/" + alice_agent + "/grants", tokens[kOwner],
                          json{{"user", name}, {"role", "use"}}.dump())
                         .status,
                     201);
           return std::make_pair("/api/v1/agents/" + alice_agent + "/grants/" + name, std::string());
         }},
        {"POST", "/api/v1/agents/{id}/reservations", false, false, {201, 404, 201, 403, 201, 403},
         [] { return std::make_pair("/api/v1/agents/" + alice_agent + "/reservations", reservation_body()); }},
        {"GET", "/api/v1/agents/{id}/reservations", false, false, {200, 404, 200, 200, 200, 200},
         [] { return std::make_pair("/api/v1/agents/" + alice_agent + "/reservations", std::string()); }},
        // Only its holder (alice) or an admin may cancel it; carol and dave see it, so 403.
        {"DELETE", "/api/v1/agents/{id}/reservations/{rid}", false, false, {200, 404, 200, 403, 403, 403},
         [] {
           return std::make_pair("/api/v1/agents/" + alice_agent + "/reservations/" +
                                     reservation_of_alice()["id"].get<std::string>(),
                                 std::string());
         }},
        {"GET", "/api/v1/reservations", false, false, {200, 200, 200, 200, 200, 200}, fixed("/api/v1/reservations")},
        {"POST", "/api/v1/tokens", false, false, {201, 201, 201, 403}, fixed("/api/v1/tokens", R"({"name":"x"})")},
        {"GET", "/api/v1/tokens", false, false, {200, 200, 200, 200}, fixed("/api/v1/tokens")},
        {"DELETE", "/api/v1/tokens/{id}", false, false, {200, 404, 200, 403},
         [] {
           return std::make_pair("/api/v1/tokens/" + json::parse(token_of_alice("victim"))["id"].get<std::string>(), std::string());
         }},
        {"POST", "/api/v1/users", false, false, {403, 403, 201, 403},
         [] { return std::make_pair(std::string("/api/v1/users"), json{{"name", "u" + std::to_string(serial++)}}.dump()); }},
        {"GET", "/api/v1/users", false, false, {403, 403, 200, 403}, fixed("/api/v1/users")},
        {"GET", "/api/v1/audit", false, false, {200, 200, 200, 200}, fixed("/api/v1/audit")},
        {"GET", "/api/v1/images", false, false, {images_status, images_status, images_status, images_status},
         fixed("/api/v1/images")},
        {"GET", "/api/v1/recordings", false, false, {200, 200, 200, 200}, fixed("/api/v1/recordings")},
        {"GET", "/api/v1/recordings/{id}.cast", false, false, {200, 404, 200, 200},
         [] { return std::make_pair("/api/v1/recordings/" + alice_recording + ".cast", std::string()); }},
        {"GET", "/api/v1/recordings/{id}", false, false, {200, 404, 200, 200},
         [] { return std::make_pair("/api/v1/recordings/" + alice_recording, std::string()); }},
        {"GET", "/api/v1/recordings/{id}/segments", false, false, {200, 404, 200, 200},
         [] { return std::make_pair("/api/v1/recordings/" + alice_recording + "/segments", std::string()); }},
        {"GET", "/api/v1/recordings/{id}/segments/{n}", false, false, {200, 404, 200, 200},
         [] {  // the URL the index gives (relative to it), which names the segment's end
           json index = call(tokens[kOwner], "GET", "/api/v1/recordings/" + alice_recording + "/segments");
           return std::make_pair("/api/v1/recordings/" + alice_recording + "/" + index["segments"][0]["url"].get<std::string>(),
                                 std::string());
         }},
        {"DELETE", "/api/v1/recordings/{id}", false, false, {200, 404, 200, 403},
         [] { return std::make_pair("/api/v1/recordings/" + ended_recording_of_alice(), std::string()); }},
        {"POST", "/api/v1/recordings/{id}/shares", false, false, {201, 404, 201, 403},
         [] { return std::make_pair("/api/v1/recordings/" + alice_recording + "/shares", std::string("{}")); }},
        {"GET", "/api/v1/recordings/{id}/shares", false, false, {200, 404, 200, 200},
         [] { return std::make_pair("/api/v1/recordings/" + alice_recording + "/shares", std::string()); }},
        {"DELETE", "/api/v1/recording-shares/{id}", false, false, {200, 404, 200, 403},
         [] { return std::make_pair("/api/v1/recording-shares/" + recording_share_of_alice()["id"].get<std::string>(), std::string()); }},
        // Public: the code is the credential (body here; the X-Rexec-Share header for the file).
        {"POST", "/api/v1/recording-shares/lookup", false, true, {200, 200, 200, 200},
         [] { return std::make_pair(std::string("/api/v1/recording-shares/lookup"), json{{"code", recording_share_of_alice()["code"]}}.dump()); }},
        // Public, and without the header every caller gets the same 401: the header is the credential.
        {"GET", "/api/v1/recording-shares/cast", false, true, {401, 401, 401, 401}, fixed("/api/v1/recording-shares/cast")},
        {"GET", "/api/v1/recording-shares/segments", false, true, {401, 401, 401, 401}, fixed("/api/v1/recording-shares/segments")},
        {"GET", "/api/v1/recording-shares/segments/{n}", false, true, {401, 401, 401, 401},
         fixed("/api/v1/recording-shares/segments/0?to=1")},
        {"POST", "/api/v1/terminals/{id}/shares", false, false, {201, 404, 201, 403},
         [] { return std::make_pair("/api/v1/terminals/" + alice_terminal + "/shares", std::string(R"({"mode":"view"})")); }},
        {"GET", "/api/v1/terminals/{id}/shares", false, false, {200, 404, 200, 200},
         [] { return std::make_pair("/api/v1/terminals/" + alice_terminal + "/shares", std::string()); }},
        {"DELETE", "/api/v1/shares/{id}", false, false, {200, 404, 200, 403},
         [] { return std::make_pair("/api/v1/shares/" + json::parse(share_of_alice())["id"].get<std::string>(), std::string()); }},
        // Public: the code in the body is the credential (a share code, not any caller's token).
        {"POST", "/api/v1/shares/lookup", false, true, {200, 200, 200, 200},
         [] { return std::make_pair(std::string("/api/v1/shares/lookup"), json{{"code", json::parse(share_of_alice())["code"]}}.dump()); }},
        // Public: signing in takes the token in the body; whoever calls, a good token gets a session.
        {"POST", "/api/v1/sessions", false, true, {201, 201, 201, 201},
         [] { return std::make_pair(std::string("/api/v1/sessions"), json{{"token", tokens[kReadOnly]}}.dump()); }},
        // Anonymous gets 200 {"user": null} here (signed out is an answer); see the loop.
        {"GET", "/api/v1/sessions/current", false, false, {200, 200, 200, 200}, fixed("/api/v1/sessions/current")},
        {"DELETE", "/api/v1/sessions/current", false, false, {204, 204, 204, 204}, fixed("/api/v1/sessions/current")},
        {"GET", "/api/v1/events", true, false, {101, 101, 101, 101}, fixed("/api/v1/events")},
        // The dashboard's files are public: the page signs in by itself.
        {"GET", "/", false, true, {200, 200, 200, 200}, fixed("/")},
        {"GET", "/login", false, true, {200, 200, 200, 200}, fixed("/login")},
        {"GET", "/t/{id}", false, true, {200, 200, 200, 200}, [] { return std::make_pair("/t/" + alice_terminal, std::string()); }},
        {"GET", "/s/{code}", false, true, {200, 200, 200, 200}, fixed("/s/rxs_anything")},
        {"GET", "/recordings", false, true, {200, 200, 200, 200}, fixed("/recordings")},
        {"GET", "/r/{id}", false, true, {200, 200, 200, 200}, fixed("/r/r_anything")},
        {"GET", "/p/{code}", false, true, {200, 200, 200, 200}, fixed("/p/rxr_anything")},
        {"GET", "/assets/{file}", false, true, {200, 200, 200, 200}, fixed("/assets/app.js")},
        {"GET", "/embed.js", false, true, {200, 200, 200, 200}, fixed("/embed.js")},
        {"GET", "/favicon.svg", false, true, {200, 200, 200, 200}, fixed("/favicon.svg")},
        // The installer and the agents are public: a new machine has no token yet (the enrollment
        // token is given to the agent, never to these routes).
        {"GET", "/install-agent.sh", false, true, {200, 200, 200, 200}, fixed("/install-agent.sh")},
        {"GET", "/downloads/{file}", false, true, {200, 200, 200, 200}, fixed("/downloads/rexec-agent-linux-amd64")},
        // An agent removing itself takes its own credential; no API token, whoever holds it, will do
        // (AgentSelf below: the agent's credential does).
        {"DELETE", "/api/v1/agent/self", false, false, {401, 401, 401, 401}, fixed("/api/v1/agent/self")},
        // API tokens are not agent credentials: nobody in this matrix may open an agent link.
        {"GET", "/api/v1/agent/connect", true, false, {401, 401, 401, 401}, fixed("/api/v1/agent/connect")},
    };
  }

  static int status_of(const Row& row, const std::string& token) {
    auto [path, b] = row.prepare();
    if (!row.websocket) return http(hub->port(), row.method, path, token, b).status;
    WsClient ws;
    HttpResult refusal;
    std::map<std::string, std::string> headers;
    if (!token.empty()) headers["Authorization"] = "Bearer " + token;
    std::string protocol = path == "/api/v1/agent/connect" ? "rexec.agent.v1"
                           : path == "/api/v1/events"      ? "rexec.events.v1"
                                                           : "rexec.term.v1";
    if (ws.connect(hub->port(), path, protocol, headers, &refusal)) return 101;
    return refusal.status;
  }
};

TEST_F(AccessMatrix, EveryRouteAgainstEveryCaller) {
  int cells = 0;
  for (const auto& row : table()) {
    for (int who = 0; who < kWhoCount; ++who) {
      int want = 401;
      if (row.is_public) want = row.expect.owner;
      else if (who == kOwner) want = row.expect.owner;
      else if (who == kOther) want = row.expect.other;
      else if (who == kAdmin) want = row.expect.admin;
      else if (who == kReadOnly) want = row.expect.read_only;
      else if (who == kUse) want = row.expect.use < 0 ? row.expect.other : row.expect.use;
      else if (who == kView) want = row.expect.view < 0 ? row.expect.other : row.expect.view;
      if (who == kAnonymous && row.method == "GET" && row.pattern == "/api/v1/sessions/current") want = 200;
      int got = status_of(row, tokens[who]);
      EXPECT_EQ(got, want) << row.method << " " << row.pattern << " as " << kWhoNames[who];
      ++cells;
    }
  }
  std::printf("access matrix: %d cells\n", cells);
}

TEST_F(AccessMatrix, CoversEveryRouteTheHubHas) {
  auto dir = std::filesystem::temp_directory_path() / ("rexec-access-" + hub::new_id(""));
  std::filesystem::create_directories(dir);
  auto store = hub::SqliteStore::open((dir / "hub.db").string());
  ASSERT_TRUE(store.ok());
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::set<std::string> routes;
  {
    hub::Relay relay(**store, &loop);
    hub::Containers containers(&loop, "/nonexistent/docker.sock", "hub_test", "/nonexistent/rexec-agent", dir.string());
    hub::Api api(**store, relay, hub::HubConfig{}, containers);
    for (const auto& r : api.route_list()) routes.insert(r);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  std::filesystem::remove_all(dir);
  std::set<std::string> covered;
  for (const auto& row : table()) covered.insert(row.method + " " + row.pattern);
  EXPECT_EQ(covered, routes);
}

TEST_F(AccessMatrix, ListsShowOnlyWhatTheCallerOwns) {
  auto agents_of = [](Who who) {
    std::set<std::string> ids;
    json list = call(tokens[who], "GET", "/api/v1/agents");
    for (const auto& a : list["agents"]) ids.insert(a["id"]);
    return ids;
  };
  EXPECT_TRUE(agents_of(kOwner).count(alice_agent));
  EXPECT_TRUE(agents_of(kAdmin).count(alice_agent));
  EXPECT_FALSE(agents_of(kOther).count(alice_agent));
  auto terminals_of = [](Who who) {
    std::set<std::string> ids;
    json list = call(tokens[who], "GET", "/api/v1/terminals");
    for (const auto& t : list["terminals"]) ids.insert(t["id"]);
    return ids;
  };
  EXPECT_TRUE(terminals_of(kOwner).count(alice_terminal));
  EXPECT_FALSE(terminals_of(kOther).count(alice_terminal));
  // Tokens: alice sees hers, never the secrets; bob sees none of hers.
  json alice_tokens = call(tokens[kOwner], "GET", "/api/v1/tokens")["tokens"];
  EXPECT_GE(alice_tokens.size(), 3u);
  for (const auto& t : alice_tokens) EXPECT_FALSE(t.contains("token")) << t;
  std::string alice_user = alice_tokens[0]["user"];
  json bob_tokens = call(tokens[kOther], "GET", "/api/v1/tokens");
  for (const auto& t : bob_tokens["tokens"]) EXPECT_NE(t["user"], alice_user);
  // Audit: bob cannot read alice's entries, even by asking.
  EXPECT_EQ(http(hub->port(), "GET", "/api/v1/audit?actor=" + alice_user, tokens[kOther]).status, 403);
  enroll_as(tokens[kOther]);  // bob does something audited of his own
  json bob_audit = call(tokens[kOther], "GET", "/api/v1/audit");
  EXPECT_FALSE(bob_audit["entries"].empty());
  for (const auto& e : bob_audit["entries"]) EXPECT_NE(e["actor"], alice_user);
}

// A grant shows the machine (with the grantee's access) and nothing of its owner's: not her
// terminals, not her grants list. The owner sees who has which role.
TEST_F(AccessMatrix, GrantsShowTheMachineAndNotItsOwnersTerminals) {
  for (auto [who, role] : {std::pair{kUse, "use"}, std::pair{kView, "view"}}) {
    json list = call(tokens[who], "GET", "/api/v1/agents");
    bool found = false;
    for (const auto& a : list["agents"])
      if (a["id"] == alice_agent) {
        found = true;
        EXPECT_EQ(a["access"], role);
        EXPECT_EQ(a["gpus"].size(), 2u) << a.dump();
      }
    EXPECT_TRUE(found) << kWhoNames[who] << ": " << list.dump();
    json terminals = call(tokens[who], "GET", "/api/v1/terminals");
    for (const auto& t : terminals["terminals"]) EXPECT_NE(t["owner"], call(tokens[kOwner], "GET", "/api/v1/terminals/" + alice_terminal)["owner"]);
  }
  json owner_view = call(tokens[kOwner], "GET", "/api/v1/agents/" + alice_agent);
  EXPECT_EQ(owner_view["access"], "owner");
  EXPECT_EQ(call(tokens[kAdmin], "GET", "/api/v1/agents/" + alice_agent)["access"], "admin");
  std::map<std::string, std::string> roles;
  json grants = call(tokens[kOwner], "GET", "/api/v1/agents/" + alice_agent + "/grants");
  for (const auto& g : grants["grants"]) roles[g["user"]] = g["role"];
  EXPECT_EQ(roles["carol"], "use");
  EXPECT_EQ(roles["dave"], "view");
}

// DELETE /api/v1/agent/self with an agent's own credential: the agent is revoked (its link closed
// with "revoked", gone from the list), the owner's audit log says so, and the credential is dead.
TEST_F(AccessMatrix, AgentSelfRemovesTheCallingAgentOnly) {
  FakeAgent a;
  ASSERT_TRUE(a.connect(hub->port(), enroll_as(tokens[kOwner]), "leaving-box"));
  auto w = a.hello();
  ASSERT_TRUE(w && w->credential);
  std::string id = w->agent_id;
  EXPECT_EQ(http(hub->port(), "GET", "/api/v1/agents/" + id, tokens[kOwner]).status, 200);
  auto r = http(hub->port(), "DELETE", "/api/v1/agent/self", *w->credential);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r)["id"], id);
  EXPECT_EQ(http(hub->port(), "GET", "/api/v1/agents/" + id, tokens[kOwner]).status, 404);
  json list = call(tokens[kOwner], "GET", "/api/v1/agents");
  for (const auto& ag : list["agents"]) EXPECT_NE(ag["id"], id);
  EXPECT_TRUE(call(tokens[kOwner], "GET", "/api/v1/agents/" + alice_agent).contains("id")) << "another agent went too";
  json audit = call(tokens[kOwner], "GET", "/api/v1/audit?target=" + id);
  bool audited = false;
  for (const auto& e : audit["entries"]) audited = audited || e["action"] == "agent.unenroll";
  EXPECT_TRUE(audited) << audit.dump();
  EXPECT_EQ(http(hub->port(), "DELETE", "/api/v1/agent/self", *w->credential).status, 401);
  EXPECT_EQ(http(hub->port(), "DELETE", "/api/v1/agent/self", tokens[kAdmin]).status, 401);
}

TEST_F(AccessMatrix, ReadOnlyViewerCannotTypeAndTokensCannotGrantMoreThanTheyHold) {
  WsClient ws;
  ASSERT_TRUE(ws.connect(hub->port(), "/api/v1/terminals/" + alice_terminal + "/attach", "rexec.term.v1",
                         {{"Authorization", "Bearer " + tokens[kReadOnly]}}));
  ASSERT_TRUE(ws.send_binary({0x01, 'x'}));  // viewer INPUT "x"
  bool refused = false;
  for (int i = 0; i < 20 && !refused; ++i) {
    auto m = ws.receive(1s);
    if (!m) break;
    std::string text(m->data.begin(), m->data.end());
    refused = text.find("read_only") != std::string::npos;
  }
  EXPECT_TRUE(refused) << "a read-only viewer's input must be refused with read_only";
  // alice's own token may not mint an admin token.
  auto r = http(hub->port(), "POST", "/api/v1/tokens", tokens[kOwner], R"({"name":"up","scopes":["admin"]})");
  EXPECT_EQ(r.status, 403) << r.body;
}

}  // namespace
}  // namespace rx::test
