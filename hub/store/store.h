// Store: everything the hub must remember across restarts — users, tokens, agents, enrollments,
// terminals, audit. Handlers see only this interface, so a PostgreSQL store can be added later
// without touching them; SqliteStore (sqlite_store.h) is the embedded one. Secrets are never
// stored: only their SHA-256 (hub/base/tokens.h). Times are unix seconds. Errors: store_busy (locked
// past the busy timeout), store_unavailable (disk full, I/O error, read-only: nothing can be
// written until an operator acts), store_error (anything else).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "protocol/error.h"

namespace rx::hub {

struct User {
  std::string id;
  std::string name;
  bool admin = false;
};

struct TokenRecord {
  std::string id;
  std::string user_id;
  std::string name;
  std::string scopes;  // space separated: "read write admin"
  int64_t created_at = 0;
  std::optional<int64_t> expires_at;
  std::optional<int64_t> last_used_at;
  bool revoked = false;
  std::string hash;  // SHA-256 of the secret, for the constant-time check after lookup
};

struct AgentRecord {
  std::string id;
  std::string owner_id;
  std::string name;
  std::string host_json;  // last HELLO's host info, as JSON
  std::string labels_json = "{}";  // last HELLO's labels (protocol/labels.h), as a JSON object
  int64_t created_at = 0;
  std::optional<int64_t> last_seen_at;
  bool revoked = false;
  std::string kind = "host";  // "host": enrolled by a person; "container": the hub's own, one per container terminal
};

struct TerminalRecord {
  std::string id;
  std::string owner_id;
  std::string kind;  // "agent" | "container"
  std::string agent_id;
  uint32_t channel = 0;
  std::string name;
  int cols = 80;
  int rows = 24;
  std::string status;  // starting, running, offline, exited, lost
  std::optional<int> exit_code;
  int64_t created_at = 0;
  std::string image;         // container terminals
  std::string container_id;  // container terminals, once created
  std::string reason;        // why it is lost or exited, when known ("OOM-killed", ...)
  std::string labels_json = "{}";  // {"role": "ci"}: what exec --label selects by
  bool record = true;         // its output is recorded (hub/fanout/recorder.h)
  bool record_input = false;  // and its keystrokes too: off unless asked, they may hold passwords
};

// A terminal's recording (hub/fanout/recorder.h): one asciicast file per terminal, kept after the terminal is deleted.
struct RecordingRecord {
  std::string id;           // "r_..."
  std::string terminal_id;
  std::string owner_id;
  std::string kind;         // the terminal's: "agent" | "container"
  std::string agent_id;
  std::string name;         // the terminal's name when recording began
  std::string path;         // the .cast file
  int64_t started_at = 0;   // unix seconds
  std::optional<int64_t> ended_at;
  int64_t bytes = 0;        // file size when last updated
  double duration = 0;      // seconds of the last event when last updated
};

// A browser sign-in: made from an API token, carried in an HttpOnly cookie. It is only as good
// as its token: revoking or expiring the token ends the session too.
struct SessionRecord {
  std::string id;
  std::string token_id;
  std::string user_id;
  int64_t created_at = 0;
  int64_t expires_at = 0;
  bool revoked = false;
  std::string hash;
};

// A share link: whoever has the code may watch (view) or type into (control) one terminal.
struct ShareRecord {
  std::string id;
  std::string terminal_id;
  std::string owner_id;
  std::string mode;  // "view" | "control"
  int64_t created_at = 0;
  int64_t expires_at = 0;
  std::string hash;
};

struct AuditRecord {
  int64_t id = 0;
  int64_t at = 0;
  std::string actor;   // user id, "agent:<id>", or "anonymous"
  std::string action;  // e.g. "terminal.create"
  std::string target;
  std::string detail;
  std::string ip;  // the client's address, when a request caused it
};

inline AuditRecord audit_entry(std::string actor, std::string action, std::string target, std::string detail,
                               std::string ip = "") {
  AuditRecord r;
  r.actor = std::move(actor);
  r.action = std::move(action);
  r.target = std::move(target);
  r.detail = std::move(detail);
  r.ip = std::move(ip);
  return r;
}

// A machine shared with someone: `use` may open terminals and exec there, `view` sees the machine
// and its GPUs. The subject is a kind and an id so groups can be added beside users later.
struct GrantRecord {
  std::string agent_id;
  std::string subject_kind = "user";  // "user" (groups later)
  std::string subject_id;
  std::string role;       // "use" | "view"
  std::string unix_user;  // the local account their shells run as ("" = the agent's default)
  int64_t created_at = 0;
  std::string created_by;  // user id
};

// One GPU held: by a terminal ("t_...") or an exec run on that agent ("x_..."), for a user.
// At most one lease per (agent, gpu): the store refuses a second (gpu_busy).
struct LeaseRecord {
  std::string agent_id;
  uint32_t gpu = 0;
  std::string holder;  // terminal id, or "x_<run>" for an exec
  std::string user_id;
  int64_t since = 0;
};

// GPUs booked ahead: during [from, until) only its user may lease them. Reservations of one
// machine never overlap on a GPU (the store checks in the same transaction as the insert).
struct ReservationRecord {
  std::string id;
  std::string agent_id;
  std::string user_id;
  std::vector<uint32_t> gpus;
  int64_t from = 0;
  int64_t until = 0;
  std::string note;
  int64_t created_at = 0;
};

// list_reservations filters; empty or unset match everything. Time filters select reservations
// that overlap [from, until).
struct ReservationFilter {
  std::string agent_id;
  std::string user_id;
  std::optional<int64_t> from;
  std::optional<int64_t> until;
};

// list_terminals(filter): empty strings match everything (TerminalFilter{}: every terminal).
struct TerminalFilter {
  std::string kind;      // "agent" | "container"
  std::string owner_id;
};

// A link that lets whoever holds its code play one recording, without an account.
struct RecordingShareRecord {
  std::string id;  // "rsh_..."
  std::string recording_id;
  std::string owner_id;
  int64_t created_at = 0;
  int64_t expires_at = 0;
  std::string hash;  // of the code; the code itself is shown once
};

// list_recordings: empty strings and zeros match everything; newest first (started_at DESC, id DESC); paging by
// `before` = the id of the last row of the previous page (rows strictly after it in that order).
struct RecordingFilter {
  std::string terminal_id;
  std::string owner_id;
  int64_t since = 0;  // started_at >= since
  int64_t until = 0;  // started_at <= until
  int limit = 100;    // clamped to 1..1000
  std::string before;
};

// GET /api/v1/audit filters; empty strings match everything.
struct AuditFilter {
  int64_t since_id = 0;  // entries with a larger id (paging)
  std::string actor;
  std::string action;  // exact, or a prefix ending in '.' ("terminal.")
  std::string target;
  std::optional<int64_t> from;  // at >= from
  std::optional<int64_t> to;    // at < to
  int limit = 100;
};

class Store {
 public:
  virtual ~Store() = default;

