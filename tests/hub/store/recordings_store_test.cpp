// hub/store/sqlite_store_recordings.cpp and migration 9 (terminal recordings) against real SQLite
// files in a temporary directory.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "hub/base/tokens.h"
#include "hub/store/sqlite_store.h"
#include "tests/hub/store/store_dir.h"

namespace rx::hub {
namespace {

namespace fs = std::filesystem;

class RecordingsStoreTest : public StoreDirTest {
 protected:
  // A terminal of a new user's new machine (terminals need both: foreign keys).
  static TerminalRecord terminal(SqliteStore& s, const std::string& user) {
    auto u = s.create_user(user, false);
    auto a = s.create_agent(u->id, "box", "cred-" + user, "host");
    EXPECT_TRUE(u.ok() && a.ok());
    TerminalRecord t;
    t.id = new_id("t_");
    t.owner_id = u->id;
    t.kind = "agent";
    t.agent_id = a->id;
    t.channel = 1;
    t.name = "shell";
    t.status = "running";
    return t;
  }
  static RecordingRecord recording(const std::string& terminal_id, const std::string& owner_id, int64_t started_at) {
    RecordingRecord r;
    r.id = new_id("r_");
    r.terminal_id = terminal_id;
    r.owner_id = owner_id;
    r.kind = "agent";
    r.agent_id = "ag_1";
    r.name = "shell";
    r.path = "/data/recordings/" + r.id + ".cast";
    r.started_at = started_at;
    return r;
  }
  static std::vector<std::string> ids(const std::vector<RecordingRecord>& rows) {
    std::vector<std::string> out;
    for (const auto& r : rows) out.push_back(r.id);
    return out;
  }
};

TEST_F(RecordingsStoreTest, UpgradesAVersion8StoreKeepingItsTerminals) {
  TerminalRecord old;
  {
    auto v8 = open(8);
    ASSERT_TRUE(v8);
    EXPECT_EQ(v8->schema_version(), 8);
    old = terminal(*v8, "ann");
    // As a version-8 hub wrote it: this build's create_terminal names the columns 9 adds.
    auto db = Db::open(path());
    ASSERT_TRUE(db.ok());
    auto ins = db->prepare(
        "INSERT INTO terminals (id, owner_id, kind, agent_id, channel, name, cols, rows, status, created_at)"
        " VALUES (?, ?, 'agent', ?, 1, 'shell', 80, 24, 'running', 5)");
    ASSERT_TRUE(ins.ok());
    ASSERT_TRUE(ins->bind(1, old.id).bind(2, old.owner_id).bind(3, old.agent_id).run().ok());
  }
  auto s = open();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->schema_version(), 9);
  {
    auto db = Db::open(path());
    ASSERT_TRUE(db.ok());
    auto v = db->prepare("PRAGMA user_version");
    ASSERT_TRUE(v.ok() && *v->step());
    EXPECT_EQ(v->int64(0), 9);
  }
  // A terminal from before recordings existed gets the columns' defaults.
  auto back = s->terminal_by_id(old.id);
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_EQ((*back)->name, "shell");
  EXPECT_TRUE((*back)->record);
  EXPECT_FALSE((*back)->record_input);
  ASSERT_TRUE(s->create_recording(recording(old.id, old.owner_id, 100)).ok());
  EXPECT_TRUE(s->recording_of_terminal(old.id)->has_value());
  s.reset();
  auto again = open();  // already at 9: reopening migrates nothing
  ASSERT_TRUE(again);
  EXPECT_EQ(again->schema_version(), 9);
  EXPECT_TRUE(again->recording_of_terminal(old.id)->has_value());
}

TEST_F(RecordingsStoreTest, TerminalsKeepRecordAndRecordInput) {
  auto s = open();
  ASSERT_TRUE(s);
  auto plain = terminal(*s, "ann");
  ASSERT_TRUE(s->create_terminal(plain).ok());
  auto quiet = terminal(*s, "bob");
  quiet.record = false;
  quiet.record_input = true;
  ASSERT_TRUE(s->create_terminal(quiet).ok());

  auto p = s->terminal_by_id(plain.id);
  ASSERT_TRUE(p.ok() && p->has_value());
  EXPECT_TRUE((*p)->record);
  EXPECT_FALSE((*p)->record_input);
  auto q = s->terminal_by_id(quiet.id);
  ASSERT_TRUE(q.ok() && q->has_value());
  EXPECT_FALSE((*q)->record);
  EXPECT_TRUE((*q)->record_input);
  auto listed = s->list_terminals(TerminalFilter{"", quiet.owner_id});
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_FALSE(listed->at(0).record);
  EXPECT_TRUE(listed->at(0).record_input);
}

TEST_F(RecordingsStoreTest, CreateGetUpdateAndDelete) {
  auto s = open();
  ASSERT_TRUE(s);
  auto r = recording("t_1", "u_1", 1000);
  r.kind = "container";
  r.agent_id = "ag_c";
  r.name = "build";
  r.bytes = 10;
  r.duration = 0.5;
  ASSERT_TRUE(s->create_recording(r).ok());
  EXPECT_FALSE(s->create_recording(r).ok());  // same id

  auto got = s->recording_by_id(r.id);
  ASSERT_TRUE(got.ok() && got->has_value());
  const auto& g = **got;
  EXPECT_EQ(g.id, r.id);
  EXPECT_EQ(g.terminal_id, "t_1");
  EXPECT_EQ(g.owner_id, "u_1");
  EXPECT_EQ(g.kind, "container");
  EXPECT_EQ(g.agent_id, "ag_c");
  EXPECT_EQ(g.name, "build");
  EXPECT_EQ(g.path, r.path);
  EXPECT_EQ(g.started_at, 1000);
  EXPECT_FALSE(g.ended_at.has_value());
  EXPECT_EQ(g.bytes, 10);
  EXPECT_EQ(g.duration, 0.5);

  ASSERT_TRUE(s->update_recording(r.id, 4096, 12.345678, int64_t(1060)).ok());
  ASSERT_TRUE(s->update_recording(r.id, 8192, 61.25, std::nullopt).ok());  // keeps ended_at
  got = s->recording_by_id(r.id);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->bytes, 8192);
  EXPECT_EQ((*got)->duration, 61.25);
  EXPECT_EQ((*got)->ended_at, 1060);

