// hub/fanout/recordings: which recordings retention deletes. Oldest first, never one still being
// written, by age and by the total their files take.
#include "hub/fanout/recordings.h"

#include <gtest/gtest.h>

namespace rx::hub {
namespace {

RetentionEntry entry(std::string id, int64_t started_at, int64_t bytes, bool live = false) {
  RetentionEntry e;
  e.record.id = std::move(id);
  e.record.started_at = started_at;
  e.bytes = bytes;
  e.live = live;
  return e;
}

TEST(Retention, NoLimitsDeleteNothing) {
  EXPECT_TRUE(retention_victims({entry("r_a", 1, 1000), entry("r_b", 2, 1000)}, 0, 0, 1000000).empty());
}

TEST(Retention, OverTheTotalTheOldestGoUntilTheRestFit) {
  // Given newest first, as the store lists them: order comes from started_at, not from the input.
  std::vector<RetentionEntry> all{entry("r_d", 40, 100), entry("r_c", 30, 100), entry("r_b", 20, 100), entry("r_a", 10, 100)};
  EXPECT_EQ(retention_victims(all, 250, 0, 50), (std::vector<std::string>{"r_a", "r_b"}));
  EXPECT_EQ(retention_victims(all, 400, 0, 50), (std::vector<std::string>{})) << "exactly at the limit is within it";
  EXPECT_EQ(retention_victims(all, 399, 0, 50), (std::vector<std::string>{"r_a"}));
}

TEST(Retention, ALiveRecordingIsNeverDeletedButCountsTowardTheTotal) {
  std::vector<RetentionEntry> all{entry("r_a", 10, 300, true), entry("r_b", 20, 100), entry("r_c", 30, 100)};
  // 500 bytes, limit 250: the live oldest stays, so both ended ones go (300 is still over, but nothing else may go).
  EXPECT_EQ(retention_victims(all, 250, 0, 50), (std::vector<std::string>{"r_b", "r_c"}));
  EXPECT_EQ(retention_victims(all, 0, 5, 50), (std::vector<std::string>{"r_b", "r_c"})) << "too old, but the live one stays";
}

TEST(Retention, ByAgeOnlyThoseStartedLongerAgo) {
  std::vector<RetentionEntry> all{entry("r_old", 100, 1), entry("r_edge", 150, 1), entry("r_new", 190, 1)};
  EXPECT_EQ(retention_victims(all, 0, 50, 200), (std::vector<std::string>{"r_old"})) << "started 50 s ago: not older than 50";
}

}  // namespace
}  // namespace rx::hub
