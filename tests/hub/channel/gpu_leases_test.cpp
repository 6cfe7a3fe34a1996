// hub/gpu_leases: who may have which GPU, against a real SQLite store.
#include "hub/channel/gpu_leases.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "hub/base/tokens.h"
#include "hub/store/sqlite_store.h"

namespace rx::hub {
namespace {

namespace fs = std::filesystem;

class GpuLeasesTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("rexec-gpus-" + new_id(""));
    fs::create_directories(dir_);
    auto s = SqliteStore::open((dir_ / "hub.db").string());
    ASSERT_TRUE(s.ok());
    store_ = std::move(s).value();
    alice_ = *store_->create_user("alice", false);
    bob_ = *store_->create_user("bob", false);
    agent_ = *store_->create_agent(alice_.id, "gpubox", "credhash", "host");
    agent_.host_json = R"({"gpus":[{"index":0,"uuid":"GPU-a"},{"index":1,"uuid":"GPU-b"},{"index":2,"uuid":"GPU-c"}]})";
    ASSERT_TRUE(store_->update_agent_seen(agent_.id, agent_.host_json, "{}", 1));
    leases_ = std::make_unique<GpuLeases>(*store_);
    leases_->set_listener([this](const GpuEvent& e) { events_.push_back(e); });
  }
  void TearDown() override {
    leases_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }
  std::variant<std::vector<uint32_t>, GpuRefusal> choose(const User& u, std::optional<std::vector<uint32_t>> wanted,
                                                         std::optional<uint32_t> count = std::nullopt, int64_t now = 1000) {
    return leases_->choose(agent_, u.id, wanted, count, now);
  }
  static std::string refusal_code(const std::variant<std::vector<uint32_t>, GpuRefusal>& c) {
    auto* r = std::get_if<GpuRefusal>(&c);
    return r ? r->code : "";
  }

  fs::path dir_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<GpuLeases> leases_;
  std::vector<GpuEvent> events_;
  User alice_, bob_;
  AgentRecord agent_;
};

TEST_F(GpuLeasesTest, AHeldGpuIsBusyNamingItsHolderUntilReleased) {
  auto c = choose(bob_, std::vector<uint32_t>{1});
  ASSERT_EQ(std::get<std::vector<uint32_t>>(c), std::vector<uint32_t>{1});
  ASSERT_TRUE(leases_->acquire(agent_.id, {1}, "t_bob", bob_.id, 1000));
  auto again = choose(alice_, std::vector<uint32_t>{1});
  ASSERT_EQ(refusal_code(again), "gpu_busy");
  const auto& r = std::get<GpuRefusal>(again);
  EXPECT_NE(r.message.find("bob"), std::string::npos) << r.message;
  EXPECT_EQ(r.detail["holder"]["user"], "bob");
  EXPECT_EQ(r.detail["holder"]["terminal"], "t_bob");
  EXPECT_EQ(leases_->gpus_of("t_bob"), std::vector<uint32_t>{1});
  leases_->release_holder("t_bob", "exited");
  EXPECT_FALSE(leases_->lease(agent_.id, 1));
  EXPECT_TRUE(std::holds_alternative<std::vector<uint32_t>>(choose(alice_, std::vector<uint32_t>{1})));
  ASSERT_EQ(events_.size(), 2u);
  EXPECT_EQ(events_[0].event, "lease");
  EXPECT_EQ(events_[1].event, "release");
  EXPECT_EQ(events_[1].why, "exited");
  auto rows = store_->list_leases();
  ASSERT_TRUE(rows);
  EXPECT_TRUE(rows->empty());
}

TEST_F(GpuLeasesTest, TheStoreRefusesASecondLeaseOfOneGpuAndTakesNothing) {
  ASSERT_TRUE(leases_->acquire(agent_.id, {1}, "t_bob", bob_.id, 1000));
  // Another hub's map would not know; the store's key still says no, for the whole request.
  GpuLeases other(*store_);
  auto s = other.acquire(agent_.id, {0, 1}, "t_alice", alice_.id, 1000);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, "gpu_busy");
  auto rows = store_->list_leases();
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].holder, "t_bob");
}