  // Users and API tokens.
  virtual Result<User> create_user(const std::string& name, bool admin) = 0;
  virtual Result<std::optional<User>> user_by_id(const std::string& id) = 0;
  virtual Result<std::optional<User>> user_by_name(const std::string& name) = 0;
  virtual Result<std::vector<User>> list_users() = 0;
  virtual Result<TokenRecord> create_token(const std::string& user_id, const std::string& name, const std::string& scopes,
                                           const std::string& hash, std::optional<int64_t> expires_at) = 0;
  virtual Result<std::optional<TokenRecord>> token_by_hash(const std::string& hash) = 0;
  virtual Status touch_token(const std::string& id, int64_t now) = 0;
  virtual Result<std::optional<TokenRecord>> token_by_id(const std::string& id) = 0;
  virtual Result<std::vector<TokenRecord>> list_tokens(const std::string& user_id) = 0;  // "" = every user's
  virtual Status revoke_token(const std::string& id) = 0;

  // Browser sessions (sign-in cookies).
  virtual Status create_session(const SessionRecord& s) = 0;
  virtual Result<std::optional<SessionRecord>> session_by_hash(const std::string& hash) = 0;
  virtual Status revoke_session(const std::string& id) = 0;

  // Share links. Deleting a terminal deletes its shares.
  virtual Status create_share(const ShareRecord& s) = 0;
  virtual Result<std::optional<ShareRecord>> share_by_hash(const std::string& hash) = 0;
  virtual Result<std::optional<ShareRecord>> share_by_id(const std::string& id) = 0;
  virtual Result<std::vector<ShareRecord>> list_shares(const std::string& terminal_id) = 0;
  virtual Status delete_share(const std::string& id) = 0;

  // Enrollment tokens: single- or few-use, short-lived. consume() is atomic: two agents racing
  // with the same token cannot both succeed. Errors: enrollment_invalid, enrollment_expired,
  // enrollment_used.
  virtual Status create_enrollment(const std::string& owner_id, const std::string& hash, int64_t expires_at,
                                   int uses) = 0;
  virtual Result<std::string> consume_enrollment(const std::string& hash, int64_t now) = 0;  // -> owner id

  // Agents.
  virtual Result<AgentRecord> create_agent(const std::string& owner_id, const std::string& name,
                                           const std::string& credential_hash, const std::string& kind) = 0;
  virtual Result<std::optional<AgentRecord>> agent_by_credential(const std::string& hash) = 0;
  virtual Result<std::optional<AgentRecord>> agent_by_id(const std::string& id) = 0;
  virtual Result<std::vector<AgentRecord>> list_agents() = 0;
  // Agents whose id or name is this (names are unique per owner, not across owners), oldest first.
  virtual Result<std::vector<AgentRecord>> agents_called(const std::string& id_or_name) = 0;
  virtual Status update_agent_seen(const std::string& id, const std::string& host_json,
                                   const std::string& labels_json, int64_t now) = 0;
  virtual Status revoke_agent(const std::string& id) = 0;
  virtual Status update_agent_owner(const std::string& id, const std::string& owner_id) = 0;  // warm pool hand-over

