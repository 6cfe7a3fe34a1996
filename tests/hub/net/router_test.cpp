// hub/net/router.h: which route a (method, path) reaches, the params it fills, and the two misses
// (404, and 405 with the Allow list) that the API answers as JSON errors.
#include "hub/net/router.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace rx::hub {
namespace {

Request request(std::string method, std::string path) {
  Request r;
  r.method = std::move(method);
  r.path = std::move(path);
  return r;
}

// The routes of a small API, as the hub registers its own.
Router<int> sample() {
  Router<int> router;
  router.add("GET", "/", 1);
  router.add("GET", "/api/v1/terminals", 2);
  router.add("POST", "/api/v1/terminals", 3);
  router.add("GET", "/api/v1/terminals/{id}", 4);
  router.add("DELETE", "/api/v1/terminals/{id}", 5);
  router.add("GET", "/api/v1/terminals/{id}/attach", 6);
  router.add("DELETE", "/api/v1/agents/{id}/grants/{user}", 7);
  return router;
}

// The handler a request reaches, or 0 on a miss.
int reached(const Router<int>& router, const std::string& method, const std::string& path) {
  auto r = request(method, path);
  auto m = router.match(r);
  return m.handler ? *m.handler : 0;
}

TEST(Router, LiteralRoutesMatchExactly) {
  auto router = sample();
  EXPECT_EQ(reached(router, "GET", "/"), 1);
  EXPECT_EQ(reached(router, "GET", "/api/v1/terminals"), 2);
  EXPECT_EQ(reached(router, "POST", "/api/v1/terminals"), 3);
  // "/" is the root only, not a prefix of everything.
  EXPECT_EQ(reached(router, "GET", "/favicon.svg"), 0);
  EXPECT_EQ(reached(router, "GET", "/api/v1/terminal"), 0);
  EXPECT_EQ(reached(router, "GET", "/api/v1/terminalsX"), 0);
}

TEST(Router, ParamsComeFromTheirSegments) {
  auto router = sample();
  auto r = request("GET", "/api/v1/terminals/t_abc");
  auto m = router.match(r);
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(*m.handler, 4);
  ASSERT_TRUE(m.pattern);
  EXPECT_EQ(*m.pattern, "/api/v1/terminals/{id}");
  EXPECT_EQ(r.params, (std::map<std::string, std::string>{{"id", "t_abc"}}));

  r = request("GET", "/api/v1/terminals/t_abc/attach");
  m = router.match(r);
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(*m.handler, 6);
  EXPECT_EQ(r.params["id"], "t_abc");

  r = request("DELETE", "/api/v1/agents/a_1/grants/bob");
  m = router.match(r);
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(*m.handler, 7);
  EXPECT_EQ(r.params, (std::map<std::string, std::string>{{"id", "a_1"}, {"user", "bob"}}));
}

TEST(Router, AParamNeverMatchesAnEmptySegment) {
  auto router = sample();
  EXPECT_EQ(reached(router, "GET", "/api/v1/terminals//attach"), 0);
  EXPECT_EQ(reached(router, "DELETE", "/api/v1/agents//grants/bob"), 0);
  EXPECT_EQ(reached(router, "DELETE", "/api/v1/agents/a_1/grants/"), 0);
  // "/api/v1/terminals/" is not the list (a trailing slash) nor a terminal with an empty id.
  auto r = request("GET", "/api/v1/terminals/");
  auto m = router.match(r);
  EXPECT_FALSE(m.handler);
  EXPECT_EQ(m.error.code, "not_found");
  EXPECT_TRUE(r.params.empty());
}

TEST(Router, TrailingSlashesAndExtraOrMissingSegmentsMiss) {
  auto router = sample();
  EXPECT_EQ(reached(router, "GET", "/api/v1/terminals/t_abc/"), 0);
  EXPECT_EQ(reached(router, "GET", "/api/v1/terminals/t_abc/attach/"), 0);
  EXPECT_EQ(reached(router, "GET", "/api/v1/terminals/t_abc/attach/more"), 0);
  EXPECT_EQ(reached(router, "GET", "/api/v1/terminals/t_abc/detach"), 0);
  EXPECT_EQ(reached(router, "GET", "/api/v1"), 0);
  EXPECT_EQ(reached(router, "GET", ""), 0);
  // A param is one segment: it does not swallow a slash.
  EXPECT_EQ(reached(router, "GET", "/api/v1/terminals/a/b/attach"), 0);
}

TEST(Router, UnknownPathIs404WithoutAllow) {
  auto router = sample();
  auto r = request("GET", "/nowhere");
  auto m = router.match(r);
  EXPECT_FALSE(m.handler);
  EXPECT_FALSE(m.pattern);
  EXPECT_EQ(m.error.code, "not_found");
  EXPECT_EQ(m.error.message, "no route for /nowhere");
  EXPECT_EQ(m.allow, "");
  auto answer = m.refusal();
  EXPECT_EQ(answer.status, 404);
  EXPECT_EQ(nlohmann::json::parse(answer.body)["code"], "not_found");
  EXPECT_TRUE(answer.headers.empty());
}

TEST(Router, KnownPathWithAnotherMethodIs405ListingTheMethodsInOrder) {
  auto router = sample();
  auto r = request("PUT", "/api/v1/terminals/t_abc");
  auto m = router.match(r);
  EXPECT_FALSE(m.handler);
  EXPECT_FALSE(m.pattern);
  EXPECT_EQ(m.error.code, "method_not_allowed");
  EXPECT_EQ(m.error.message, "PUT is not allowed on /api/v1/terminals/t_abc");
  EXPECT_EQ(m.allow, "GET, DELETE");
  auto answer = m.refusal();
  EXPECT_EQ(answer.status, 405);
  EXPECT_EQ(answer.headers, (std::vector<std::pair<std::string, std::string>>{{"Allow", "GET, DELETE"}}));
  // A method is case-sensitive, as HTTP says.
  r = request("get", "/api/v1/terminals");
  m = router.match(r);
  EXPECT_EQ(m.error.code, "method_not_allowed");
  EXPECT_EQ(m.allow, "GET, POST");
}

TEST(Router, RoutesAreListedInTheOrderAdded) {
  auto router = sample();
  std::vector<std::string> listed;
  for (const auto& r : router.routes()) listed.push_back(r.method + " " + r.pattern);
  EXPECT_EQ(listed, (std::vector<std::string>{"GET /", "GET /api/v1/terminals", "POST /api/v1/terminals",
                                              "GET /api/v1/terminals/{id}", "DELETE /api/v1/terminals/{id}",
                                              "GET /api/v1/terminals/{id}/attach",
                                              "DELETE /api/v1/agents/{id}/grants/{user}"}));
}

TEST(Router, TheFirstRouteAddedWinsWhenTwoMatch) {
  // Order decides, not how literal a pattern is: a literal route meant to shadow a param must
  // be added first.
  Router<int> router;
  router.add("GET", "/api/v1/sessions/current", 1);
  router.add("GET", "/api/v1/sessions/{id}", 2);
  EXPECT_EQ(reached(router, "GET", "/api/v1/sessions/current"), 1);
  EXPECT_EQ(reached(router, "GET", "/api/v1/sessions/se_1"), 2);
  Router<int> reversed;
  reversed.add("GET", "/api/v1/sessions/{id}", 2);
  reversed.add("GET", "/api/v1/sessions/current", 1);
  EXPECT_EQ(reached(reversed, "GET", "/api/v1/sessions/current"), 2);
}

TEST(Router, APlaceholderMayEndInALiteralSuffix) {
  Router<int> router;
  router.add("GET", "/api/v1/recordings/{id}.cast", 1);
  router.add("GET", "/api/v1/recordings/{id}", 2);
  auto r = request("GET", "/api/v1/recordings/r_abc.cast");
  auto m = router.match(r);
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(*m.handler, 1);
  EXPECT_EQ(r.params["id"], "r_abc");
  EXPECT_EQ(reached(router, "GET", "/api/v1/recordings/r_abc"), 2);
  // The suffix alone is not a param and a suffix, and another suffix is another id.
  EXPECT_EQ(reached(router, "GET", "/api/v1/recordings/.cast"), 2);
  r = request("GET", "/api/v1/recordings/r_abc.cast.txt");
  m = router.match(r);
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(*m.handler, 2);
  EXPECT_EQ(r.params["id"], "r_abc.cast.txt");
}

}  // namespace
}  // namespace rx::hub
