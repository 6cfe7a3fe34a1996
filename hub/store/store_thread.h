// StoreThread: a second connection to the store on a thread of its own, for store work the
// loop thread must not wait for. The loop's own connection gives up on a lock after a few
// milliseconds (kLoopWaitMs), so a database locked from outside (a backup, an admin's sqlite3
// shell) answers API writes 503 store_busy instead of freezing every terminal; what must not be
// lost meanwhile (bookkeeping: last-seen times, terminal status, audit lines) waits here for the
// lock instead (WriteBehind), and periodic full reads (the events feed's snapshot) run here too.
// Jobs run one at a time, in the order they were posted; a job's `done` runs afterwards on the
// loop thread, never after the StoreThread is gone. Destroy it on the loop thread, before the
// loop is closed: the destructor finishes the queued jobs (writes are not dropped at shutdown).
#pragma once

#include <uv.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "hub/store/store.h"

namespace rx::hub {

// How long a store call on the loop thread waits for a lock held by someone else. Short: the
// loop also carries every keystroke, and a keystroke's echo must not wait on a backup.
constexpr int kLoopWaitMs = 20;

class StoreThread {
 public:
  using Job = std::function<void(Store&)>;

  StoreThread(uv_loop_t* loop, std::unique_ptr<Store> store);
  ~StoreThread();
  StoreThread(const StoreThread&) = delete;
  StoreThread& operator=(const StoreThread&) = delete;

  // Runs `job` on the store thread with its connection, then `done` on the loop thread.
  void run(Job job, std::function<void()> done = nullptr);
  // Jobs posted and not finished yet (a WriteBehind queues behind them to keep writes in order).
  size_t unfinished() const;
  // True once the destructor began: a job that retries on store_busy gives up after one more try.
  bool stopping() const;

 private:
  // Shared with the uv_async handle, which libuv frees only after its close callback.
  struct Shared {
    mutable std::mutex mutex;
    std::condition_variable wake;
    std::deque<std::pair<Job, std::function<void()>>> jobs;
    std::vector<std::function<void()>> finished;  // `done`s waiting for the loop thread
    size_t unfinished = 0;
    bool stop = false;
    uv_async_t async;
  };
  void work(Store& store);
  static void deliver(uv_async_t* async);

  Shared* shared_;
  std::unique_ptr<Store> store_;
  std::thread thread_;
};

}  // namespace rx::hub
