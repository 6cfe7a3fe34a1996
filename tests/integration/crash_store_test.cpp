// kill -9 of the hub in the middle of 1,000 concurrent writes (terminal creates and token
// creates, each with its audit line): the store must open, pass PRAGMA integrity_check, and hold
// every write the hub acknowledged (a 201 means it is on disk, whatever happens next).
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "hub/store/sqlite.h"
#include "tests/support/hub_fixture.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

TEST(CrashStore, Kill9DuringAThousandWritesLosesNoAcknowledgedOne) {
  HubFixture hub;
  FakeAgent agent;  // the terminals' agent: online, it never answers (the rows are what matter)
  ASSERT_TRUE(agent.connect(hub.port(), hub.enroll(), "crashbox"));
  ASSERT_TRUE(agent.hello());
  json list = json::parse(hub.api("GET", "/api/v1/agents").body);
  std::string agent_id = list["agents"][0]["id"];

  constexpr int kWrites = 1000, kThreads = 16, kKillAfter = 400;
  std::atomic<int> next{0}, acked{0};
  std::mutex mu;
  std::vector<std::string> terminals, tokens;
  std::vector<std::thread> workers;
  for (int w = 0; w < kThreads; ++w) {
    workers.emplace_back([&] {
      for (int i = next++; i < kWrites; i = next++) {
        bool terminal = i % 2 == 0;
        auto r = terminal ? hub.api("POST", "/api/v1/terminals", json{{"kind", "agent"}, {"agent", agent_id}}.dump())
                          : hub.api("POST", "/api/v1/tokens", json{{"name", "t" + std::to_string(i)}}.dump());
        if (r.status != 201) continue;  // refused or the hub is gone: not acknowledged
        auto id = json::parse(r.body, nullptr, false).value("id", "");
        std::lock_guard lock(mu);
        (terminal ? terminals : tokens).push_back(id);
        ++acked;
      }
    });
  }
  while (acked < kKillAfter) std::this_thread::sleep_for(1ms);
  hub.kill9();
  for (auto& t : workers) t.join();
  std::printf("crash: %d of %d writes acknowledged before and around the kill (%zu terminals, %zu tokens)\n",
              acked.load(), kWrites, terminals.size(), tokens.size());
  ASSERT_LT(acked.load(), kWrites) << "the kill landed after the last write: nothing was tested";

  {
    auto db = hub::Db::open(hub.data_dir() + "/data/hub.db");
    ASSERT_TRUE(db.ok()) << db.error().message;
    auto check = db->prepare("PRAGMA integrity_check");
    ASSERT_TRUE(check.ok() && *check->step());
    EXPECT_EQ(check->text(0), "ok");
    auto has = [&](const std::string& sql, const std::string& id) {
      auto s = db->prepare(sql);
      if (!s) return false;
      s->bind(1, id);
      auto row = s->step();
      return row.ok() && *row;
    };
    for (const auto& id : terminals) {
      EXPECT_TRUE(has("SELECT 1 FROM terminals WHERE id = ?", id)) << "acknowledged terminal lost: " << id;
      EXPECT_TRUE(has("SELECT 1 FROM audit WHERE action = 'terminal.create' AND target = ?", id)) << id;
    }
    for (const auto& id : tokens) {
      EXPECT_TRUE(has("SELECT 1 FROM tokens WHERE id = ?", id)) << "acknowledged token lost: " << id;
      EXPECT_TRUE(has("SELECT 1 FROM audit WHERE action = 'token.create' AND target = ?", id)) << id;
    }
  }
  // And the hub starts again on it, listing every acknowledged terminal.
  hub.start();
  json after = json::parse(hub.api("GET", "/api/v1/terminals").body);
  std::set<std::string> listed;
  for (const auto& t : after["terminals"]) listed.insert(t["id"]);
  for (const auto& id : terminals) EXPECT_TRUE(listed.count(id)) << id;
}

}  // namespace
}  // namespace rx::test
