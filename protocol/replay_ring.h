// ReplayRing: the last `capacity` bytes of one output stream, addressed by stream offset.
// Owns the history that late viewers and reconnecting peers are replayed from. Appending past
// capacity forgets the oldest bytes; a reader asking for a forgotten offset is told so (and where
// history now starts) instead of silently getting later bytes. Memory grows with use, up to
// capacity, so thousands of idle terminals cost little.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "protocol/error.h"

namespace rx::protocol {

class ReplayRing {
 public:
  // Up to two pieces because the stored bytes may wrap around the end of the buffer.
  struct View {
    std::span<const uint8_t> first;
    std::span<const uint8_t> second;
    size_t size() const { return first.size() + second.size(); }
  };

  // `start` is the offset of the first byte this ring will hold (0 for a new stream).
  explicit ReplayRing(size_t capacity, uint64_t start = 0);

  uint64_t start() const { return end_ - size_; }  // oldest offset still held
  uint64_t end() const { return end_; }            // offset the next appended byte gets
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }

  // Appends bytes at end(); forgets the oldest bytes beyond capacity.
  void append(std::span<const uint8_t> bytes);

  // Up to `max` bytes from `from`, without copying. Errors: "offset_gone" when from < start()
  // (the caller reads start() to resume there), "offset_ahead" when from > end().
  Result<View> view(uint64_t from, size_t max) const;

  // Copies up to out.size() bytes from `from` into out; returns how many. Same errors as view().
  Result<size_t> read(uint64_t from, std::span<uint8_t> out) const;

  // Forgets every byte below `offset` (clamped to [start(), end()]).
  void trim(uint64_t offset);

  // Empties the ring; the next appended byte gets `offset` (a stream resumed after a gap).
  void reset(uint64_t offset);

 private:
  size_t capacity_;
  uint64_t end_;
  size_t size_ = 0;
  size_t head_ = 0;            // index in buf_ of the byte at start()
  std::vector<uint8_t> buf_;   // grows (doubling) up to capacity_
  void grow(size_t needed);
};

}  // namespace rx::protocol
