// StoreThread and WriteBehind: jobs run in order off the loop thread and complete on it; writes
// the loop's connection cannot make (the database is locked) wait on the thread, in order, and
// land once the lock is gone; nothing queued is dropped at shutdown.
#include "hub/store/store_thread.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "hub/base/tokens.h"
#include "hub/store/sqlite_store.h"
#include "hub/store/write_behind.h"

namespace rx::hub {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class StoreThreadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("rexec-store-thread-" + new_id(""));
    fs::create_directories(dir_);
    uv_loop_init(&loop_);
    // The hub's loop has its sockets; here a timer keeps it alive, or uv_run would not poll the
    // StoreThread's (unreferenced) wakeup at all.
    uv_timer_init(&loop_, &keepalive_);
    uv_timer_start(&keepalive_, [](uv_timer_t*) {}, 60000, 60000);
    loop_store_ = open();
    loop_store_->set_busy_timeout(kLoopWaitMs);
    auto u = loop_store_->create_user("ann", false);
    auto a = loop_store_->create_agent(u->id, "box", "cred", "host");
    ASSERT_TRUE(u.ok() && a.ok());
    TerminalRecord t;
    t.id = terminal_ = new_id("t_");
    t.owner_id = u->id;
    t.kind = "agent";
    t.agent_id = a->id;
    t.channel = 1;
    t.status = "running";
    ASSERT_TRUE(loop_store_->create_terminal(t).ok());
  }
  void TearDown() override {
    loop_store_.reset();
    uv_close(reinterpret_cast<uv_handle_t*>(&keepalive_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);  // the closed handles' callbacks
    uv_loop_close(&loop_);
    fs::remove_all(dir_);
  }
  std::unique_ptr<SqliteStore> open() {
    auto s = SqliteStore::open((dir_ / "hub.db").string());
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
    return s.ok() ? std::move(s).value() : nullptr;
  }
  // Turns the loop until `done` holds (at most 10 s).
  bool until(const std::function<bool()>& done) {
    for (auto end = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < end;) {
      uv_run(&loop_, UV_RUN_NOWAIT);
      if (done()) return true;
      std::this_thread::sleep_for(2ms);
    }
    return false;
  }
  // Another connection holding the write lock, as a backup or an sqlite3 shell would.
  Db hold_lock() {
    auto db = Db::open((dir_ / "hub.db").string(), 100);
    EXPECT_TRUE(db.ok());
    EXPECT_TRUE(db->exec("BEGIN EXCLUSIVE").ok());
    return std::move(db).value();
  }
  std::string status() { return (*loop_store_->terminal_by_id(terminal_))->status; }

  fs::path dir_;
  uv_loop_t loop_;
  uv_timer_t keepalive_;
  std::unique_ptr<SqliteStore> loop_store_;
  std::string terminal_;
};

TEST_F(StoreThreadTest, JobsRunInOrderOffTheLoopAndCompleteOnIt) {
  StoreThread thread(&loop_, open());
  auto loop_thread = std::this_thread::get_id();
  std::vector<int> ran, completed;
  std::vector<std::thread::id> ran_on, completed_on;
  for (int i = 0; i < 5; ++i)
    thread.run([&, i](Store&) { ran.push_back(i), ran_on.push_back(std::this_thread::get_id()); },
               [&, i] { completed.push_back(i), completed_on.push_back(std::this_thread::get_id()); });
  ASSERT_TRUE(until([&] { return completed.size() == 5; }));
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(completed, (std::vector<int>{0, 1, 2, 3, 4}));
  for (auto id : ran_on) EXPECT_NE(id, loop_thread);
  for (auto id : completed_on) EXPECT_EQ(id, loop_thread);
  EXPECT_EQ(thread.unfinished(), 0u);
}

TEST_F(StoreThreadTest, WithoutAThreadAWriteIsMadeAtOnce) {
  WriteBehind writes(*loop_store_);
  writes.terminal_status(terminal_, "exited", 3);
  EXPECT_EQ(status(), "exited");
}

TEST_F(StoreThreadTest, WritesTheLockedDatabaseRefusesWaitInOrderAndLandAfter) {
  auto thread = std::make_unique<StoreThread>(&loop_, open());
  WriteBehind writes(*loop_store_);
  writes.use(thread.get());
  auto lock = hold_lock();
  writes.terminal_status(terminal_, "exited", 3);  // the loop's connection gave up: queued
  writes.terminal_status(terminal_, "lost", std::nullopt, "gone");  // queued behind the first
  EXPECT_EQ(thread->unfinished(), 2u);
  EXPECT_EQ(status(), "running");  // readers see the value from before meanwhile
  ASSERT_TRUE(lock.exec("ROLLBACK").ok());
  ASSERT_TRUE(until([&] { return thread->unfinished() == 0; }));
  auto t = *loop_store_->terminal_by_id(terminal_);
  EXPECT_EQ(t->status, "lost");  // the second write landed after the first
  EXPECT_EQ(t->exit_code, 3);
  EXPECT_EQ(t->reason, "gone");
  // With the queue empty, writes are made at once again.
  writes.terminal_status(terminal_, "stopped", std::nullopt);
  EXPECT_EQ(thread->unfinished(), 0u);
  EXPECT_EQ(status(), "stopped");
}

TEST_F(StoreThreadTest, QueuedWritesAreMadeBeforeTheThreadGoes) {
  auto thread = std::make_unique<StoreThread>(&loop_, open());
  WriteBehind writes(*loop_store_);
  writes.use(thread.get());
  {
    auto lock = hold_lock();
    writes.audit(audit_entry("agent:x", "terminal.exit", terminal_, "code=3"));
    ASSERT_EQ(thread->unfinished(), 1u);
    ASSERT_TRUE(lock.exec("ROLLBACK").ok());
  }
  thread.reset();  // without turning the loop: the destructor finishes the queue
  AuditFilter f;
  f.target = terminal_;
  auto entries = loop_store_->list_audit(f);
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ((*entries)[0].detail, "code=3");
}

}  // namespace
}  // namespace rx::hub
