// A thin RAII layer over the SQLite C API: Db owns a connection, Stmt a prepared statement.
// Errors come back as rx::Error, never as exceptions: "store_busy" when the database stayed
// locked past the busy timeout, "store_unavailable" when it cannot be written at all (disk full,
// I/O error, read-only file: SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY, SQLITE_CANTOPEN), else
// "store_error". A write that fails as unavailable is remembered (write_failure()) so the health
// check can say so at once.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/error.h"

namespace rx::hub {

// What a connection remembers across statements: the last failure that left it unable to write.
struct DbState {
  std::optional<std::string> write_failure;
};

class Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3* db, sqlite3_stmt* s, DbState* state = nullptr) : db_(db), s_(s), state_(state) {}
  Stmt(Stmt&& o) noexcept : db_(o.db_), s_(o.s_), state_(o.state_) { o.s_ = nullptr; }
  Stmt& operator=(Stmt&& o) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(s_); }

  // Binds by 1-based position. Chainable: db.prepare(...)->bind(1, x).bind(2, y).
  Stmt& bind(int i, std::string_view v);
  Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, std::nullopt_t);
  Stmt& bind(int i, const std::optional<std::string>& v);
  Stmt& bind(int i, const std::optional<int64_t>& v);

  // Steps once: true with a row, false when done; errors as Result.
  Result<bool> step();
  // Runs to completion (for writes).
  Status run();

  int64_t int64(int col) const { return sqlite3_column_int64(s_, col); }
  std::string text(int col) const;
  std::optional<std::string> opt_text(int col) const;
  std::optional<int64_t> opt_int64(int col) const;

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* s_ = nullptr;
  DbState* state_ = nullptr;
};

class Db {
 public:
  // Opens (creating) the file with WAL, foreign keys on, and a busy timeout.
  static Result<Db> open(const std::string& path, int busy_timeout_ms = 5000);
  // How long a call waits for a lock another connection holds before it fails store_busy.
  void set_busy_timeout(int ms);
  Db(Db&& o) noexcept : db_(o.db_), state_(std::move(o.state_)) { o.db_ = nullptr; }
  Db& operator=(Db&&) = delete;
  Db(const Db&) = delete;
  ~Db() { sqlite3_close_v2(db_); }

  Result<Stmt> prepare(std::string_view sql);
  Status exec(const std::string& sql);  // one or more statements, no results
  int64_t changes() const { return sqlite3_changes64(db_); }
  sqlite3* raw() const { return db_; }
  // The message of the last write that failed as store_unavailable, until cleared.
  const std::optional<std::string>& write_failure() const { return state_->write_failure; }
  void clear_write_failure() { state_->write_failure.reset(); }

 private:
  explicit Db(sqlite3* db) : db_(db), state_(std::make_unique<DbState>()) {}
  sqlite3* db_;
  std::unique_ptr<DbState> state_;  // on the heap: statements point at it and Db moves
};

// Returns the error of a Result or Status from the enclosing function.
#define RX_TRY(expr)              \
  do {                            \
    auto _r = (expr);             \
    if (!_r) return _r.error();   \
  } while (0)

// Wraps a multi-statement operation in BEGIN IMMEDIATE ... COMMIT; rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(Db& db) : db_(db) { began_ = db_.exec("BEGIN IMMEDIATE").ok(); }
  ~Transaction() {
    if (began_ && !done_) (void)db_.exec("ROLLBACK");
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  bool began() const { return began_; }
  Status commit() {
    done_ = true;
    return db_.exec("COMMIT");
  }

 private:
  Db& db_;
  bool began_ = false;
  bool done_ = false;
};

// The error for result code `rc` (its store_* code, see above); noted in `state` when it means
// the store cannot be written.
Error sqlite_error(sqlite3* db, int rc, std::string_view what, DbState* state = nullptr);

// Every row of a statement, each turned into a value by `from(stmt)`.
template <typename F>
auto all_rows(Stmt& s, F from) -> Result<std::vector<decltype(from(s))>> {
  std::vector<decltype(from(s))> out;
  for (;;) {
    auto row = s.step();
    if (!row) return row.error();
    if (!*row) return out;
    out.push_back(from(s));
  }
}

// The first row, if any.
template <typename F>
auto one_row(Stmt& s, F from) -> Result<std::optional<decltype(from(s))>> {
  auto row = s.step();
  if (!row) return row.error();
  if (!*row) return std::optional<decltype(from(s))>();
  return std::optional<decltype(from(s))>(from(s));
}

}  // namespace rx::hub
