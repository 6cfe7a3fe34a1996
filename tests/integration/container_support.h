// What container tests share: Docker and the images or a clear reason to stop, the hub flags
// that point at the static agent, and small helpers around the API.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/integration/relay_support.h"

namespace rx::test {

std::string static_agent_path();
// `docker ARGS...`: its output, or nullopt when it failed.
std::optional<std::string> docker(std::vector<std::string> args);
// Empty when Docker, the images and the static agent are there; else what is missing.
std::string docker_missing();
std::vector<std::string> container_hub_flags(std::vector<std::string> extra = {});

// Fails (under make test: REXEC_REQUIRE_DOCKER) or skips with the reason.
#define REXEC_REQUIRE_DOCKER_OR_SKIP()                                  \
  do {                                                                  \
    std::string missing_ = ::rx::test::docker_missing();                \
    if (!missing_.empty()) {                                            \
      if (std::getenv("REXEC_REQUIRE_DOCKER")) FAIL() << missing_;      \
      GTEST_SKIP() << missing_;                                         \
    }                                                                   \
  } while (0)

class ContainerTest : public testing::Test {
 protected:
  void SetUp() override { REXEC_REQUIRE_DOCKER_OR_SKIP(); }
  void TearDown() override;
  // POST a container terminal; expects 201 and remembers the id for cleanup.
  std::string create(HubFixture& hub, const nlohmann::json& spec);
  bool wait_status(HubFixture& hub, const std::string& id, const std::string& status,
                   std::chrono::milliseconds timeout = std::chrono::seconds(30));
  nlohmann::json exec(HubFixture& hub, const std::string& id, const std::vector<std::string>& argv);
  // Waits until the hub's container supervisor has completed two more sweeps (its metric): the
  // second began after this call, so it judged the state as it is now. For checks that something
  // did not happen, instead of sleeping past a sweep.
  bool wait_two_sweeps(HubFixture& hub, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  std::vector<std::string> created_;
};

}  // namespace rx::test
