#include "protocol/replay_ring.h"

#include <algorithm>
#include <cstring>

namespace rx::protocol {

ReplayRing::ReplayRing(size_t capacity, uint64_t start) : capacity_(capacity), end_(start) {}

void ReplayRing::grow(size_t needed) {
  if (buf_.size() >= needed) return;
  size_t size = std::max<size_t>(buf_.size(), 4096);
  while (size < needed) size *= 2;
  size = std::min(size, capacity_);
  // Re-linearise: the held bytes move to the front of the new buffer.
  std::vector<uint8_t> bigger(size);
  if (size_ > 0) {
    size_t first = std::min(size_, buf_.size() - head_);
    std::memcpy(bigger.data(), buf_.data() + head_, first);
    std::memcpy(bigger.data() + first, buf_.data(), size_ - first);
  }
  buf_.swap(bigger);
  head_ = 0;
}

void ReplayRing::append(std::span<const uint8_t> bytes) {
  end_ += bytes.size();
  if (capacity_ == 0 || bytes.empty()) return;  // (an empty span may have a null data())
  if (bytes.size() >= capacity_) {
    // Only the last `capacity` bytes can be held.
    grow(capacity_);
    std::memcpy(buf_.data(), bytes.data() + bytes.size() - capacity_, capacity_);
    head_ = 0;
    size_ = capacity_;
    return;
  }
  grow(std::min(capacity_, size_ + bytes.size()));
  size_t cap = buf_.size();
  // Drop the oldest bytes the new ones do not leave room for.
  size_t overflow = size_ + bytes.size() > cap ? size_ + bytes.size() - cap : 0;
  head_ = (head_ + overflow) % cap;
  size_ -= overflow;
  size_t tail = (head_ + size_) % cap;
  size_t first = std::min(bytes.size(), cap - tail);
  std::memcpy(buf_.data() + tail, bytes.data(), first);
  if (bytes.size() > first) std::memcpy(buf_.data(), bytes.data() + first, bytes.size() - first);
  size_ += bytes.size();
}

Result<ReplayRing::View> ReplayRing::view(uint64_t from, size_t max) const {
  if (from < start())
    return make_error("offset_gone", "offset " + std::to_string(from) + " is gone; history starts at " +
                                         std::to_string(start()));
  if (from > end_)
    return make_error("offset_ahead", "offset " + std::to_string(from) + " is beyond the end " + std::to_string(end_));
  size_t skip = size_t(from - start());
  size_t n = std::min(max, size_ - skip);
  View v;
  if (n == 0) return v;
  size_t cap = buf_.size();
  size_t pos = (head_ + skip) % cap;
  size_t first = std::min(n, cap - pos);
  v.first = std::span<const uint8_t>(buf_.data() + pos, first);
  if (first < n) v.second = std::span<const uint8_t>(buf_.data(), n - first);
  return v;
}

Result<size_t> ReplayRing::read(uint64_t from, std::span<uint8_t> out) const {
  auto v = view(from, out.size());
  if (!v) return v.error();
  if (!v->first.empty()) std::memcpy(out.data(), v->first.data(), v->first.size());
  if (!v->second.empty()) std::memcpy(out.data() + v->first.size(), v->second.data(), v->second.size());
  return v->size();
}

void ReplayRing::trim(uint64_t offset) {
  if (offset <= start()) return;
  size_t drop = size_t(std::min(offset, end_) - start());
  if (drop == 0) return;
  head_ = (head_ + drop) % buf_.size();
  size_ -= drop;
}

void ReplayRing::reset(uint64_t offset) {
  end_ = offset;
  size_ = 0;
  head_ = 0;
}

}  // namespace rx::protocol
