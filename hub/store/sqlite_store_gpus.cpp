// SqliteStore's part for shared GPU boxes: grants, GPU leases, reservations (hub/store/store.h).
#include <algorithm>
#include <ctime>

#include "hub/base/tokens.h"
#include "hub/store/sqlite_store.h"

namespace rx::hub {
namespace {

GrantRecord grant_from(const Stmt& s) {
  return GrantRecord{s.text(0), s.text(1), s.text(2), s.text(3), s.text(4), s.int64(5), s.text(6)};
}
constexpr const char* kGrantCols = "agent_id, subject_kind, subject_id, role, unix_user, created_at, created_by";

LeaseRecord lease_from(const Stmt& s) {
  return LeaseRecord{s.text(0), uint32_t(s.int64(1)), s.text(2), s.text(3), s.int64(4)};
}

// GPU lists are stored as "0,1,3": small, and read back whole.
std::string gpu_list(const std::vector<uint32_t>& gpus) {
  std::string out;
  for (auto g : gpus) out += (out.empty() ? "" : ",") + std::to_string(g);
  return out;
}
std::vector<uint32_t> parse_gpu_list(const std::string& text) {
  std::vector<uint32_t> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    out.push_back(uint32_t(std::strtoul(text.substr(pos, comma - pos).c_str(), nullptr, 10)));
    pos = comma + 1;
  }
  return out;
}

ReservationRecord reservation_from(const Stmt& s) {
  return ReservationRecord{s.text(0),  s.text(1),  s.text(2), parse_gpu_list(s.text(3)),
                           s.int64(4), s.int64(5), s.text(6), s.int64(7)};
}
constexpr const char* kReservationCols = "id, agent_id, user_id, gpus, from_at, until_at, note, created_at";

bool share_a_gpu(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  return std::any_of(a.begin(), a.end(), [&](uint32_t g) { return std::find(b.begin(), b.end(), g) != b.end(); });
}

}  // namespace

Result<bool> SqliteStore::put_grant(const GrantRecord& g) {
  Transaction tx(db_);
  if (!tx.began()) return make_error("store_busy", "cannot start a transaction");
  auto old = db_.prepare("SELECT 1 FROM grants WHERE agent_id = ? AND subject_kind = ? AND subject_id = ?");
  if (!old) return old.error();
  old->bind(1, g.agent_id).bind(2, g.subject_kind).bind(3, g.subject_id);
  auto existed = old->step();
  if (!existed) return existed.error();
  bool is_new = !*existed;
  auto s = db_.prepare(
      "INSERT INTO grants (agent_id, subject_kind, subject_id, role, unix_user, created_at, created_by) "
      "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (agent_id, subject_kind, subject_id) DO UPDATE SET "
      "role = excluded.role, unix_user = excluded.unix_user, created_by = excluded.created_by");
  if (!s) return s.error();
  RX_TRY(s->bind(1, g.agent_id)
             .bind(2, g.subject_kind)
             .bind(3, g.subject_id)
             .bind(4, g.role)
             .bind(5, g.unix_user)
             .bind(6, g.created_at)
             .bind(7, g.created_by)
             .run());
  RX_TRY(tx.commit());
  return is_new;
}

Result<std::vector<GrantRecord>> SqliteStore::list_grants(const std::string& agent_id) {
  auto s = db_.prepare(std::string("SELECT ") + kGrantCols + " FROM grants" +
                       (agent_id.empty() ? "" : " WHERE agent_id = ?") + " ORDER BY created_at, subject_id");
  if (!s) return s.error();
  if (!agent_id.empty()) s->bind(1, agent_id);
  return all_rows(*s, [](const Stmt& r) { return grant_from(r); });
}

Result<std::vector<GrantRecord>> SqliteStore::grants_of_user(const std::string& user_id) {
  auto s = db_.prepare(std::string("SELECT ") + kGrantCols +
                       " FROM grants WHERE subject_kind = 'user' AND subject_id = ? ORDER BY agent_id");
  if (!s) return s.error();
  s->bind(1, user_id);
  return all_rows(*s, [](const Stmt& r) { return grant_from(r); });
}

Result<bool> SqliteStore::delete_grant(const std::string& agent_id, const std::string& subject_id) {
  auto s = db_.prepare("DELETE FROM grants WHERE agent_id = ? AND subject_kind = 'user' AND subject_id = ?");
  if (!s) return s.error();
  RX_TRY(s->bind(1, agent_id).bind(2, subject_id).run());
  return db_.changes() > 0;
}

