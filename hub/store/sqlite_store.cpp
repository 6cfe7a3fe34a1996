#include "hub/store/sqlite_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "hub/base/json_text.h"
#include "hub/base/tokens.h"

namespace rx::hub {
namespace {

// Append-only: never edit a migration that has shipped; add the next one.
constexpr const char* kMigrations[] = {
    // 1: the relay core
    R"sql(
    CREATE TABLE users (
      id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, admin INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL);
    CREATE TABLE tokens (
      id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
      name TEXT NOT NULL, scopes TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
      created_at INTEGER NOT NULL, expires_at INTEGER, last_used_at INTEGER, revoked INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE enrollments (
      hash TEXT PRIMARY KEY, owner_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
      expires_at INTEGER NOT NULL, uses_left INTEGER NOT NULL, created_at INTEGER NOT NULL);
    CREATE TABLE agents (
      id TEXT PRIMARY KEY, owner_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
      name TEXT NOT NULL, credential_hash TEXT NOT NULL UNIQUE, host_json TEXT NOT NULL DEFAULT '{}',
      created_at INTEGER NOT NULL, last_seen_at INTEGER, revoked INTEGER NOT NULL DEFAULT 0,
      next_channel INTEGER NOT NULL DEFAULT 1);
    CREATE TABLE terminals (
      id TEXT PRIMARY KEY, owner_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
      kind TEXT NOT NULL, agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
      channel INTEGER NOT NULL, name TEXT NOT NULL, cols INTEGER NOT NULL, rows INTEGER NOT NULL,
      status TEXT NOT NULL, exit_code INTEGER, created_at INTEGER NOT NULL,
      UNIQUE (agent_id, channel));
    CREATE TABLE audit (
      id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, actor TEXT NOT NULL,
      action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL);
    )sql",
    // 2: the hub as a service: audit by client address and filters, a health probe row
    R"sql(
    ALTER TABLE audit ADD COLUMN ip TEXT NOT NULL DEFAULT '';
    CREATE INDEX audit_actor ON audit (actor, id);
    CREATE INDEX audit_target ON audit (target, id);
    CREATE INDEX tokens_user ON tokens (user_id);
    CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL);
    )sql",
    // 3: container terminals: the hub's own agents, and each terminal's image and container
    R"sql(
    ALTER TABLE agents ADD COLUMN kind TEXT NOT NULL DEFAULT 'host';
    ALTER TABLE terminals ADD COLUMN image TEXT NOT NULL DEFAULT '';
    ALTER TABLE terminals ADD COLUMN container_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE terminals ADD COLUMN reason TEXT NOT NULL DEFAULT '';
    )sql",
    // 4: the dashboard: browser sessions and share links
    R"sql(
    CREATE TABLE sessions (
      id TEXT PRIMARY KEY, token_id TEXT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
      user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE, hash TEXT NOT NULL UNIQUE,
      created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE shares (
      id TEXT PRIMARY KEY, terminal_id TEXT NOT NULL REFERENCES terminals(id) ON DELETE CASCADE,
      owner_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE, mode TEXT NOT NULL,
      hash TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
    CREATE INDEX shares_terminal ON shares (terminal_id);
    )sql",
    // 5: agent labels, as the agent's last HELLO gave them
    R"sql(
    ALTER TABLE agents ADD COLUMN labels_json TEXT NOT NULL DEFAULT '{}';
    )sql",
    // 6: GPU boxes shared by a team: machine grants, GPU leases, reservations
    R"sql(
    CREATE TABLE grants (
      agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
      subject_kind TEXT NOT NULL, subject_id TEXT NOT NULL, role TEXT NOT NULL,
      unix_user TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL, created_by TEXT NOT NULL,
      PRIMARY KEY (agent_id, subject_kind, subject_id));
    CREATE INDEX grants_subject ON grants (subject_kind, subject_id);
    CREATE TABLE gpu_leases (
      agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE, gpu INTEGER NOT NULL,
      holder TEXT NOT NULL, user_id TEXT NOT NULL, since INTEGER NOT NULL,
      PRIMARY KEY (agent_id, gpu));
    CREATE INDEX gpu_leases_holder ON gpu_leases (holder);
    CREATE TABLE reservations (
      id TEXT PRIMARY KEY, agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
      user_id TEXT NOT NULL, gpus TEXT NOT NULL, from_at INTEGER NOT NULL, until_at INTEGER NOT NULL,
      note TEXT NOT NULL, created_at INTEGER NOT NULL);
    CREATE INDEX reservations_agent ON reservations (agent_id, until_at);
    )sql",
    // 7: terminal labels (exec --label reaches container terminals by them)
    R"sql(
    ALTER TABLE terminals ADD COLUMN labels_json TEXT NOT NULL DEFAULT '{}';
    )sql",
    // 8: filtered lookups instead of full scans: a machine by name, a user's container terminals
    R"sql(
    CREATE INDEX agents_name ON agents (name);
    CREATE INDEX terminals_kind_owner ON terminals (kind, owner_id);
    )sql",
    // 9: terminal recordings. A recording has no foreign keys: it is kept (and listed by its
    // owner) after its terminal, or the terminal's machine, is deleted.
    R"sql(
    ALTER TABLE terminals ADD COLUMN record INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE terminals ADD COLUMN record_input INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE recordings (
      id TEXT PRIMARY KEY, terminal_id TEXT NOT NULL, owner_id TEXT NOT NULL, kind TEXT NOT NULL,
      agent_id TEXT NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL, started_at INTEGER NOT NULL,
      ended_at INTEGER, bytes INTEGER NOT NULL DEFAULT 0, duration REAL NOT NULL DEFAULT 0);
    CREATE INDEX recordings_terminal ON recordings (terminal_id);
    CREATE INDEX recordings_owner ON recordings (owner_id, started_at);
    CREATE TABLE recording_shares (
      id TEXT PRIMARY KEY, recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
      owner_id TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
    CREATE INDEX recording_shares_recording ON recording_shares (recording_id);
    )sql",
};
constexpr int kSchemaVersion = int(std::size(kMigrations));

