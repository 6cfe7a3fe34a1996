#include "hub/fanout/cast_indexes.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "hub/base/fd.h"

namespace rx::hub {

struct CastIndexes::Job {
  uv_work_t req{};
  CastIndexes* owner;
  std::shared_ptr<bool> alive;
  std::shared_ptr<Entry> entry;
  std::string path;
  Work work;
  Done done;
  Result<std::string> result = make_error("internal", "not run");
};

CastIndexes::CastIndexes(uv_loop_t* loop, Options options) : loop_(loop), options_(options) {}

CastIndexes::~CastIndexes() { *alive_ = false; }

void CastIndexes::index(const std::string& id, const std::string& path, Done done) {
  run(id, path, [](CastIndex& index, int) { return index.index_json(); }, std::move(done));
}

void CastIndexes::segment(const std::string& id, const std::string& path, size_t n, uint64_t to, Done done) {
  run(id, path, [n, to](CastIndex& index, int fd) { return index.segment_json(fd, n, to); }, std::move(done));
}

void CastIndexes::run(const std::string& id, const std::string& path, Work work, Done done) {
  auto& entry = entries_[id];
  if (!entry) entry = std::make_shared<Entry>(options_.segment_bytes);
  entry->used = ++requests_;
  auto* job = new Job{{}, this, alive_, entry, path, std::move(work), std::move(done)};
  job->req.data = job;
  int rc = uv_queue_work(
      loop_, &job->req,
      [](uv_work_t* req) {  // on a pool thread: only the job's own things, and its entry under its lock
        auto* job = static_cast<Job*>(req->data);
        std::lock_guard lock(job->entry->mutex);
        Fd fd(::open(job->path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (fd.get() < 0) {
          job->result = make_error("not_found", std::string("the recording has no file: ") + std::strerror(errno));
          return;
        }
        if (auto s = job->entry->index.extend(fd.get()); !s)
          job->result = s.error();
        else
          job->result = job->work(job->entry->index, fd.get());
        job->entry->memory = job->entry->index.memory();
      },
      [](uv_work_t* req, int status) {  // back on the loop
        std::unique_ptr<Job> job(static_cast<Job*>(req->data));
        if (!*job->alive) return;
        if (status != 0) job->result = make_error("internal", "the recording's index was not built");
        job->owner->evict();
        job->done(std::move(job->result));
      });
  if (rc != 0) {
    std::unique_ptr<Job> failed(job);
    failed->done(make_error("internal", std::string("cannot index the recording: ") + uv_strerror(rc)));
  }
}

void CastIndexes::evict() {
  for (;;) {
    size_t total = 0;
    auto oldest = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      total += it->second->memory;
      if (oldest == entries_.end() || it->second->used < oldest->second->used) oldest = it;
    }
    if (total <= options_.max_bytes || entries_.size() <= 1) return;
    entries_.erase(oldest);
  }
}

}  // namespace rx::hub
