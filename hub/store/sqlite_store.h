// SqliteStore: the embedded Store, one SQLite file (WAL, foreign keys, busy timeout) in the hub's
// data directory. The schema is a list of numbered migrations applied in order inside one
// transaction each, recorded in PRAGMA user_version; a newer file than this build refuses to open.
// The file (and its -wal and -shm) is created 0600: it holds token hashes and the audit log.
#pragma once

#include <memory>
#include <string>

#include "hub/store/sqlite.h"
#include "hub/store/store.h"

namespace rx::hub {

class SqliteStore final : public Store {
 public:
  // `up_to` stops migrating at that schema version (tests of the upgrade path); -1: the latest.
  static Result<std::unique_ptr<SqliteStore>> open(const std::string& path, int up_to = -1);
  int schema_version();
  Status checkpoint();  // folds the WAL into the main file
  // The loop's connection waits kLoopWaitMs (store_thread.h), the store thread's longer.
  void set_busy_timeout(int ms) { db_.set_busy_timeout(ms); }

  Result<User> create_user(const std::string& name, bool admin) override;
  Result<std::optional<User>> user_by_id(const std::string& id) override;
  Result<std::optional<User>> user_by_name(const std::string& name) override;
  Result<std::vector<User>> list_users() override;
  Result<TokenRecord> create_token(const std::string& user_id, const std::string& name, const std::string& scopes,
                                   const std::string& hash, std::optional<int64_t> expires_at) override;
  Result<std::optional<TokenRecord>> token_by_hash(const std::string& hash) override;
  Status touch_token(const std::string& id, int64_t now) override;
  Result<std::optional<TokenRecord>> token_by_id(const std::string& id) override;
  Result<std::vector<TokenRecord>> list_tokens(const std::string& user_id) override;
  Status revoke_token(const std::string& id) override;

  Status create_session(const SessionRecord& s) override;
  Result<std::optional<SessionRecord>> session_by_hash(const std::string& hash) override;
  Status revoke_session(const std::string& id) override;
  Status create_share(const ShareRecord& s) override;
  Result<std::optional<ShareRecord>> share_by_hash(const std::string& hash) override;
  Result<std::optional<ShareRecord>> share_by_id(const std::string& id) override;
  Result<std::vector<ShareRecord>> list_shares(const std::string& terminal_id) override;
  Status delete_share(const std::string& id) override;

  Status create_enrollment(const std::string& owner_id, const std::string& hash, int64_t expires_at, int uses) override;
  Result<std::string> consume_enrollment(const std::string& hash, int64_t now) override;

  Result<AgentRecord> create_agent(const std::string& owner_id, const std::string& name,
                                   const std::string& credential_hash, const std::string& kind) override;
  Result<std::optional<AgentRecord>> agent_by_credential(const std::string& hash) override;
  Result<std::optional<AgentRecord>> agent_by_id(const std::string& id) override;
  Result<std::vector<AgentRecord>> list_agents() override;
  Result<std::vector<AgentRecord>> agents_called(const std::string& id_or_name) override;
  Status update_agent_seen(const std::string& id, const std::string& host_json, const std::string& labels_json,
                           int64_t now) override;
  Status revoke_agent(const std::string& id) override;
  Status update_agent_owner(const std::string& id, const std::string& owner_id) override;

  Result<uint32_t> next_channel(const std::string& agent_id) override;
  Status create_terminal(const TerminalRecord& t) override;
  Result<std::optional<TerminalRecord>> terminal_by_id(const std::string& id) override;
  Result<std::vector<TerminalRecord>> list_terminals(const TerminalFilter& filter) override;
  Status update_terminal_status(const std::string& id, const std::string& status, std::optional<int> exit_code) override;
  Status update_terminal_size(const std::string& id, int cols, int rows) override;
  Status update_terminal_labels(const std::string& id, const std::string& labels_json) override;
  Status update_terminal_container(const std::string& id, const std::string& container_id) override;
  Status update_terminal_reason(const std::string& id, const std::string& reason) override;
  Status update_terminal_channel(const std::string& id, uint32_t channel) override;
  Status delete_terminal(const std::string& id) override;

  // sqlite_store_recordings.cpp
  Status create_recording(const RecordingRecord& r) override;
  Result<std::optional<RecordingRecord>> recording_by_id(const std::string& id) override;
  Result<std::optional<RecordingRecord>> recording_of_terminal(const std::string& terminal_id) override;
  Result<std::vector<RecordingRecord>> list_recordings(const RecordingFilter& f) override;
  Status update_recording(const std::string& id, int64_t bytes, double duration,
                          std::optional<int64_t> ended_at) override;
  Result<bool> delete_recording(const std::string& id) override;
  Status create_recording_share(const RecordingShareRecord& s) override;                          // sqlite_store_recordings.cpp
  Result<std::optional<RecordingShareRecord>> recording_share_by_hash(const std::string& hash) override;
  Result<std::optional<RecordingShareRecord>> recording_share_by_id(const std::string& id) override;
  Result<std::vector<RecordingShareRecord>> list_recording_shares(const std::string& recording_id) override;
  Status delete_recording_share(const std::string& id) override;

  // sqlite_store_gpus.cpp
  Result<bool> put_grant(const GrantRecord& g) override;
  Result<std::vector<GrantRecord>> list_grants(const std::string& agent_id) override;
  Result<std::vector<GrantRecord>> grants_of_user(const std::string& user_id) override;
  Result<bool> delete_grant(const std::string& agent_id, const std::string& subject_id) override;
  Status create_leases(const std::vector<LeaseRecord>& leases) override;
  Result<std::vector<LeaseRecord>> list_leases() override;
  Status delete_leases_of_holder(const std::string& holder) override;
  Status delete_leases_of_agent(const std::string& agent_id) override;
  Status delete_lease(const std::string& agent_id, uint32_t gpu) override;
  Result<std::optional<ReservationRecord>> create_reservation(const ReservationRecord& r) override;
  Result<std::vector<ReservationRecord>> list_reservations(const ReservationFilter& filter) override;
  Result<std::optional<ReservationRecord>> reservation_by_id(const std::string& id) override;
  Status delete_reservation(const std::string& id) override;

  Result<int64_t> audit(const AuditRecord& entry) override;
  Status update_audit_detail(int64_t id, const std::string& detail) override;
  Result<std::vector<AuditRecord>> list_audit(const AuditFilter& filter) override;
  Status health_check(int64_t now) override;

 private:
  SqliteStore(Db db, std::string path) : db_(std::move(db)), path_(std::move(path)) {}
  Status migrate(int up_to);
  Db db_;
  std::string path_;
};

}  // namespace rx::hub