int64_t now() { return int64_t(std::time(nullptr)); }

// After a write failed for lack of space, the store counts as writable again only with this much
// room on the data directory's filesystem (a WAL that grows by a few pages must fit).
constexpr uint64_t kRecoverFreeBytes = 1024 * 1024;

AgentRecord agent_from(const Stmt& s) {
  return AgentRecord{s.text(0), s.text(1), s.text(2), s.text(3), s.text(8), s.int64(4), s.opt_int64(5),
                     s.int64(6) != 0, s.text(7)};
}
constexpr const char* kAgentCols = "id, owner_id, name, host_json, created_at, last_seen_at, revoked, kind, labels_json";

TerminalRecord terminal_from(const Stmt& s) {
  TerminalRecord t;
  t.id = s.text(0);
  t.owner_id = s.text(1);
  t.kind = s.text(2);
  t.agent_id = s.text(3);
  t.channel = uint32_t(s.int64(4));
  t.name = s.text(5);
  t.cols = int(s.int64(6));
  t.rows = int(s.int64(7));
  t.status = s.text(8);
  if (auto e = s.opt_int64(9)) t.exit_code = int(*e);
  t.created_at = s.int64(10);
  t.image = s.text(11);
  t.container_id = s.text(12);
  t.reason = s.text(13);
  t.labels_json = s.text(14);
  t.record = s.int64(15) != 0;
  t.record_input = s.int64(16) != 0;
  return t;
}
constexpr const char* kTerminalCols =
    "id, owner_id, kind, agent_id, channel, name, cols, rows, status, exit_code, created_at, image, container_id, reason, labels_json,"
    " record, record_input";

TokenRecord token_from(const Stmt& s) {
  return TokenRecord{s.text(0), s.text(1),         s.text(2),         s.text(3),       s.int64(4),
                     s.opt_int64(5), s.opt_int64(6), s.int64(7) != 0, s.text(8)};
}
constexpr const char* kTokenCols = "id, user_id, name, scopes, created_at, expires_at, last_used_at, revoked, hash";

SessionRecord session_from(const Stmt& s) {
  return SessionRecord{s.text(0), s.text(1), s.text(2), s.int64(3), s.int64(4), s.int64(5) != 0, s.text(6)};
}
constexpr const char* kSessionCols = "id, token_id, user_id, created_at, expires_at, revoked, hash";

