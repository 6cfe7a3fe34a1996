// AuthFailures: what failed authentications may cost the hub. Every refused credential — an API
// token, a session cookie, a share code, an agent credential or enrollment token — counts
// against its client IP; once an IP has failed `per_minute` times (a token bucket, like
// RateLimiter) its next attempts get 429 before any lookup. And the audit log gets one
// auth.failed row per IP per minute, whose detail counts up ("17 failures in this minute, last:
// ..."), with at most kRowsPerMinute such rows a minute in all (failures beyond go into one
// shared row): a stranger, or many, cannot fill the data disk with refusals.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "hub/base/rate_limit.h"
#include "hub/store/store.h"

namespace rx::hub {

class AuthFailures {
 public:
  static constexpr int kRowsPerMinute = 60;
  // `per_minute` <= 0: no throttle (the audit rows are aggregated all the same).
  AuthFailures(Store& store, int per_minute) : store_(store), limiter_(per_minute) {}

  // Seconds `ip` must wait before it may try a credential again; nullopt: it may now. The unix
  // socket ("unix": the hub's own containers) is never throttled.
  std::optional<int> refused(const std::string& ip);
  // One failure of `ip` at `target` (a path) for `reason`.
  void failed(const std::string& ip, const std::string& target, const std::string& reason, int64_t now);
  int limit() const { return limiter_.limit(); }

 private:
  struct Row {
    int64_t id = 0;
    int64_t count = 0;
  };
  Store& store_;
  RateLimiter limiter_;
  int64_t minute_ = -1;             // the minute the rows below belong to
  std::map<std::string, Row> rows_;  // ip ("" for the shared row) -> its row this minute
};

}  // namespace rx::hub
