#include "agent/backoff.h"

#include <algorithm>

namespace rx::agent {

Backoff::ms Backoff::ceiling() const {
  // 2^attempt overflows nothing here: past ~16 doublings the cap has long been reached.
  unsigned shift = std::min(attempt_, 20u);
  return std::min(cap_, ms(base_.count() << shift));
}

Backoff::ms Backoff::next() {
  ms top = ceiling();
  ++attempt_;
  std::uniform_int_distribution<int64_t> pick(0, top.count());
  return ms(pick(rng_));
}

}  // namespace rx::agent