ShareRecord share_from(const Stmt& s) {
  return ShareRecord{s.text(0), s.text(1), s.text(2), s.text(3), s.int64(4), s.int64(5), s.text(6)};
}
constexpr const char* kShareCols = "id, terminal_id, owner_id, mode, created_at, expires_at, hash";

}  // namespace

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path, int up_to) {
  // SQLite gives its -wal and -shm files the database file's mode: a database made 0600 here
  // keeps all three owner-only (an older one made 0644 is tightened).
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return make_error("store_unavailable", "cannot open " + path + ": " + std::strerror(errno));
  ::close(fd);
  for (const char* suffix : {"", "-wal", "-shm"}) (void)::chmod((path + suffix).c_str(), 0600);
  auto db = Db::open(path);
  if (!db) return db.error();
  std::unique_ptr<SqliteStore> store(new SqliteStore(std::move(db).value(), path));
  RX_TRY(store->migrate(up_to < 0 ? kSchemaVersion : std::min(up_to, kSchemaVersion)));
  return store;
}

int SqliteStore::schema_version() {
  auto s = db_.prepare("PRAGMA user_version");
  if (!s || !s->step().ok()) return -1;
  return int(s->int64(0));
}

Status SqliteStore::checkpoint() { return db_.exec("PRAGMA wal_checkpoint(TRUNCATE)"); }

Status SqliteStore::migrate(int up_to) {
  int have = schema_version();
  if (have < 0) return make_error("store_error", "cannot read the schema version");
  if (have > kSchemaVersion)
    return make_error("store_too_new", "the store has schema version " + std::to_string(have) +
                                           "; this hub knows up to " + std::to_string(kSchemaVersion) +
                                           " (downgrades are not supported)");
  for (int v = have; v < up_to; ++v) {
    Transaction tx(db_);
    if (!tx.began()) return make_error("store_busy", "cannot start the migration transaction");
    RX_TRY(db_.exec(kMigrations[v]));
    RX_TRY(db_.exec("PRAGMA user_version = " + std::to_string(v + 1)));
    RX_TRY(tx.commit());
  }
  return Ok{};
}

Result<User> SqliteStore::create_user(const std::string& name, bool admin) {
  User u{new_id("u_"), name, admin};
  auto s = db_.prepare("INSERT INTO users (id, name, admin, created_at) VALUES (?, ?, ?, ?)");
  if (!s) return s.error();
  auto r = s->bind(1, u.id).bind(2, name).bind(3, int64_t(admin)).bind(4, now()).run();
  if (!r) {
    if (r.error().message.find("UNIQUE") != std::string::npos)
      return make_error("conflict", "a user named \"" + name + "\" already exists");
    return r.error();
  }
  return u;
}

Result<std::optional<User>> SqliteStore::user_by_id(const std::string& id) {
  auto s = db_.prepare("SELECT id, name, admin FROM users WHERE id = ?");
  if (!s) return s.error();
  s->bind(1, id);
  return one_row(*s, [](const Stmt& r) { return User{r.text(0), r.text(1), r.int64(2) != 0}; });
}

Result<std::optional<User>> SqliteStore::user_by_name(const std::string& name) {
  auto s = db_.prepare("SELECT id, name, admin FROM users WHERE name = ?");
  if (!s) return s.error();
  s->bind(1, name);
  return one_row(*s, [](const Stmt& r) { return User{r.text(0), r.text(1), r.int64(2) != 0}; });
}

Result<std::vector<User>> SqliteStore::list_users() {
  auto s = db_.prepare("SELECT id, name, admin FROM users ORDER BY created_at, id");
  if (!s) return s.error();
  return all_rows(*s, [](const Stmt& r) { return User{r.text(0), r.text(1), r.int64(2) != 0}; });
}

Result<TokenRecord> SqliteStore::create_token(const std::string& user_id, const std::string& name,
                                              const std::string& scopes, const std::string& hash,
                                              std::optional<int64_t> expires_at) {
  TokenRecord t{new_id("tk_"), user_id, name, scopes, now(), expires_at, std::nullopt, false, hash};
  auto s = db_.prepare(
      "INSERT INTO tokens (id, user_id, name, scopes, hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)");
  if (!s) return s.error();
  RX_TRY(s->bind(1, t.id).bind(2, user_id).bind(3, name).bind(4, scopes).bind(5, hash).bind(6, t.created_at)
          .bind(7, expires_at).run());
  return t;
}