  // Asciicast's six decimals come back as the same double, and the column holds a REAL that
  // other readers of the file (the sqlite3 shell, a backup script) see as seconds.
  ASSERT_TRUE(s->update_recording(r.id, 8192, 12.345678, std::nullopt).ok());
  EXPECT_EQ((*s->recording_by_id(r.id))->duration, 12.345678);
  {
    auto db = Db::open(path());
    ASSERT_TRUE(db.ok());
    auto q = db->prepare("SELECT typeof(duration), duration FROM recordings WHERE id = ?");
    ASSERT_TRUE(q.ok());
    q->bind(1, r.id);
    ASSERT_TRUE(*q->step());
    EXPECT_EQ(q->text(0), "real");
    EXPECT_EQ(q->text(1), "12.345678");
  }

  auto deleted = s->delete_recording(r.id);
  ASSERT_TRUE(deleted.ok());
  EXPECT_TRUE(*deleted);
  deleted = s->delete_recording(r.id);
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(*deleted);
  EXPECT_FALSE(s->recording_by_id(r.id)->has_value());
}

TEST_F(RecordingsStoreTest, UnknownIdsAreNothing) {
  auto s = open();
  ASSERT_TRUE(s);
  auto by_id = s->recording_by_id("r_missing");
  ASSERT_TRUE(by_id.ok());
  EXPECT_FALSE(by_id->has_value());
  auto of = s->recording_of_terminal("t_missing");
  ASSERT_TRUE(of.ok());
  EXPECT_FALSE(of->has_value());
  EXPECT_TRUE(s->update_recording("r_missing", 1, 1, int64_t(5)).ok());  // like the other updates: no row, no error
  EXPECT_FALSE(*s->delete_recording("r_missing"));
  auto none = s->list_recordings(RecordingFilter{});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(RecordingsStoreTest, TheNewestOfATerminalAndKeptAfterItIsDeleted) {
  auto s = open();
  ASSERT_TRUE(s);
  auto t = terminal(*s, "ann");
  ASSERT_TRUE(s->create_terminal(t).ok());
  auto first = recording(t.id, t.owner_id, 100), second = recording(t.id, t.owner_id, 200);
  auto other = recording("t_other", t.owner_id, 300);
  // Inserted newest first: "the newest" is by started_at, not by insertion.
  ASSERT_TRUE(s->create_recording(second).ok());
  ASSERT_TRUE(s->create_recording(first).ok());
  ASSERT_TRUE(s->create_recording(other).ok());
  auto of = s->recording_of_terminal(t.id);
  ASSERT_TRUE(of.ok() && of->has_value());
  EXPECT_EQ((*of)->id, second.id);

  ASSERT_TRUE(s->delete_terminal(t.id).ok());
  EXPECT_FALSE(s->terminal_by_id(t.id)->has_value());
  EXPECT_TRUE(s->recording_by_id(first.id)->has_value());
  EXPECT_EQ((*s->recording_of_terminal(t.id))->id, second.id);
}

TEST_F(RecordingsStoreTest, ListFiltersByTerminalOwnerAndTime) {
  auto s = open();
  ASSERT_TRUE(s);
  auto a1 = recording("t_a", "u_ann", 100), a2 = recording("t_a", "u_ann", 200);
  auto b1 = recording("t_b", "u_ann", 300), c1 = recording("t_c", "u_bob", 400);
  for (const auto& r : {a1, a2, b1, c1}) ASSERT_TRUE(s->create_recording(r).ok());
  auto list = [&](RecordingFilter f) {
    auto rows = s->list_recordings(f);
    EXPECT_TRUE(rows.ok()) << (rows.ok() ? "" : rows.error().message);
    return rows.ok() ? ids(*rows) : std::vector<std::string>{};
  };
  using Ids = std::vector<std::string>;
  EXPECT_EQ(list(RecordingFilter{}), (Ids{c1.id, b1.id, a2.id, a1.id}));  // newest first
  RecordingFilter by_terminal;
  by_terminal.terminal_id = "t_a";
  EXPECT_EQ(list(by_terminal), (Ids{a2.id, a1.id}));
  RecordingFilter by_owner;
  by_owner.owner_id = "u_bob";
  EXPECT_EQ(list(by_owner), (Ids{c1.id}));
  RecordingFilter both;
  both.terminal_id = "t_c";
  both.owner_id = "u_ann";
  EXPECT_TRUE(list(both).empty());
  RecordingFilter window;  // inclusive at both ends
  window.since = 200;
  window.until = 300;
  EXPECT_EQ(list(window), (Ids{b1.id, a2.id}));
  RecordingFilter since;
  since.since = 301;
  EXPECT_EQ(list(since), (Ids{c1.id}));
  RecordingFilter until;
  until.until = 100;
  EXPECT_EQ(list(until), (Ids{a1.id}));
  RecordingFilter owner_window;
  owner_window.owner_id = "u_ann";
  owner_window.since = 150;
  EXPECT_EQ(list(owner_window), (Ids{b1.id, a2.id}));
}

// Five rows, two started in the same second (their order is the ids': newest first means id
// DESC there), paged two at a time: three pages, each row exactly once, in the list's order.
TEST_F(RecordingsStoreTest, PagesNewestFirstByTheLastRowOfThePreviousPage) {
  auto s = open();
  ASSERT_TRUE(s);
  std::vector<RecordingRecord> rows = {recording("t_1", "u_1", 10), recording("t_1", "u_1", 20),
                                       recording("t_2", "u_1", 20), recording("t_3", "u_1", 30),
                                       recording("t_4", "u_1", 40)};
  for (const auto& r : rows) ASSERT_TRUE(s->create_recording(r).ok());
  auto order = rows;
  std::sort(order.begin(), order.end(), [](const RecordingRecord& a, const RecordingRecord& b) {
    return a.started_at != b.started_at ? a.started_at > b.started_at : a.id > b.id;
  });
  EXPECT_EQ(ids(*s->list_recordings(RecordingFilter{})), ids(order));

  RecordingFilter f;
  f.limit = 2;
  std::vector<std::string> seen;
  std::vector<size_t> sizes;
  for (int page = 0; page < 4; ++page) {
    auto got = s->list_recordings(f);
    ASSERT_TRUE(got.ok()) << got.error().message;
    sizes.push_back(got->size());
    if (got->empty()) break;
    for (const auto& r : *got) seen.push_back(r.id);
    f.before = got->back().id;
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{2, 2, 1, 0}));
  EXPECT_EQ(seen, ids(order));  // no row twice, none missed
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 5u);

  // Paging goes with the filters: t_1's page after its newer row.
  RecordingFilter of_t1;
  of_t1.terminal_id = "t_1";
  of_t1.before = rows[1].id;
  EXPECT_EQ(ids(*s->list_recordings(of_t1)), (std::vector<std::string>{rows[0].id}));

  // A `before` that names no recording (never, or deleted since) says so: an empty page would
  // look like the end of the list.
  RecordingFilter unknown;
  unknown.before = "r_never";
  auto missing = s->list_recordings(unknown);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, "not_found");
  ASSERT_TRUE(*s->delete_recording(order[2].id));
  RecordingFilter after_deleted;
  after_deleted.before = order[2].id;
  missing = s->list_recordings(after_deleted);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, "not_found");
}

