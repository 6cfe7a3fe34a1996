// Browser sign-in against a real hub: an API token becomes an HttpOnly, SameSite=Strict session
// cookie; the cookie works from the hub's own pages only (Origin checked on anything that
// changes state, WebSockets included); signing out or revoking the token ends the session.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/api_expect.h"
#include "tests/support/hub_fixture.h"

namespace rx::test {
namespace {

using nlohmann::json;

class Sessions : public testing::Test {
 protected:
  HubFixture hub;

  std::string origin() const { return "http://127.0.0.1:" + std::to_string(hub.port()); }

  // Signs in with `token`; the cookie's "name=value" (empty when refused).
  std::string sign_in(const std::string& token, HttpResult* out = nullptr) {
    auto r = http(hub.port(), "POST", "/api/v1/sessions", "", json{{"token", token}}.dump());
    if (out) *out = r;
    if (r.status != 201 || !r.headers.count("set-cookie")) return "";
    std::string c = r.headers.at("set-cookie");
    return c.substr(0, c.find(';'));
  }
  HttpResult with_cookie(const std::string& cookie, const std::string& method, const std::string& path,
                         const std::string& body = "", const std::string& origin_header = "") {
    std::map<std::string, std::string> h{{"Cookie", cookie}};
    if (!origin_header.empty()) h["Origin"] = origin_header;
    return http(hub.port(), method, path, "", body, h);
  }
};

TEST_F(Sessions, SignInSetsAPrivateCookieAndSignOutRevokesIt) {
  HttpResult r;
  std::string cookie = sign_in(hub.admin_token(), &r);
  ASSERT_FALSE(cookie.empty()) << r.status << " " << r.body;
  std::string set = r.headers.at("set-cookie");
  EXPECT_NE(set.find("HttpOnly"), std::string::npos) << set;
  EXPECT_NE(set.find("SameSite=Strict"), std::string::npos) << set;
  EXPECT_NE(set.find("Path=/"), std::string::npos) << set;
  EXPECT_TRUE(cookie.starts_with("rexec_session=rxc_")) << cookie;
  EXPECT_EQ(body(r)["user"]["name"], "admin");
  EXPECT_EQ(r.body.find(hub.admin_token()), std::string::npos) << "the token is never echoed back";

  auto me = with_cookie(cookie, "GET", "/api/v1/sessions/current");
  EXPECT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(body(me)["user"]["name"], "admin");
  EXPECT_GT(body(me)["expires_at"].get<int64_t>(), 0);
  EXPECT_EQ(with_cookie(cookie, "GET", "/api/v1/terminals").status, 200);

  auto out = with_cookie(cookie, "DELETE", "/api/v1/sessions/current", "", origin());
  EXPECT_EQ(out.status, 204) << out.body;
  EXPECT_NE(out.headers["set-cookie"].find("Max-Age=0"), std::string::npos);
  // The hub forgot it: the same cookie, replayed, is refused.
  expect_error(with_cookie(cookie, "GET", "/api/v1/terminals"), 401, "unauthorized");
}

TEST_F(Sessions, CookieChangesStateOnlyFromTheHubsOwnPages) {
  std::string cookie = sign_in(hub.admin_token());
  ASSERT_FALSE(cookie.empty());
  std::string create = R"({"name":"x"})";
  // No Origin (not a browser page of ours), or another site's: refused before anything happens.
  expect_error(with_cookie(cookie, "POST", "/api/v1/tokens", create), 403, "forbidden");
  expect_error(with_cookie(cookie, "POST", "/api/v1/tokens", create, "http://evil.example"), 403, "forbidden");
  expect_error(with_cookie(cookie, "POST", "/api/v1/tokens", create, "http://127.0.0.1:1"), 403, "forbidden");
  EXPECT_EQ(with_cookie(cookie, "POST", "/api/v1/tokens", create, origin()).status, 201);
  // WebSockets too (cross-site WebSocket hijacking).
  WsClient ws;
  HttpResult refusal;
  EXPECT_FALSE(ws.connect(hub.port(), "/api/v1/events", "rexec.events.v1",
                          {{"Cookie", cookie}, {"Origin", "http://evil.example"}}, &refusal));
  EXPECT_EQ(refusal.status, 403) << refusal.body;
  WsClient ok;
  EXPECT_TRUE(ok.connect(hub.port(), "/api/v1/events", "rexec.events.v1", {{"Cookie", cookie}, {"Origin", origin()}}));
}

TEST_F(Sessions, RevokingTheTokenEndsItsSessions) {
  auto made = body(hub.api("POST", "/api/v1/tokens", R"({"name":"browser"})"));
  std::string cookie = sign_in(made["token"]);
  ASSERT_FALSE(cookie.empty());
  EXPECT_EQ(with_cookie(cookie, "GET", "/api/v1/agents").status, 200);
  ASSERT_EQ(hub.api("DELETE", "/api/v1/tokens/" + made["id"].get<std::string>()).status, 200);
  expect_error(with_cookie(cookie, "GET", "/api/v1/agents"), 401, "unauthorized");
}

TEST_F(Sessions, ASessionNeverOutlivesItsToken) {
  auto made = body(hub.api("POST", "/api/v1/tokens", R"({"name":"short","expires_in":120})"));
  ASSERT_TRUE(made["expires_at"].is_number()) << made;
  HttpResult r;
  ASSERT_FALSE(sign_in(made["token"], &r).empty());
  EXPECT_EQ(body(r)["expires_at"], made["expires_at"]);
  std::string set = r.headers["set-cookie"];
  auto age = set.find("Max-Age=");
  ASSERT_NE(age, std::string::npos) << set;
  EXPECT_LE(std::stoll(set.substr(age + 8)), 120) << set;  // the token's 2 minutes, not the session's day
}

TEST_F(Sessions, ReadOnlyTokenGivesAReadOnlySession) {
  auto made = body(hub.api("POST", "/api/v1/tokens", R"({"name":"ro","scopes":["read"]})"));
  std::string cookie = sign_in(made["token"]);
  ASSERT_FALSE(cookie.empty());
  EXPECT_EQ(with_cookie(cookie, "GET", "/api/v1/terminals").status, 200);
  expect_error(with_cookie(cookie, "POST", "/api/v1/agent-enrollments", "{}", origin()), 403, "forbidden");
}

TEST_F(Sessions, BadSignInsAreClearErrors) {
  HttpResult r;
  EXPECT_TRUE(sign_in("rxk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &r).empty());
  expect_error(r, 401, "unauthorized");
  EXPECT_FALSE(r.headers.count("set-cookie"));
  EXPECT_TRUE(sign_in("not-a-token", &r).empty());
  expect_error(r, 401, "unauthorized");
  expect_error(http(hub.port(), "POST", "/api/v1/sessions", "", "{nope"), 400, "bad_json");
  expect_error(http(hub.port(), "POST", "/api/v1/sessions", "", "{}"), 400, "bad_field");
  expect_error(http(hub.port(), "POST", "/api/v1/sessions", "", R"({"token":42})"), 400, "bad_field");
  // Forged, garbage and missing cookies.
  expect_error(with_cookie("rexec_session=rxc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "GET", "/api/v1/agents"), 401,
               "unauthorized");
  expect_error(with_cookie("rexec_session=%00;;==", "GET", "/api/v1/agents"), 401, "unauthorized");
  expect_error(with_cookie("other=1", "GET", "/api/v1/agents"), 401, "unauthorized");
  // Not signed in at all is an answer, not an error; a bad cookie is an error.
  auto anon = http(hub.port(), "GET", "/api/v1/sessions/current");
  EXPECT_EQ(anon.status, 200);
  EXPECT_TRUE(body(anon)["user"].is_null()) << anon.body;
  expect_error(with_cookie("rexec_session=rxc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "GET", "/api/v1/sessions/current"), 401,
               "unauthorized");
  // Neither the token nor the session secret reaches the log.
  std::string cookie = sign_in(hub.admin_token());
  ASSERT_FALSE(cookie.empty());
  (void)with_cookie(cookie, "GET", "/api/v1/agents");
  std::string log = hub.log();
  EXPECT_EQ(log.find(cookie.substr(cookie.find('=') + 1)), std::string::npos);
  EXPECT_EQ(log.find(hub.admin_token()), std::string::npos);
}

}  // namespace
}  // namespace rx::test
