// RateLimiter: how many events a key (a token, an IP, a user+terminal) may cause per minute.
// A token bucket per key: `per_minute` tokens, refilled continuously, so a burst of the whole
// allowance is possible and the steady rate is the limit. Idle full buckets are forgotten, so
// memory follows the number of active clients, not every client ever seen.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

namespace rx::hub {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit RateLimiter(int per_minute) : per_minute_(per_minute) {}

  // Takes one event for `key`. nullopt: allowed. Otherwise the whole seconds to wait before the
  // next event would be allowed (for Retry-After). A limit of 0 or less means unlimited.
  std::optional<int> take(const std::string& key, Clock::time_point now = Clock::now());
  // What take() would answer, without taking: for limits on failures, checked before an attempt
  // and taken only when it failed.
  std::optional<int> wait(const std::string& key, Clock::time_point now = Clock::now());
  int limit() const { return per_minute_; }

 private:
  struct Bucket {
    double tokens;
    Clock::time_point at;
  };
  void prune(Clock::time_point now);
  Bucket& refill(const std::string& key, Clock::time_point now);
  int per_minute_;
  std::unordered_map<std::string, Bucket> buckets_;
  Clock::time_point last_prune_{};
};

}  // namespace rx::hub
