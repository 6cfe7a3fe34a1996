#include "hub/api/auth_failures.h"

namespace rx::hub {

std::optional<int> AuthFailures::refused(const std::string& ip) {
  if (ip == "unix") return std::nullopt;
  return limiter_.wait(ip);
}

void AuthFailures::failed(const std::string& ip, const std::string& target, const std::string& reason, int64_t now) {
  if (ip != "unix") (void)limiter_.take(ip);
  int64_t minute = now / 60;
  if (minute != minute_) {  // a new minute: new rows (and the old minute's map is forgotten)
    minute_ = minute;
    rows_.clear();
  }
  std::string key = ip;
  if (!rows_.count(key) && rows_.size() >= size_t(kRowsPerMinute)) key = "";  // many sources: one shared row
  Row& row = rows_[key];
  ++row.count;
  std::string detail = std::to_string(row.count) + (row.count == 1 ? " failure" : " failures") +
                       (key.empty() ? " from many addresses" : "") + " in this minute; last: " + reason + " at " +
                       target.substr(0, 256);
  auto entry = audit_entry("anonymous", "auth.failed", target.substr(0, 256), detail, key.empty() ? "*" : ip);
  writes_.write("auth.failed", [id = row.id, entry = std::move(entry)](Store& store) -> Status {
    if (*id != 0) return store.update_audit_detail(*id, entry.detail);
    auto inserted = store.audit(entry);
    if (!inserted) return inserted.error();
    *id = *inserted;
    return Ok{};
  });
}

}  // namespace rx::hub
