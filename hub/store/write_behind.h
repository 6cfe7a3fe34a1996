// WriteBehind: the store writes the loop makes as bookkeeping and must not lose, yet must not
// wait for: a terminal's status and exit code, an agent's last HELLO, a GPU lease ended, an
// audit line. Each is tried at once on the loop's connection (which waits at most kLoopWaitMs
// for a lock); when the database is locked (store_busy), or earlier writes are still queued, it
// goes to the StoreThread instead, which waits for the lock and writes in order. So a backup
// holding the database for minutes costs no keystroke and loses no exit code; until the queue
// drains, a reader on the loop may see the value from before.
// Without a StoreThread (tools, unit tests) every write is made at once and a failure is logged.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "hub/store/store.h"
#include "hub/store/store_thread.h"

namespace rx::hub {

class WriteBehind {
 public:
  using Write = std::function<Status(Store&)>;

  explicit WriteBehind(Store& store) : store_(store) {}
  void use(StoreThread* thread) { thread_ = thread; }

  // `what` names the write in the log line if it fails for good ("terminal.status").
  void write(const char* what, Write write);
  // The usual ones, spelled once.
  void audit(AuditRecord entry);
  void terminal_status(const std::string& id, const std::string& status, std::optional<int> exit_code,
                       std::optional<std::string> reason = std::nullopt);

 private:
  Store& store_;
  StoreThread* thread_ = nullptr;
};

}  // namespace rx::hub
