// Backoff: when to try the hub again. Full jitter (sleep = random(0, min(cap, base * 2^attempt))),
// so a thousand agents cut off by one hub restart do not come back in lockstep. The attempt
// count resets once a link has stayed up long enough to call the hub healthy.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace rx::agent {

class Backoff {
 public:
  using ms = std::chrono::milliseconds;
  explicit Backoff(ms base = ms(500), ms cap = ms(30000), uint64_t seed = std::random_device{}())
      : base_(base), cap_(cap), rng_(seed) {}

  // The delay before the next attempt; counts the attempt.
  ms next();
  // The ceiling next() draws under for the current attempt (for tests and logs).
  ms ceiling() const;
  void reset() { attempt_ = 0; }
  unsigned attempt() const { return attempt_; }

 private:
  ms base_;
  ms cap_;
  unsigned attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace rx::agent
