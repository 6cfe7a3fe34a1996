#include "hub/base/rate_limit.h"

#include <cmath>
#include <vector>

namespace rx::hub {

RateLimiter::Bucket& RateLimiter::refill(const std::string& key, Clock::time_point now) {
  prune(now);
  double rate = per_minute_ / 60.0;  // tokens per second
  auto [it, fresh] = buckets_.try_emplace(key, Bucket{double(per_minute_), now});
  Bucket& b = it->second;
  if (!fresh) {
    double elapsed = std::chrono::duration<double>(now - b.at).count();
    b.tokens = std::min(double(per_minute_), b.tokens + elapsed * rate);
    b.at = now;
  }
  return b;
}

std::optional<int> RateLimiter::take(const std::string& key, Clock::time_point now) {
  if (per_minute_ <= 0) return std::nullopt;
  Bucket& b = refill(key, now);
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return std::nullopt;
  }
  return std::max(1, int(std::ceil((1.0 - b.tokens) / (per_minute_ / 60.0))));
}

std::optional<int> RateLimiter::wait(const std::string& key, Clock::time_point now) {
  if (per_minute_ <= 0) return std::nullopt;
  if (!buckets_.count(key)) return std::nullopt;  // never seen: a full bucket (and nothing stored for it)
  Bucket& b = refill(key, now);
  if (b.tokens >= 1.0) return std::nullopt;
  return std::max(1, int(std::ceil((1.0 - b.tokens) / (per_minute_ / 60.0))));
}

void RateLimiter::prune(Clock::time_point now) {
  if (now - last_prune_ < std::chrono::seconds(60)) return;
  last_prune_ = now;
  // A bucket untouched for a minute is full again: forgetting it changes nothing.
  std::vector<std::string> idle;
  for (const auto& [k, b] : buckets_)
    if (now - b.at >= std::chrono::seconds(60)) idle.push_back(k);
  for (const auto& k : idle) buckets_.erase(k);
}

}  // namespace rx::hub