  // Terminals. next_channel() hands out a channel number never used before on that agent.
  virtual Result<uint32_t> next_channel(const std::string& agent_id) = 0;
  virtual Status create_terminal(const TerminalRecord& t) = 0;
  virtual Result<std::optional<TerminalRecord>> terminal_by_id(const std::string& id) = 0;
  virtual Result<std::vector<TerminalRecord>> list_terminals(const TerminalFilter& filter) = 0;
  virtual Status update_terminal_status(const std::string& id, const std::string& status,
                                        std::optional<int> exit_code) = 0;
  virtual Status update_terminal_size(const std::string& id, int cols, int rows) = 0;
  virtual Status update_terminal_labels(const std::string& id, const std::string& labels_json) = 0;
  virtual Status update_terminal_container(const std::string& id, const std::string& container_id) = 0;
  virtual Status update_terminal_reason(const std::string& id, const std::string& reason) = 0;
  virtual Status update_terminal_channel(const std::string& id, uint32_t channel) = 0;
  virtual Status delete_terminal(const std::string& id) = 0;

  // Recordings. They outlive their terminal: deleting a terminal leaves its recordings, which
  // only delete_recording removes. recording_of_terminal: the newest of that terminal's.
  // list_recordings: since/until select started_at, inclusive; limit is clamped to 1..1000; a
  // `before` that names no recording is not_found. update_recording: ended_at nullopt keeps it.
  virtual Status create_recording(const RecordingRecord& r) = 0;
  virtual Result<std::optional<RecordingRecord>> recording_by_id(const std::string& id) = 0;
  virtual Result<std::optional<RecordingRecord>> recording_of_terminal(const std::string& terminal_id) = 0;
  virtual Result<std::vector<RecordingRecord>> list_recordings(const RecordingFilter& f) = 0;
  virtual Status update_recording(const std::string& id, int64_t bytes, double duration,
                                  std::optional<int64_t> ended_at) = 0;
  virtual Result<bool> delete_recording(const std::string& id) = 0;  // false: no such recording
  // Recording share links; deleting a recording deletes its links.
  virtual Status create_recording_share(const RecordingShareRecord& s) = 0;
  virtual Result<std::optional<RecordingShareRecord>> recording_share_by_hash(const std::string& hash) = 0;
  virtual Result<std::optional<RecordingShareRecord>> recording_share_by_id(const std::string& id) = 0;
  virtual Result<std::vector<RecordingShareRecord>> list_recording_shares(const std::string& recording_id) = 0;
  virtual Status delete_recording_share(const std::string& id) = 0;

  // Machine grants. put_grant adds or replaces the subject's grant (true: it is new).
  virtual Result<bool> put_grant(const GrantRecord& g) = 0;
  virtual Result<std::vector<GrantRecord>> list_grants(const std::string& agent_id) = 0;  // "" = every machine's
  virtual Result<std::vector<GrantRecord>> grants_of_user(const std::string& user_id) = 0;
  virtual Result<bool> delete_grant(const std::string& agent_id, const std::string& subject_id) = 0;  // false: none

  // GPU leases. create_leases is all or nothing: if any GPU is held, none is taken (gpu_busy).
  virtual Status create_leases(const std::vector<LeaseRecord>& leases) = 0;
  virtual Result<std::vector<LeaseRecord>> list_leases() = 0;
  virtual Status delete_leases_of_holder(const std::string& holder) = 0;
  virtual Status delete_leases_of_agent(const std::string& agent_id) = 0;
  virtual Status delete_lease(const std::string& agent_id, uint32_t gpu) = 0;

  // GPU reservations. create_reservation inserts unless one on the same machine overlaps it in
  // time on a shared GPU: then it returns that one and inserts nothing.
  virtual Result<std::optional<ReservationRecord>> create_reservation(const ReservationRecord& r) = 0;
  virtual Result<std::vector<ReservationRecord>> list_reservations(const ReservationFilter& filter) = 0;
  virtual Result<std::optional<ReservationRecord>> reservation_by_id(const std::string& id) = 0;
  virtual Status delete_reservation(const std::string& id) = 0;

  // Audit log.
  // `entry.id` and `entry.at` are assigned by the store; the new row's id. Strings that are not
  // UTF-8 are stored with U+FFFD in place of the bad bytes.
  virtual Result<int64_t> audit(const AuditRecord& entry) = 0;
  // Rewrites one row's detail (aggregated rows: "17 failures ..." counts up in place).
  virtual Status update_audit_detail(int64_t id, const std::string& detail) = 0;
  virtual Result<std::vector<AuditRecord>> list_audit(const AuditFilter& filter) = 0;

  // GET /healthz: proves the store still takes a write (disk full, read-only, locked). Once any
  // write failed for lack of space or an I/O error, this fails too until the probe write works
  // again and the disk has room (errors: store_unavailable).
  virtual Status health_check(int64_t now) = 0;
};

}  // namespace rx::hub
