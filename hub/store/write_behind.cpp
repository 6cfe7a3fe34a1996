#include "hub/store/write_behind.h"

#include <chrono>
#include <thread>

#include "protocol/log_line.h"

namespace rx::hub {
namespace {

void failed(const char* what, const Error& e) {
  log("warn", "store.write_failed", {{"write", what}, {"code", e.code}, {"reason", e.message}});
}

}  // namespace

void WriteBehind::write(const char* what, Write write) {
  if (!thread_ || thread_->unfinished() == 0) {
    auto s = write(store_);
    if (s) return;
    if (!thread_ || s.error().code != "store_busy") return failed(what, s.error());
  }
  thread_->run([what, write = std::move(write), thread = thread_](Store& store) {
    // The thread's connection waits out its own busy timeout per try; a lock held longer than
    // that is waited for again, until the hub stops (then one last try, and a log line if it fails).
    for (;;) {
      auto s = write(store);
      if (s) return;
      if (s.error().code != "store_busy" || thread->stopping()) return failed(what, s.error());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
}

void WriteBehind::audit(AuditRecord entry) {
  write("audit", [entry = std::move(entry)](Store& store) -> Status {
    if (auto id = store.audit(entry); !id) return id.error();
    return Ok{};
  });
}

void WriteBehind::terminal_status(const std::string& id, const std::string& status, std::optional<int> exit_code,
                                  std::optional<std::string> reason) {
  write("terminal.status", [id, status, exit_code, reason = std::move(reason)](Store& store) -> Status {
    auto s = store.update_terminal_status(id, status, exit_code);
    if (!s || !reason) return s;
    return store.update_terminal_reason(id, *reason);
  });
}

}  // namespace rx::hub