Status SqliteStore::create_leases(const std::vector<LeaseRecord>& leases) {
  Transaction tx(db_);
  if (!tx.began()) return make_error("store_busy", "cannot start a transaction");
  for (const auto& l : leases) {
    auto s = db_.prepare("INSERT INTO gpu_leases (agent_id, gpu, holder, user_id, since) VALUES (?, ?, ?, ?, ?)");
    if (!s) return s.error();
    auto r = s->bind(1, l.agent_id).bind(2, int64_t(l.gpu)).bind(3, l.holder).bind(4, l.user_id).bind(5, l.since).run();
    if (!r) {
      // The primary key (agent, gpu): someone holds it already. Nothing is taken (rollback).
      if (r.error().message.find("UNIQUE") != std::string::npos ||
          r.error().message.find("PRIMARY") != std::string::npos)
        return make_error("gpu_busy", "GPU " + std::to_string(l.gpu) + " is held");
      return r.error();
    }
  }
  return tx.commit();
}

Result<std::vector<LeaseRecord>> SqliteStore::list_leases() {
  auto s = db_.prepare("SELECT agent_id, gpu, holder, user_id, since FROM gpu_leases ORDER BY agent_id, gpu");
  if (!s) return s.error();
  return all_rows(*s, [](const Stmt& r) { return lease_from(r); });
}

Status SqliteStore::delete_leases_of_holder(const std::string& holder) {
  auto s = db_.prepare("DELETE FROM gpu_leases WHERE holder = ?");
  if (!s) return s.error();
  return s->bind(1, holder).run();
}

Status SqliteStore::delete_leases_of_agent(const std::string& agent_id) {
  auto s = db_.prepare("DELETE FROM gpu_leases WHERE agent_id = ?");
  if (!s) return s.error();
  return s->bind(1, agent_id).run();
}

Status SqliteStore::delete_lease(const std::string& agent_id, uint32_t gpu) {
  auto s = db_.prepare("DELETE FROM gpu_leases WHERE agent_id = ? AND gpu = ?");
  if (!s) return s.error();
  return s->bind(1, agent_id).bind(2, int64_t(gpu)).run();
}

Result<std::optional<ReservationRecord>> SqliteStore::create_reservation(const ReservationRecord& r) {
  Transaction tx(db_);
  if (!tx.began()) return make_error("store_busy", "cannot start a transaction");
  auto q = db_.prepare(std::string("SELECT ") + kReservationCols +
                       " FROM reservations WHERE agent_id = ? AND from_at < ? AND until_at > ? ORDER BY from_at");
  if (!q) return q.error();
  q->bind(1, r.agent_id).bind(2, r.until).bind(3, r.from);
  auto overlapping = all_rows(*q, [](const Stmt& row) { return reservation_from(row); });
  if (!overlapping) return overlapping.error();
  for (const auto& o : *overlapping)
    if (share_a_gpu(o.gpus, r.gpus)) return std::optional<ReservationRecord>(o);
  auto s = db_.prepare("INSERT INTO reservations (id, agent_id, user_id, gpus, from_at, until_at, note, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  if (!s) return s.error();
  RX_TRY(s->bind(1, r.id)
             .bind(2, r.agent_id)
             .bind(3, r.user_id)
             .bind(4, gpu_list(r.gpus))
             .bind(5, r.from)
             .bind(6, r.until)
             .bind(7, r.note)
             .bind(8, r.created_at)
             .run());
  RX_TRY(tx.commit());
  return std::optional<ReservationRecord>();
}

Result<std::vector<ReservationRecord>> SqliteStore::list_reservations(const ReservationFilter& f) {
  std::string sql = std::string("SELECT ") + kReservationCols + " FROM reservations WHERE 1 = 1";
  if (!f.agent_id.empty()) sql += " AND agent_id = ?";
  if (!f.user_id.empty()) sql += " AND user_id = ?";
  if (f.until) sql += " AND from_at < ?";
  if (f.from) sql += " AND until_at > ?";
  sql += " ORDER BY from_at, id";
  auto s = db_.prepare(sql);
  if (!s) return s.error();
  int i = 1;
  if (!f.agent_id.empty()) s->bind(i++, f.agent_id);
  if (!f.user_id.empty()) s->bind(i++, f.user_id);
  if (f.until) s->bind(i++, *f.until);
  if (f.from) s->bind(i++, *f.from);
  return all_rows(*s, [](const Stmt& r) { return reservation_from(r); });
}

Result<std::optional<ReservationRecord>> SqliteStore::reservation_by_id(const std::string& id) {
  auto s = db_.prepare(std::string("SELECT ") + kReservationCols + " FROM reservations WHERE id = ?");
  if (!s) return s.error();
  s->bind(1, id);
  return one_row(*s, [](const Stmt& r) { return reservation_from(r); });
}

Status SqliteStore::delete_reservation(const std::string& id) {
  auto s = db_.prepare("DELETE FROM reservations WHERE id = ?");
  if (!s) return s.error();
  return s->bind(1, id).run();
}

}  // namespace rx::hub