Result<std::optional<TokenRecord>> SqliteStore::token_by_hash(const std::string& hash) {
  auto s = db_.prepare(std::string("SELECT ") + kTokenCols + " FROM tokens WHERE hash = ?");
  if (!s) return s.error();
  s->bind(1, hash);
  return one_row(*s, [](const Stmt& r) { return token_from(r); });
}

Status SqliteStore::touch_token(const std::string& id, int64_t at) {
  auto s = db_.prepare("UPDATE tokens SET last_used_at = ? WHERE id = ?");
  if (!s) return s.error();
  return s->bind(1, at).bind(2, id).run();
}

Result<std::optional<TokenRecord>> SqliteStore::token_by_id(const std::string& id) {
  auto s = db_.prepare(std::string("SELECT ") + kTokenCols + " FROM tokens WHERE id = ?");
  if (!s) return s.error();
  s->bind(1, id);
  return one_row(*s, [](const Stmt& r) { return token_from(r); });
}

Result<std::vector<TokenRecord>> SqliteStore::list_tokens(const std::string& user_id) {
  auto s = db_.prepare(std::string("SELECT ") + kTokenCols +
                       " FROM tokens WHERE (?1 = '' OR user_id = ?1) ORDER BY created_at, id");
  if (!s) return s.error();
  s->bind(1, user_id);
  return all_rows(*s, [](const Stmt& r) { return token_from(r); });
}

Status SqliteStore::revoke_token(const std::string& id) {
  auto s = db_.prepare("UPDATE tokens SET revoked = 1 WHERE id = ?");
  if (!s) return s.error();
  return s->bind(1, id).run();
}

Status SqliteStore::create_session(const SessionRecord& r) {
  auto s = db_.prepare("INSERT INTO sessions (id, token_id, user_id, hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)");
  if (!s) return s.error();
  return s->bind(1, r.id).bind(2, r.token_id).bind(3, r.user_id).bind(4, r.hash).bind(5, r.created_at)
      .bind(6, r.expires_at).run();
}

Result<std::optional<SessionRecord>> SqliteStore::session_by_hash(const std::string& hash) {
  auto s = db_.prepare(std::string("SELECT ") + kSessionCols + " FROM sessions WHERE hash = ?");
  if (!s) return s.error();
  s->bind(1, hash);
  return one_row(*s, [](const Stmt& r) { return session_from(r); });
}

Status SqliteStore::revoke_session(const std::string& id) {
  auto s = db_.prepare("UPDATE sessions SET revoked = 1 WHERE id = ?");
  if (!s) return s.error();
  return s->bind(1, id).run();
}

Status SqliteStore::create_share(const ShareRecord& r) {
  auto s = db_.prepare(
      "INSERT INTO shares (id, terminal_id, owner_id, mode, hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)");
  if (!s) return s.error();
  return s->bind(1, r.id).bind(2, r.terminal_id).bind(3, r.owner_id).bind(4, r.mode).bind(5, r.hash)
      .bind(6, r.created_at).bind(7, r.expires_at).run();
}

Result<std::optional<ShareRecord>> SqliteStore::share_by_hash(const std::string& hash) {
  auto s = db_.prepare(std::string("SELECT ") + kShareCols + " FROM shares WHERE hash = ?");
  if (!s) return s.error();
  s->bind(1, hash);
  return one_row(*s, [](const Stmt& r) { return share_from(r); });
}

Result<std::optional<ShareRecord>> SqliteStore::share_by_id(const std::string& id) {
  auto s = db_.prepare(std::string("SELECT ") + kShareCols + " FROM shares WHERE id = ?");
  if (!s) return s.error();
  s->bind(1, id);
  return one_row(*s, [](const Stmt& r) { return share_from(r); });
}

Result<std::vector<ShareRecord>> SqliteStore::list_shares(const std::string& terminal_id) {
  auto s = db_.prepare(std::string("SELECT ") + kShareCols + " FROM shares WHERE terminal_id = ? ORDER BY created_at");
  if (!s) return s.error();
  s->bind(1, terminal_id);
  return all_rows(*s, [](const Stmt& r) { return share_from(r); });
}