TEST_F(GpuLeasesTest, AnotherUsersReservationRefusesTheGpuButNotToItsHolder) {
  ReservationRecord r{new_id("rsv_"), agent_.id, alice_.id, {0}, 900, 2000, "training", 1};
  auto conflict = store_->create_reservation(r);
  ASSERT_TRUE(conflict);
  ASSERT_FALSE(*conflict);
  auto c = choose(bob_, std::vector<uint32_t>{0});
  ASSERT_EQ(refusal_code(c), "gpu_reserved");
  EXPECT_NE(std::get<GpuRefusal>(c).message.find("alice"), std::string::npos);
  EXPECT_EQ(std::get<GpuRefusal>(c).detail["reservation"]["until"], "1970-01-01T00:33:20Z");
  EXPECT_TRUE(std::holds_alternative<std::vector<uint32_t>>(choose(alice_, std::vector<uint32_t>{0})));
  // Outside its time it is anyone's.
  EXPECT_TRUE(std::holds_alternative<std::vector<uint32_t>>(choose(bob_, std::vector<uint32_t>{0}, std::nullopt, 2000)));
  // A count skips it for others.
  auto two = choose(bob_, std::nullopt, 2u);
  EXPECT_EQ(std::get<std::vector<uint32_t>>(two), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(refusal_code(choose(bob_, std::nullopt, 3u)), "gpu_busy");
}

TEST_F(GpuLeasesTest, UnknownIndexesAreRefusedNamingWhatTheMachineHas) {
  auto c = choose(bob_, std::vector<uint32_t>{7});
  ASSERT_EQ(refusal_code(c), "unknown_gpu");
  EXPECT_NE(std::get<GpuRefusal>(c).message.find("0-2"), std::string::npos) << std::get<GpuRefusal>(c).message;
}

TEST_F(GpuLeasesTest, OverlappingReservationsOnASharedGpuConflict) {
  ASSERT_FALSE(*store_->create_reservation({"rsv_1", agent_.id, alice_.id, {0, 1}, 100, 200, "", 1}));
  auto c = store_->create_reservation({"rsv_2", agent_.id, bob_.id, {1}, 150, 250, "", 1});
  ASSERT_TRUE(c);
  ASSERT_TRUE(*c);
  EXPECT_EQ((*c)->id, "rsv_1");
  // Touching ends do not overlap; another GPU does not either.
  EXPECT_FALSE(*store_->create_reservation({"rsv_3", agent_.id, bob_.id, {1}, 200, 300, "", 1}));
  EXPECT_FALSE(*store_->create_reservation({"rsv_4", agent_.id, bob_.id, {2}, 100, 200, "", 1}));
  ReservationFilter by_bob;
  by_bob.user_id = bob_.id;
  EXPECT_EQ(store_->list_reservations(by_bob)->size(), 2u);
  ReservationFilter range;
  range.from = 120;
  range.until = 180;
  auto in_range = store_->list_reservations(range);
  ASSERT_EQ(in_range->size(), 2u);  // rsv_1 and rsv_4
  EXPECT_EQ((*in_range)[0].gpus, (std::vector<uint32_t>{0, 1}));
}

TEST_F(GpuLeasesTest, LoadKeepsLiveHoldersAndDropsTheRest) {
  ASSERT_TRUE(leases_->acquire(agent_.id, {0}, "t_live", bob_.id, 1000));
  ASSERT_TRUE(leases_->acquire(agent_.id, {1}, "t_gone", bob_.id, 1000));
  ASSERT_TRUE(leases_->acquire(agent_.id, {2}, "x_exec", bob_.id, 1000));
  GpuLeases after_restart(*store_);
  ASSERT_TRUE(after_restart.load({"t_live"}));
  ASSERT_TRUE(after_restart.lease(agent_.id, 0));
  EXPECT_EQ(after_restart.lease(agent_.id, 0)->user_id, bob_.id);
  EXPECT_FALSE(after_restart.lease(agent_.id, 1));
  EXPECT_FALSE(after_restart.lease(agent_.id, 2));
  EXPECT_EQ(store_->list_leases()->size(), 1u);
}

TEST_F(GpuLeasesTest, IdleLeasesAreWarnedThenReleasedUnlessTheGpuGetsBusy) {
  leases_->configure_idle(100, 50);
  ASSERT_TRUE(leases_->acquire(agent_.id, {0}, "t_idle", bob_.id, 1000));
  ASSERT_TRUE(leases_->acquire(agent_.id, {1}, "t_busy", bob_.id, 1000));
  protocol::Stats s;
  s.gpus = {{0, 0, 0, 0}, {1, 80, 0, 0}};
  // No sample yet: however long, nothing is idle.
  leases_->tick(5000);
  EXPECT_EQ(events_.size(), 2u);
  // Samples every 10 s: GPU 0 at 0 % from 5010, GPU 1 busy throughout.
  for (int64_t t = 5010; t <= 5110; t += 10) {
    leases_->on_stats(agent_.id, s, t);
    leases_->tick(t);
  }
  ASSERT_EQ(events_.size(), 3u);  // the two leases, then the warning at 5110
  EXPECT_EQ(events_[2].event, "idle_warning");
  EXPECT_EQ(events_[2].holder, "t_idle");
  EXPECT_EQ(leases_->idle_since(agent_.id, 0), 5010);
  EXPECT_FALSE(leases_->idle_since(agent_.id, 1));
  leases_->on_stats(agent_.id, s, 5150);
  leases_->tick(5159);
  EXPECT_TRUE(leases_->lease(agent_.id, 0));
  leases_->tick(5160);
  EXPECT_FALSE(leases_->lease(agent_.id, 0));
  EXPECT_EQ(events_.back().event, "release");
  EXPECT_EQ(events_.back().why, "idle");
  EXPECT_TRUE(leases_->lease(agent_.id, 1));  // busy in every sample: never idle
  // A warned lease whose GPU gets busy is not released; samples that stop do not count as idle.
  s.gpus = {{1, 0, 0, 0}};
  leases_->on_stats(agent_.id, s, 6000);
  leases_->tick(6100);
  EXPECT_EQ(events_.back().event, "release");  // 6000 was its last sample: stale by 6100
  leases_->on_stats(agent_.id, s, 6100);
  leases_->tick(6100);
  EXPECT_EQ(events_.back().event, "idle_warning");
  s.gpus = {{1, 5, 0, 0}};
  leases_->on_stats(agent_.id, s, 6110);
  leases_->tick(6200);
  EXPECT_TRUE(leases_->lease(agent_.id, 1));
}

TEST_F(GpuLeasesTest, TheEnvironmentNamesLeasedGpusByIndexAndUuid) {
  auto m = machine_gpus(agent_);
  auto env = gpu_env(m, {2, 0});
  EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], "2,0");
  EXPECT_EQ(env["NVIDIA_VISIBLE_DEVICES"], "GPU-c,GPU-a");
  EXPECT_EQ(env["CUDA_DEVICE_ORDER"], "PCI_BUS_ID");
  EXPECT_TRUE(gpu_env(m, {}).empty());
  m.lease_required = true;
  auto none = gpu_env(m, {});
  ASSERT_TRUE(none.count("CUDA_VISIBLE_DEVICES"));
  EXPECT_EQ(none["CUDA_VISIBLE_DEVICES"], "");
}

TEST_F(GpuLeasesTest, GrantsAreAddedReplacedListedAndDeleted) {
  ASSERT_TRUE(*store_->put_grant({agent_.id, "user", bob_.id, "view", "", 1, alice_.id}));
  EXPECT_FALSE(*store_->put_grant({agent_.id, "user", bob_.id, "use", "bob", 2, alice_.id}));  // replaced
  auto g = store_->grants_of_user(bob_.id);
  ASSERT_EQ(g->size(), 1u);
  EXPECT_EQ((*g)[0].role, "use");
  EXPECT_EQ((*g)[0].unix_user, "bob");
  EXPECT_EQ(store_->list_grants(agent_.id)->size(), 1u);
  EXPECT_TRUE(*store_->delete_grant(agent_.id, bob_.id));
  EXPECT_FALSE(*store_->delete_grant(agent_.id, bob_.id));
  EXPECT_TRUE(store_->list_grants("")->empty());
}

}  // namespace
}  // namespace rx::hub
