// hub/api/auth_failures.cpp: per-IP throttling of failed authentications and their aggregated audit
// rows (finding 10 of issue 13), against a real SQLite store.
#include "hub/api/auth_failures.h"

#include <filesystem>

#include <gtest/gtest.h>

#include "hub/base/tokens.h"
#include "hub/store/sqlite_store.h"

namespace rx::hub {
namespace {

class AuthFailuresTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("rexec-authfail-" + new_id(""));
    std::filesystem::create_directories(dir_);
    auto s = SqliteStore::open((dir_ / "hub.db").string());
    ASSERT_TRUE(s.ok());
    store_ = std::move(s).value();
    writes_ = std::make_unique<WriteBehind>(*store_);
  }
  void TearDown() override {
    writes_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::vector<AuditRecord> rows() {
    AuditFilter f;
    f.action = "auth.failed";
    f.limit = 1000;
    return *store_->list_audit(f);
  }
  std::filesystem::path dir_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<WriteBehind> writes_;  // no StoreThread: each write is made at once
};

TEST_F(AuthFailuresTest, ThrottlesAnIpAfterItsAllowance) {
  AuthFailures f(*writes_, 5);
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(f.refused("10.0.0.1")) << i;
    f.failed("10.0.0.1", "/api/v1/agent/connect", "unknown agent credential", 6000);
  }
  auto wait = f.refused("10.0.0.1");
  ASSERT_TRUE(wait);
  EXPECT_GE(*wait, 1);
  EXPECT_FALSE(f.refused("10.0.0.2")) << "another address is not affected";
  EXPECT_FALSE(f.refused("unix")) << "the hub's own containers are never throttled";
}

TEST_F(AuthFailuresTest, OneRowPerIpPerMinuteThatCounts) {
  AuthFailures f(*writes_, 0);
  for (int i = 0; i < 100; ++i) f.failed("10.0.0.1", "/x", "unknown token", 6000 + i % 30);
  f.failed("10.0.0.2", "/y", "expired", 6010);
  auto r = rows();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].ip, "10.0.0.1");
  EXPECT_TRUE(r[0].detail.starts_with("100 failures in this minute; last: unknown token")) << r[0].detail;
  EXPECT_TRUE(r[1].detail.starts_with("1 failure in this minute")) << r[1].detail;
  f.failed("10.0.0.1", "/x", "unknown token", 6060);  // the next minute: a new row
  EXPECT_EQ(rows().size(), 3u);
}

TEST_F(AuthFailuresTest, ManySourcesShareOneRow) {
  AuthFailures f(*writes_, 0);
  for (int i = 0; i < 1000; ++i) f.failed("10.1." + std::to_string(i / 256) + "." + std::to_string(i % 256), "/x", "bad", 6000);
  auto r = rows();
  ASSERT_EQ(r.size(), size_t(AuthFailures::kRowsPerMinute) + 1);
  EXPECT_EQ(r.back().ip, "*");
  EXPECT_TRUE(r.back().detail.starts_with(std::to_string(1000 - AuthFailures::kRowsPerMinute) + " failures from many addresses"))
      << r.back().detail;
}

}  // namespace
}  // namespace rx::hub