Status SqliteStore::delete_share(const std::string& id) {
  auto s = db_.prepare("DELETE FROM shares WHERE id = ?");
  if (!s) return s.error();
  return s->bind(1, id).run();
}

Status SqliteStore::create_enrollment(const std::string& owner_id, const std::string& hash, int64_t expires_at,
                                      int uses) {
  auto s = db_.prepare("INSERT INTO enrollments (hash, owner_id, expires_at, uses_left, created_at) VALUES (?, ?, ?, ?, ?)");
  if (!s) return s.error();
  return s->bind(1, hash).bind(2, owner_id).bind(3, expires_at).bind(4, int64_t(uses)).bind(5, now()).run();
}

Result<std::string> SqliteStore::consume_enrollment(const std::string& hash, int64_t at) {
  Transaction tx(db_);
  if (!tx.began()) return make_error("store_busy", "cannot start a transaction");
  auto s = db_.prepare("SELECT owner_id, expires_at, uses_left FROM enrollments WHERE hash = ?");
  if (!s) return s.error();
  s->bind(1, hash);
  auto row = s->step();
  if (!row) return row.error();
  if (!*row) return make_error("enrollment_invalid", "unknown enrollment token");
  std::string owner = s->text(0);
  if (s->int64(1) <= at) return make_error("enrollment_expired", "the enrollment token has expired");
  if (s->int64(2) <= 0) return make_error("enrollment_used", "the enrollment token was already used");
  auto u = db_.prepare("UPDATE enrollments SET uses_left = uses_left - 1 WHERE hash = ?");
  if (!u) return u.error();
  RX_TRY(u->bind(1, hash).run());
  RX_TRY(tx.commit());
  return owner;
}

Result<AgentRecord> SqliteStore::create_agent(const std::string& owner_id, const std::string& name,
                                              const std::string& credential_hash, const std::string& kind) {
  AgentRecord a{new_id("ag_"), owner_id, name, "{}", "{}", now(), std::nullopt, false, kind};
  auto s = db_.prepare(
      "INSERT INTO agents (id, owner_id, name, credential_hash, created_at, kind) VALUES (?, ?, ?, ?, ?, ?)");
  if (!s) return s.error();
  RX_TRY(s->bind(1, a.id).bind(2, owner_id).bind(3, name).bind(4, credential_hash).bind(5, a.created_at).bind(6, kind).run());
  return a;
}

Result<std::optional<AgentRecord>> SqliteStore::agent_by_credential(const std::string& hash) {
  auto s = db_.prepare(std::string("SELECT ") + kAgentCols + " FROM agents WHERE credential_hash = ?");
  if (!s) return s.error();
  s->bind(1, hash);
  return one_row(*s, [](const Stmt& r) { return agent_from(r); });
}

Result<std::optional<AgentRecord>> SqliteStore::agent_by_id(const std::string& id) {
  auto s = db_.prepare(std::string("SELECT ") + kAgentCols + " FROM agents WHERE id = ?");
  if (!s) return s.error();
  s->bind(1, id);
  return one_row(*s, [](const Stmt& r) { return agent_from(r); });
}

Result<std::vector<AgentRecord>> SqliteStore::list_agents() {
  auto s = db_.prepare(std::string("SELECT ") + kAgentCols + " FROM agents ORDER BY created_at, id");
  if (!s) return s.error();
  return all_rows(*s, [](const Stmt& r) { return agent_from(r); });
}

Result<std::vector<AgentRecord>> SqliteStore::agents_called(const std::string& id_or_name) {
  auto s = db_.prepare(std::string("SELECT ") + kAgentCols +
                       " FROM agents WHERE id = ?1 OR name = ?1 ORDER BY created_at, id");
  if (!s) return s.error();
  s->bind(1, id_or_name);
  return all_rows(*s, [](const Stmt& r) { return agent_from(r); });
}

Status SqliteStore::update_agent_seen(const std::string& id, const std::string& host_json,
                                     const std::string& labels_json, int64_t at) {
  auto s = db_.prepare("UPDATE agents SET host_json = ?, last_seen_at = ?, labels_json = ? WHERE id = ?");
  if (!s) return s.error();
  return s->bind(1, host_json).bind(2, at).bind(3, labels_json).bind(4, id).run();
}

