// The recordings' segment indexes (cast_index.h), built and read off the event loop on libuv's
// thread pool, and kept while they fit in a memory bound (least recently used go first), so a
// recording played again, or seeked in, is read once. A recording still being written is
// brought up to date by reading only what was appended since its index was last asked for.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "hub/fanout/cast_index.h"

namespace rx::hub {

class CastIndexes {
 public:
  struct Options {
    size_t max_bytes = size_t(64) << 20;  // held over all indexes (the newest one is kept whatever its size)
    uint64_t segment_bytes = CastIndex::kSegmentBytes;
  };
  using Done = std::function<void(Result<std::string>)>;

  CastIndexes(uv_loop_t* loop, Options options);
  explicit CastIndexes(uv_loop_t* loop) : CastIndexes(loop, Options{}) {}
  ~CastIndexes();
  CastIndexes(const CastIndexes&) = delete;
  CastIndexes& operator=(const CastIndexes&) = delete;

  // The index document of recording `id` (its file at `path`) as the file is now. `done` runs
  // on the loop, never from within this call.
  void index(const std::string& id, const std::string& path, Done done);
  // Segment `n` up to byte `to`, as that index's URL named it.
  void segment(const std::string& id, const std::string& path, size_t n, uint64_t to, Done done);
  // The recording was deleted: its index goes.
  void forget(const std::string& id) { entries_.erase(id); }
  size_t cached() const { return entries_.size(); }

 private:
  struct Entry {
    std::mutex mutex;  // one worker at a time reads or extends it
    CastIndex index;
    uint64_t used = 0;  // when last asked for, in requests (for eviction)
    std::atomic<size_t> memory = 0;  // as the last worker left it
    explicit Entry(uint64_t segment_bytes) : index(segment_bytes) {}
  };
  using Work = std::function<Result<std::string>(CastIndex&, int fd)>;
  struct Job;
  void run(const std::string& id, const std::string& path, Work work, Done done);
  void evict();

  uv_loop_t* loop_;
  Options options_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;
  uint64_t requests_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // false once destroyed: late jobs answer nobody
};

}  // namespace rx::hub
