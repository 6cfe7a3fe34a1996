// Finding 7 of issue 13: a terminal create with a 20,000-character env value (or 2,000 env keys),
// or an exec with a 20,000-character argv item, was accepted; its OPEN frame broke the agent
// link's limits, the agent dropped its whole link, and every terminal of that agent went offline.
// Frames are now checked where they are made, and the API refuses such requests with 400
// too_large naming the field and the limit.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "protocol/limits.h"
#include "tests/hostile/hostile_support.h"
#include "tests/support/api_expect.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

void expect_too_large(const HttpResult& r, const std::string& field, const std::string& limit) {
  expect_error(r, 400, "too_large");
  auto message = json::parse(r.body, nullptr, false).value("error", "");
  EXPECT_NE(message.find(field), std::string::npos) << "the error does not name " << field << ": " << message;
  EXPECT_NE(message.find(limit), std::string::npos) << "the error does not give the limit " << limit << ": " << message;
}

TEST(Finding07OversizedOpen, RefusedWith400AndTheAgentStaysUp) {
  HubFixture hub;
  LiveTerminal live(hub);
  std::string big(20000, 'v');
  std::string limit = std::to_string(protocol::kMaxString);

  json env_value{{"kind", "agent"}, {"agent", "live"}, {"env", {{"BIG", big}}}};
  expect_too_large(hub.api("POST", "/api/v1/terminals", env_value.dump()), "env.BIG", limit);

  json many{{"kind", "agent"}, {"agent", "live"}, {"env", json::object()}};
  for (int i = 0; i < 2000; ++i) many["env"]["K" + std::to_string(i)] = "v";
  expect_too_large(hub.api("POST", "/api/v1/terminals", many.dump()), "env", std::to_string(protocol::kMaxElements));

  // Each value under the string limit, together over the frame's: the frame limit is named.
  json together{{"kind", "agent"}, {"agent", "live"}, {"env", json::object()}};
  for (int i = 0; i < 8; ++i) together["env"]["K" + std::to_string(i)] = std::string(15000, 'x');
  expect_too_large(hub.api("POST", "/api/v1/terminals", together.dump()), "env", std::to_string(protocol::kMaxFrameBytes));

  json argv_item{{"targets", {"live"}}, {"argv", {"echo", big}}};
  expect_too_large(hub.api("POST", "/api/v1/exec", argv_item.dump()), "argv[1]", limit);

  json exec_env{{"targets", {"live"}}, {"argv", {"true"}}, {"env", {{"BIG", big}}}};
  expect_too_large(hub.api("POST", "/api/v1/exec", exec_env.dump()), "env.BIG", limit);

  json argv_total{{"targets", {"live"}}, {"argv", json::array()}};
  for (int i = 0; i < 8; ++i) argv_total["argv"].push_back(std::string(15000, 'a'));
  expect_too_large(hub.api("POST", "/api/v1/exec", argv_total.dump()), "argv", std::to_string(protocol::kMaxFrameBytes));

  // Container terminals take env the same way (refused before Docker is asked anything).
  json container{{"kind", "container"}, {"image", "rexec/busybox:latest"}, {"env", {{"BIG", big}}}};
  expect_too_large(hub.api("POST", "/api/v1/terminals", container.dump()), "env.BIG", limit);

  // Nothing reached the agent: its link never dropped, the live terminal echoes.
  EXPECT_EQ(live.agent().log().find("event=link.down"), std::string::npos) << live.agent().log();
  live.expect_alive();
  // And a request just under the limits works.
  json fits{{"kind", "agent"}, {"agent", "live"}, {"env", {{"OK", std::string(protocol::kMaxString - 100, 'o')}}}};
  EXPECT_EQ(hub.api("POST", "/api/v1/terminals", fits.dump()).status, 201);
  live.expect_alive();
}

}  // namespace
}  // namespace rx::test