Status SqliteStore::revoke_agent(const std::string& id) {
  auto s = db_.prepare("UPDATE agents SET revoked = 1 WHERE id = ?");
  if (!s) return s.error();
  return s->bind(1, id).run();
}

Status SqliteStore::update_agent_owner(const std::string& id, const std::string& owner_id) {
  auto s = db_.prepare("UPDATE agents SET owner_id = ? WHERE id = ?");
  if (!s) return s.error();
  return s->bind(1, owner_id).bind(2, id).run();
}

Result<uint32_t> SqliteStore::next_channel(const std::string& agent_id) {
  auto s = db_.prepare("UPDATE agents SET next_channel = next_channel + 1 WHERE id = ? RETURNING next_channel - 1");
  if (!s) return s.error();
  s->bind(1, agent_id);
  auto row = s->step();
  if (!row) return row.error();
  if (!*row) return make_error("not_found", "unknown agent " + agent_id);
  auto channel = uint32_t(s->int64(0));
  RX_TRY(s->run());  // finish the statement so the update is complete before we return
  return channel;
}

Status SqliteStore::create_terminal(const TerminalRecord& t) {
  auto s = db_.prepare(
      "INSERT INTO terminals (id, owner_id, kind, agent_id, channel, name, cols, rows, status, exit_code, created_at,"
      " image, container_id, reason, labels_json, record, record_input)"
      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!s) return s.error();
  return s->bind(1, t.id).bind(2, t.owner_id).bind(3, t.kind).bind(4, t.agent_id).bind(5, int64_t(t.channel))
      .bind(6, t.name).bind(7, int64_t(t.cols)).bind(8, int64_t(t.rows)).bind(9, t.status)
      .bind(10, t.exit_code ? std::optional<int64_t>(*t.exit_code) : std::nullopt).bind(11, t.created_at)
      .bind(12, t.image).bind(13, t.container_id).bind(14, t.reason).bind(15, t.labels_json)
      .bind(16, int64_t(t.record)).bind(17, int64_t(t.record_input)).run();
}

Result<std::optional<TerminalRecord>> SqliteStore::terminal_by_id(const std::string& id) {
  auto s = db_.prepare(std::string("SELECT ") + kTerminalCols + " FROM terminals WHERE id = ?");
  if (!s) return s.error();
  s->bind(1, id);
  return one_row(*s, [](const Stmt& r) { return terminal_from(r); });
}

Result<std::vector<TerminalRecord>> SqliteStore::list_terminals(const TerminalFilter& f) {
  auto s = db_.prepare(std::string("SELECT ") + kTerminalCols +
                       " FROM terminals WHERE (?1 = '' OR kind = ?1) AND (?2 = '' OR owner_id = ?2)"
                       " ORDER BY created_at, id");
  if (!s) return s.error();
  s->bind(1, f.kind).bind(2, f.owner_id);
  return all_rows(*s, [](const Stmt& r) { return terminal_from(r); });
}

Status SqliteStore::update_terminal_status(const std::string& id, const std::string& status,
                                           std::optional<int> exit_code) {
  auto s = db_.prepare("UPDATE terminals SET status = ?, exit_code = COALESCE(?, exit_code) WHERE id = ?");
  if (!s) return s.error();
  return s->bind(1, status).bind(2, exit_code ? std::optional<int64_t>(*exit_code) : std::nullopt).bind(3, id).run();
}

Status SqliteStore::update_terminal_size(const std::string& id, int cols, int rows) {
  auto s = db_.prepare("UPDATE terminals SET cols = ?, rows = ? WHERE id = ?");
  if (!s) return s.error();
  return s->bind(1, int64_t(cols)).bind(2, int64_t(rows)).bind(3, id).run();
}

Status SqliteStore::update_terminal_labels(const std::string& id, const std::string& labels_json) {
  auto s = db_.prepare("UPDATE terminals SET labels_json = ? WHERE id = ?");
  if (!s) return s.error();
  return s->bind(1, labels_json).bind(2, id).run();
}

