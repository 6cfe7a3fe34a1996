#include "hub/store/sqlite.h"

namespace rx::hub {

namespace {

std::string code_of(int rc) {
  switch (rc & 0xff) {  // the primary code of an extended one (SQLITE_IOERR_WRITE -> SQLITE_IOERR)
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return "store_busy";
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
      return "store_unavailable";
    default:
      return "store_error";
  }
}

}  // namespace

Error sqlite_error(sqlite3* db, int rc, std::string_view what, DbState* state) {
  std::string code = code_of(rc);
  std::string message = std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  if (code == "store_unavailable") {
    message = "the store cannot write (" + message + "); free space on the data directory's disk";
    if (state) state->write_failure = message;
  }
  return make_error(code, message);
}

Stmt& Stmt::operator=(Stmt&& o) noexcept {
  if (this != &o) {
    sqlite3_finalize(s_);
    db_ = o.db_;
    s_ = o.s_;
    state_ = o.state_;
    o.s_ = nullptr;
  }
  return *this;
}

Stmt& Stmt::bind(int i, std::string_view v) {
  sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::bind(int i, int64_t v) {
  sqlite3_bind_int64(s_, i, v);
  return *this;
}
Stmt& Stmt::bind(int i, std::nullopt_t) {
  sqlite3_bind_null(s_, i);
  return *this;
}
Stmt& Stmt::bind(int i, const std::optional<std::string>& v) { return v ? bind(i, std::string_view(*v)) : bind(i, std::nullopt); }
Stmt& Stmt::bind(int i, const std::optional<int64_t>& v) { return v ? bind(i, *v) : bind(i, std::nullopt); }

Result<bool> Stmt::step() {
  int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return sqlite_error(db_, rc, "sqlite step", state_);
}

Status Stmt::run() {
  for (;;) {
    auto r = step();
    if (!r) return r.error();
    if (!*r) return Ok{};
  }
}

std::string Stmt::text(int col) const {
  auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
  return p ? std::string(p, size_t(sqlite3_column_bytes(s_, col))) : std::string();
}

std::optional<std::string> Stmt::opt_text(int col) const {
  if (sqlite3_column_type(s_, col) == SQLITE_NULL) return std::nullopt;
  return text(col);
}

std::optional<int64_t> Stmt::opt_int64(int col) const {
  if (sqlite3_column_type(s_, col) == SQLITE_NULL) return std::nullopt;
  return int64(col);
}

Result<Db> Db::open(const std::string& path, int busy_timeout_ms) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  Db db(raw);  // owns raw even on failure
  if (rc != SQLITE_OK) return sqlite_error(raw, rc, "open " + path);
  sqlite3_busy_timeout(raw, busy_timeout_ms);
  // WAL: readers never block the writer; synchronous=FULL: an acknowledged write survives
  // kill -9 and power loss (the relay's hot path never touches the store, so the cost is small).
  if (auto s = db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"); !s) return s.error();
  return db;
}

void Db::set_busy_timeout(int ms) { sqlite3_busy_timeout(db_, ms); }

Result<Stmt> Db::prepare(std::string_view sql) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), int(sql.size()), &s, nullptr);
  if (rc != SQLITE_OK) return sqlite_error(db_, rc, "prepare", state_.get());
  return Stmt(db_, s, state_.get());
}

Status Db::exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    auto e = sqlite_error(nullptr, rc, "sqlite", state_.get());
    if (e.code != "store_unavailable") e.message = "sqlite: " + msg;
    return e;
  }
  return Ok{};
}

}  // namespace rx::hub
