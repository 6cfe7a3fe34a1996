#include "hub/store/store_thread.h"

#include "hub/base/guard.h"

namespace rx::hub {

StoreThread::StoreThread(uv_loop_t* loop, std::unique_ptr<Store> store) : shared_(new Shared), store_(std::move(store)) {
  uv_async_init(loop, &shared_->async, &StoreThread::deliver);
  shared_->async.data = shared_;
  // Pending completions alone must not keep a stopping hub's loop running.
  uv_unref(reinterpret_cast<uv_handle_t*>(&shared_->async));
  thread_ = std::thread([this] { work(*store_); });
}

StoreThread::~StoreThread() {
  {
    std::lock_guard lock(shared_->mutex);
    shared_->stop = true;
  }
  shared_->wake.notify_all();
  thread_.join();  // after the queued jobs: a write posted before shutdown still lands
  {
    std::lock_guard lock(shared_->mutex);
    shared_->finished.clear();  // their owners may be gone: `done` never runs after this
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&shared_->async),
           [](uv_handle_t* h) { delete static_cast<Shared*>(h->data); });
}

void StoreThread::run(Job job, std::function<void()> done) {
  {
    std::lock_guard lock(shared_->mutex);
    shared_->jobs.emplace_back(std::move(job), std::move(done));
    ++shared_->unfinished;
  }
  shared_->wake.notify_one();
}

size_t StoreThread::unfinished() const {
  std::lock_guard lock(shared_->mutex);
  return shared_->unfinished;
}

bool StoreThread::stopping() const {
  std::lock_guard lock(shared_->mutex);
  return shared_->stop;
}

void StoreThread::work(Store& store) {
  std::unique_lock lock(shared_->mutex);
  for (;;) {
    shared_->wake.wait(lock, [this] { return shared_->stop || !shared_->jobs.empty(); });
    if (shared_->jobs.empty()) return;  // stopping, and nothing left to do
    // Not a structured binding: clang 14 (the fuzz build) cannot capture one in a lambda.
    Job job = std::move(shared_->jobs.front().first);
    std::function<void()> done = std::move(shared_->jobs.front().second);
    shared_->jobs.pop_front();
    lock.unlock();
    guarded("store.job", [&] { job(store); });
    lock.lock();
    // Counted as finished only now, so unfinished() covers the job while it runs.
    --shared_->unfinished;
    if (done) shared_->finished.push_back(std::move(done));
    uv_async_send(&shared_->async);  // the one libuv call that is safe from another thread
  }
}

void StoreThread::deliver(uv_async_t* async) {
  auto* shared = static_cast<Shared*>(async->data);
  std::vector<std::function<void()>> finished;
  {
    std::lock_guard lock(shared->mutex);
    finished.swap(shared->finished);
  }
  for (auto& done : finished) guarded("store.done", done);
}

}  // namespace rx::hub