TEST_F(RecordingsStoreTest, LimitIsClampedToOneThroughAThousand) {
  auto s = open();
  ASSERT_TRUE(s);
  {
    // 1001 rows in one transaction (one by one would be a thousand fsyncs).
    auto db = Db::open(path());
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(db->exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1001)"
                         " INSERT INTO recordings (id, terminal_id, owner_id, kind, agent_id, name, path, started_at)"
                         " SELECT 'r_' || i, 't_' || i, 'u_1', 'agent', 'ag_1', 'shell', '/x.cast', i FROM n")
                    .ok());
  }
  auto count = [&](int limit) {
    RecordingFilter f;
    f.limit = limit;
    auto rows = s->list_recordings(f);
    EXPECT_TRUE(rows.ok());
    return rows.ok() ? rows->size() : 0u;
  };
  EXPECT_EQ(count(0), 1u);
  EXPECT_EQ(count(-5), 1u);
  EXPECT_EQ(count(7), 7u);
  EXPECT_EQ(count(1000), 1000u);
  EXPECT_EQ(count(5000), 1000u);
  EXPECT_EQ(count(RecordingFilter{}.limit), 100u);  // the default
}

TEST_F(RecordingsStoreTest, ShareLinksByHashAndIdGoWithTheirRecording) {
  auto s = open();
  ASSERT_TRUE(s);
  auto r = recording("t_1", "u_1", 1000), other = recording("t_2", "u_1", 1001);
  ASSERT_TRUE(s->create_recording(r).ok());
  ASSERT_TRUE(s->create_recording(other).ok());
  RecordingShareRecord a{"rsh_a", r.id, "u_1", 1000, 5000, "hash-a"}, b{"rsh_b", r.id, "u_1", 1001, 6000, "hash-b"},
      c{"rsh_c", other.id, "u_1", 1002, 7000, "hash-c"};
  for (const auto& sh : {a, b, c}) ASSERT_TRUE(s->create_recording_share(sh).ok()) << sh.id;
  EXPECT_FALSE(s->create_recording_share(RecordingShareRecord{"rsh_d", r.id, "u_1", 1, 2, "hash-a"}).ok())
      << "two links with one hash";
  RecordingShareRecord orphan{"rsh_e", "r_nope", "u_1", 1, 2, "hash-e"};
  EXPECT_FALSE(s->create_recording_share(orphan).ok()) << "a link to no recording";
  auto by_hash = s->recording_share_by_hash("hash-b");
  ASSERT_TRUE(by_hash.ok() && by_hash->has_value());
  EXPECT_EQ((*by_hash)->id, "rsh_b");
  EXPECT_EQ((*by_hash)->recording_id, r.id);
  EXPECT_EQ((*by_hash)->expires_at, 6000);
  EXPECT_FALSE(s->recording_share_by_hash("hash-x")->has_value());
  EXPECT_EQ((*s->recording_share_by_id("rsh_c"))->hash, "hash-c");
  auto listed = s->list_recording_shares(r.id);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].id, "rsh_a");
  EXPECT_EQ((*listed)[1].id, "rsh_b");
  ASSERT_TRUE(s->delete_recording_share("rsh_a").ok());
  EXPECT_FALSE(s->recording_share_by_id("rsh_a")->has_value());
  // Deleting the recording deletes its links, and only its.
  ASSERT_TRUE(*s->delete_recording(r.id));
  EXPECT_FALSE(s->recording_share_by_id("rsh_b")->has_value());
  EXPECT_TRUE(s->recording_share_by_id("rsh_c")->has_value());
}

}  // namespace
}  // namespace rx::hub
