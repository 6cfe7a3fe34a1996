// AuthFailures: what failed authentications may cost the hub. Every refused credential — an API
// token, a session cookie, a share code, an agent credential or enrollment token — counts
// against its client IP; once an IP has failed `per_minute` times (a token bucket, like
// RateLimiter) its next attempts get 429 before any lookup. And the audit log gets one
// auth.failed row per IP per minute, whose detail counts up ("17 failures in this minute, last:
// ..."), with at most kRowsPerMinute such rows a minute in all (failures beyond go into one
// shared row): a stranger, or many, cannot fill the data disk with refusals. The rows are written
// behind (WriteBehind): a refusal is answered at once even while the database is locked.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "hub/base/rate_limit.h"
#include "hub/store/write_behind.h"

namespace rx::hub {

class AuthFailures {
 public:
  static constexpr int kRowsPerMinute = 60;
  // `per_minute` <= 0: no throttle (the audit rows are aggregated all the same).
  AuthFailures(WriteBehind& writes, int per_minute) : writes_(writes), limiter_(per_minute) {}

  // Seconds `ip` must wait before it may try a credential again; nullopt: it may now. The unix
  // socket ("unix": the hub's own containers) is never throttled.
  std::optional<int> refused(const std::string& ip);
  // One failure of `ip` at `target` (a path) for `reason`.
  void failed(const std::string& ip, const std::string& target, const std::string& reason, int64_t now);
  int limit() const { return limiter_.limit(); }

 private:
  struct Row {
    // The audit row's id once inserted, set by the write that inserts it and read by the writes
    // after it (WriteBehind keeps them in order, so no two touch it at once).
    std::shared_ptr<int64_t> id = std::make_shared<int64_t>(0);
    int64_t count = 0;
  };
  WriteBehind& writes_;
  RateLimiter limiter_;
  int64_t minute_ = -1;             // the minute the rows below belong to
  std::map<std::string, Row> rows_;  // ip ("" for the shared row) -> its row this minute
};

}  // namespace rx::hub
