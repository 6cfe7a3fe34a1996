// Checks for API answers shared by the hub's tests: the JSON body, and the error contract
// ({"error": "...", "code": "..."} with the status and content type).
#pragma once

#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "tests/support/ws_client.h"

namespace rx::test {

inline nlohmann::json body(const HttpResult& r) { return nlohmann::json::parse(r.body, nullptr, false); }

inline void expect_error(const HttpResult& r, int status, const std::string& code) {
  EXPECT_EQ(r.status, status) << r.body;
  auto j = body(r);
  ASSERT_TRUE(j.is_object()) << "not JSON: " << r.body;
  EXPECT_EQ(j.value("code", ""), code) << r.body;
  EXPECT_FALSE(j.value("error", "").empty()) << r.body;
  EXPECT_EQ(r.headers.count("content-type") ? r.headers.at("content-type") : "", "application/json");
}

}  // namespace rx::test
