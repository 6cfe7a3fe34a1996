// A fresh temporary directory with a real SQLite store file in it, for the store's unit tests.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "hub/base/tokens.h"
#include "hub/store/sqlite_store.h"

namespace rx::hub {

class StoreDirTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("rexec-store-" + new_id(""));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path() const { return (dir_ / "hub.db").string(); }
  // The store at path(), migrated up to `up_to` (-1: the latest); null (and a failed test) if not.
  std::unique_ptr<SqliteStore> open(int up_to = -1) {
    auto s = SqliteStore::open(path(), up_to);
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
    return s.ok() ? std::move(s).value() : nullptr;
  }
  std::filesystem::path dir_;
};

}  // namespace rx::hub
