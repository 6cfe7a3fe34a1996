// A thin RAII layer over the SQLite C API: Db owns a connection, Stmt a prepared statement.
// Errors come back as rx::Error (code "store_error", or "store_busy" when the database stayed
// locked past the busy timeout), never as exceptions.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/error.h"

namespace rx::hub {

class Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  Stmt(Stmt&& o) noexcept : db_(o.db_), s_(o.s_) { o.s_ = nullptr; }
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
};

class Db {
 public:
  // Opens (creating) the file with WAL, foreign keys on, and a busy timeout.
  static Result<Db> open(const std::string& path, int busy_timeout_ms = 5000);
  Db(Db&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
  Db& operator=(Db&&) = delete;
  Db(const Db&) = delete;
  ~Db() { sqlite3_close_v2(db_); }

  Result<Stmt> prepare(std::string_view sql);
  Status exec(const std::string& sql);  // one or more statements, no results
  int64_t changes() const { return sqlite3_changes64(db_); }
  sqlite3* raw() const { return db_; }

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

Error sqlite_error(sqlite3* db, int rc, std::string_view what);

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
