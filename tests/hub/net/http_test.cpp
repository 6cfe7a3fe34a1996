// hub/net/http.cpp: request parsing helpers and the error contract (route matching: router_test.cpp).
#include "hub/net/http.h"

#include <gtest/gtest.h>


namespace rx::hub {
namespace {

TEST(Http, BearerToken) {
  Request r;
  EXPECT_FALSE(r.bearer());
  r.headers["authorization"] = "Bearer rxk_abc";
  EXPECT_EQ(r.bearer(), "rxk_abc");
  r.headers["authorization"] = "bearer rxk_abc  ";
  EXPECT_EQ(r.bearer(), "rxk_abc");
  r.headers["authorization"] = "Basic Zm9vOmJhcg==";
  EXPECT_FALSE(r.bearer());
}

TEST(Http, SameOriginComparesSchemeAndAuthority) {
  Request r;
  r.headers["host"] = "hub.example:8443";
  r.headers["origin"] = "https://hub.example:8443";
  EXPECT_TRUE(r.same_origin("https"));
  EXPECT_FALSE(r.same_origin("http"));
  r.headers["origin"] = "https://hub.example:8443.evil";
  EXPECT_FALSE(r.same_origin("https"));
  r.headers["origin"] = "null";
  EXPECT_FALSE(r.same_origin("https"));
}

TEST(Http, StoreThatCannotWriteSaysWhenToRetry) {
  for (const char* code : {"store_unavailable", "store_busy"}) {
    auto r = error_response(make_error(code, "why"));
    EXPECT_EQ(r.status, 503) << code;
    bool retry = false;
    for (const auto& [k, v] : r.headers) retry = retry || (k == "Retry-After" && std::stoi(v) > 0);
    EXPECT_TRUE(retry) << code;
  }
  EXPECT_EQ(error_response(make_error("too_large", "env.X: ...")).status, 400);
}

TEST(Http, ErrorResponsesAreJsonWithTheRightStatus) {
  for (auto [code, status] : std::vector<std::pair<std::string, int>>{
           {"bad_json", 400}, {"unauthorized", 401}, {"forbidden", 403}, {"not_found", 404},
           {"method_not_allowed", 405}, {"conflict", 409}, {"body_too_large", 413}, {"rate_limited", 429},
           {"docker_unavailable", 503}, {"something_new", 500}}) {
    auto r = error_response(make_error(code, "why"));
    EXPECT_EQ(r.status, status) << code;
    EXPECT_EQ(r.content_type, "application/json");
    auto j = nlohmann::json::parse(r.body);
    EXPECT_EQ(j, (nlohmann::json{{"error", "why"}, {"code", code}}));
  }
}

TEST(Http, JsonBodies) {
  EXPECT_TRUE(parse_json_object(R"({"kind":"agent"})").ok());
  EXPECT_EQ(parse_json_object("{").error().code, "bad_json");
  EXPECT_EQ(parse_json_object("").error().code, "bad_json");
  EXPECT_EQ(parse_json_object("[1]").error().code, "bad_request");
}

}  // namespace
}  // namespace rx::hub