Status SqliteStore::update_terminal_container(const std::string& id, const std::string& container_id) {
  auto s = db_.prepare("UPDATE terminals SET container_id = ? WHERE id = ?");
  if (!s) return s.error();
  return s->bind(1, container_id).bind(2, id).run();
}

Status SqliteStore::update_terminal_reason(const std::string& id, const std::string& reason) {
  auto s = db_.prepare("UPDATE terminals SET reason = ? WHERE id = ?");
  if (!s) return s.error();
  return s->bind(1, reason).bind(2, id).run();
}

Status SqliteStore::update_terminal_channel(const std::string& id, uint32_t channel) {
  auto s = db_.prepare("UPDATE terminals SET channel = ? WHERE id = ?");
  if (!s) return s.error();
  return s->bind(1, int64_t(channel)).bind(2, id).run();
}

Status SqliteStore::delete_terminal(const std::string& id) {
  auto s = db_.prepare("DELETE FROM terminals WHERE id = ?");
  if (!s) return s.error();
  return s->bind(1, id).run();
}

Result<int64_t> SqliteStore::audit(const AuditRecord& e) {
  auto s = db_.prepare("INSERT INTO audit (at, actor, action, target, detail, ip) VALUES (?, ?, ?, ?, ?, ?)");
  if (!s) return s.error();
  // Peers' strings end up here (paths, names, reasons): the log must stay readable as JSON.
  RX_TRY(s->bind(1, now()).bind(2, clean_utf8(e.actor)).bind(3, clean_utf8(e.action)).bind(4, clean_utf8(e.target))
          .bind(5, clean_utf8(e.detail)).bind(6, clean_utf8(e.ip)).run());
  return int64_t(sqlite3_last_insert_rowid(db_.raw()));
}

Status SqliteStore::update_audit_detail(int64_t id, const std::string& detail) {
  auto s = db_.prepare("UPDATE audit SET detail = ? WHERE id = ?");
  if (!s) return s.error();
  return s->bind(1, clean_utf8(detail)).bind(2, id).run();
}

Result<std::vector<AuditRecord>> SqliteStore::list_audit(const AuditFilter& f) {
  // An action ending in '.' is a prefix ("terminal." matches terminal.create, terminal.delete...).
  auto s = db_.prepare(
      "SELECT id, at, actor, action, target, detail, ip FROM audit WHERE id > ?1"
      " AND (?2 = '' OR actor = ?2) AND (?3 = '' OR action = ?3 OR (substr(?3, -1) = '.' AND substr(action, 1, length(?3)) = ?3))"
      " AND (?4 = '' OR target = ?4) AND (?5 IS NULL OR at >= ?5) AND (?6 IS NULL OR at < ?6)"
      " ORDER BY id LIMIT ?7");
  if (!s) return s.error();
  s->bind(1, f.since_id).bind(2, f.actor).bind(3, f.action).bind(4, f.target).bind(5, f.from).bind(6, f.to)
      .bind(7, int64_t(f.limit));
  return all_rows(*s, [](const Stmt& r) {
    return AuditRecord{r.int64(0), r.int64(1), r.text(2), r.text(3), r.text(4), r.text(5), r.text(6)};
  });
}

Status SqliteStore::health_check(int64_t at) {
  auto s = db_.prepare("INSERT INTO health (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at");
  if (!s) return s.error();
  // The probe is a tiny write that can still fit in the WAL when real writes no longer fit on the
  // disk: after any write failed for lack of space (or an I/O error) the store stays unwritable
  // until the probe works and the disk has room again.
  auto probe = s->bind(1, at).run();
  auto failed = db_.write_failure();
  if (!failed) return probe;
  if (!probe) return probe;
  struct statvfs fs {};
  auto dir = std::filesystem::path(path_).parent_path().string();
  if (::statvfs(dir.empty() ? "." : dir.c_str(), &fs) != 0)
    return make_error("store_unavailable", *failed + " (and the data directory cannot be checked: " + std::strerror(errno) + ")");
  uint64_t free = uint64_t(fs.f_bavail) * fs.f_frsize;
  if (free < kRecoverFreeBytes)
    return make_error("store_unavailable", *failed + "; " + std::to_string(free) + " bytes free in " + dir);
  db_.clear_write_failure();
  return Ok{};
}

}  // namespace rx::hub
