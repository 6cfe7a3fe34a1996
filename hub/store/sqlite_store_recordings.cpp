// SqliteStore's part for terminal recordings (hub/store/store.h): one row per asciicast file,
// kept after its terminal is deleted, so it can still be found, played and deleted.
#include <algorithm>
#include <cmath>

#include "hub/store/sqlite_store.h"

namespace rx::hub {
namespace {

// A duration goes through SQL as whole microseconds: Stmt binds and reads integers and text, not
// doubles, and asciicast writes its times with 6 decimals (hub/fanout/asciicast.h), so nothing a
// recording can hold is lost, and a duration read back is the same double every time.
int64_t micros(double seconds) { return std::isfinite(seconds) ? std::llround(seconds * 1e6) : 0; }

RecordingRecord recording_from(const Stmt& s) {
  return RecordingRecord{s.text(0),      s.text(1),  s.text(2),  s.text(3),
                         s.text(4),      s.text(5),  s.text(6),  s.int64(7),
                         s.opt_int64(8), s.int64(9), double(s.int64(10)) / 1e6};
}
constexpr const char* kRecordingCols =
    "id, terminal_id, owner_id, kind, agent_id, name, path, started_at, ended_at, bytes,"
    " CAST(round(duration * 1e6) AS INTEGER)";

// A page asks for at least one row (0 would look like the end) and at most this many.
constexpr int kMaxRecordingsPage = 1000;

}  // namespace

Status SqliteStore::create_recording(const RecordingRecord& r) {
  auto s = db_.prepare(
      "INSERT INTO recordings (id, terminal_id, owner_id, kind, agent_id, name, path, started_at, ended_at, bytes,"
      " duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? / 1e6)");
  if (!s) return s.error();
  return s->bind(1, r.id)
      .bind(2, r.terminal_id)
      .bind(3, r.owner_id)
      .bind(4, r.kind)
      .bind(5, r.agent_id)
      .bind(6, r.name)
      .bind(7, r.path)
      .bind(8, r.started_at)
      .bind(9, r.ended_at)
      .bind(10, r.bytes)
      .bind(11, micros(r.duration))
      .run();
}

Result<std::optional<RecordingRecord>> SqliteStore::recording_by_id(const std::string& id) {
  auto s = db_.prepare(std::string("SELECT ") + kRecordingCols + " FROM recordings WHERE id = ?");
  if (!s) return s.error();
  s->bind(1, id);
  return one_row(*s, [](const Stmt& r) { return recording_from(r); });
}

Result<std::optional<RecordingRecord>> SqliteStore::recording_of_terminal(const std::string& terminal_id) {
  // The same order as list_recordings, so "the terminal's recording" is the first it lists.
  auto s = db_.prepare(std::string("SELECT ") + kRecordingCols +
                       " FROM recordings WHERE terminal_id = ? ORDER BY started_at DESC, id DESC LIMIT 1");
  if (!s) return s.error();
  s->bind(1, terminal_id);
  return one_row(*s, [](const Stmt& r) { return recording_from(r); });
}

Result<std::vector<RecordingRecord>> SqliteStore::list_recordings(const RecordingFilter& f) {
  // Paging by a position, not an offset: rows recorded while a client pages do not shift its
  // pages. The `before` row's place (started_at, id) is read first and compared as values. A
  // `before` that names no recording (never, or deleted since) is not_found rather than an empty
  // page, which the client would take for the end of the list.
  std::optional<int64_t> before_at;
  if (!f.before.empty()) {
    auto b = db_.prepare("SELECT started_at FROM recordings WHERE id = ?");
    if (!b) return b.error();
    b->bind(1, f.before);
    auto at = one_row(*b, [](const Stmt& r) { return r.int64(0); });
    if (!at) return at.error();
    if (!*at) return make_error("not_found", "unknown recording " + f.before);
    before_at = **at;
  }
  auto s = db_.prepare(std::string("SELECT ") + kRecordingCols +
                       " FROM recordings WHERE (?1 = '' OR terminal_id = ?1) AND (?2 = '' OR owner_id = ?2)"
                       " AND (?3 = 0 OR started_at >= ?3) AND (?4 = 0 OR started_at <= ?4)"
                       " AND (?5 IS NULL OR started_at < ?5 OR (started_at = ?5 AND id < ?6))"
                       " ORDER BY started_at DESC, id DESC LIMIT ?7");
  if (!s) return s.error();
  s->bind(1, f.terminal_id)
      .bind(2, f.owner_id)
      .bind(3, f.since)
      .bind(4, f.until)
      .bind(5, before_at)
      .bind(6, f.before)
      .bind(7, int64_t(std::clamp(f.limit, 1, kMaxRecordingsPage)));
  return all_rows(*s, [](const Stmt& r) { return recording_from(r); });
}

Status SqliteStore::update_recording(const std::string& id, int64_t bytes, double duration,
                                     std::optional<int64_t> ended_at) {
  // The recorder updates size and length as it writes; only its last update ends the recording.
  auto s = db_.prepare("UPDATE recordings SET bytes = ?, duration = ? / 1e6, ended_at = COALESCE(?, ended_at) WHERE id = ?");
  if (!s) return s.error();
  return s->bind(1, bytes).bind(2, micros(duration)).bind(3, ended_at).bind(4, id).run();
}

Result<bool> SqliteStore::delete_recording(const std::string& id) {
  auto s = db_.prepare("DELETE FROM recordings WHERE id = ?");
  if (!s) return s.error();
  RX_TRY(s->bind(1, id).run());
  return db_.changes() > 0;
}

namespace {

constexpr const char* kRecordingShareCols = "id, recording_id, owner_id, created_at, expires_at, hash";
RecordingShareRecord recording_share_from(const Stmt& s) {
  return RecordingShareRecord{s.text(0), s.text(1), s.text(2), s.int64(3), s.int64(4), s.text(5)};
}

}  // namespace

Status SqliteStore::create_recording_share(const RecordingShareRecord& r) {
  auto s = db_.prepare(
      "INSERT INTO recording_shares (id, recording_id, owner_id, created_at, expires_at, hash) VALUES (?, ?, ?, ?, ?, ?)");
  if (!s) return s.error();
  return s->bind(1, r.id).bind(2, r.recording_id).bind(3, r.owner_id).bind(4, r.created_at).bind(5, r.expires_at)
      .bind(6, r.hash).run();
}

Result<std::optional<RecordingShareRecord>> SqliteStore::recording_share_by_hash(const std::string& hash) {
  auto s = db_.prepare(std::string("SELECT ") + kRecordingShareCols + " FROM recording_shares WHERE hash = ?");
  if (!s) return s.error();
  s->bind(1, hash);
  return one_row(*s, [](const Stmt& r) { return recording_share_from(r); });
}

Result<std::optional<RecordingShareRecord>> SqliteStore::recording_share_by_id(const std::string& id) {
  auto s = db_.prepare(std::string("SELECT ") + kRecordingShareCols + " FROM recording_shares WHERE id = ?");
  if (!s) return s.error();
  s->bind(1, id);
  return one_row(*s, [](const Stmt& r) { return recording_share_from(r); });
}

Result<std::vector<RecordingShareRecord>> SqliteStore::list_recording_shares(const std::string& recording_id) {
  auto s = db_.prepare(std::string("SELECT ") + kRecordingShareCols +
                       " FROM recording_shares WHERE recording_id = ? ORDER BY created_at, id");
  if (!s) return s.error();
  s->bind(1, recording_id);
  return all_rows(*s, [](const Stmt& r) { return recording_share_from(r); });
}

Status SqliteStore::delete_recording_share(const std::string& id) {
  auto s = db_.prepare("DELETE FROM recording_shares WHERE id = ?");
  if (!s) return s.error();
  return s->bind(1, id).run();
}

}  // namespace rx::hub
