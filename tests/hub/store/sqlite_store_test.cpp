// hub/store/sqlite_store.cpp against real SQLite files in a temporary directory.
#include "hub/store/sqlite_store.h"

#include <gtest/gtest.h>

#include <ctime>
#include <set>

#include <filesystem>
#include <atomic>
#include <fstream>
#include <thread>

#include "hub/base/tokens.h"
#include "tests/hub/store/store_dir.h"

namespace rx::hub {
namespace {

namespace fs = std::filesystem;

class SqliteStoreTest : public StoreDirTest {};

TEST_F(SqliteStoreTest, MigratesAFreshFileAndReopens) {
  auto s = open();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->schema_version(), 9);
  ASSERT_TRUE(s->create_user("alice", true).ok());
  s.reset();
  auto again = open();
  ASSERT_TRUE(again);
  auto u = again->user_by_name("alice");
  ASSERT_TRUE(u.ok() && u->has_value());
  EXPECT_TRUE((*u)->admin);
}

TEST_F(SqliteStoreTest, UpgradesAnOlderStoreKeepingItsRows) {
  {
    auto v1 = SqliteStore::open(path(), 1);
    ASSERT_TRUE(v1.ok());
    EXPECT_EQ((*v1)->schema_version(), 1);
    ASSERT_TRUE((*v1)->create_user("carol", false).ok());
  }
  auto s = open();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->schema_version(), 9);
  EXPECT_TRUE(s->user_by_name("carol")->has_value());
  ASSERT_TRUE(s->audit(audit_entry("u", "a", "t", "", "192.0.2.1")).ok());  // the column migration 2 added
  EXPECT_EQ(s->list_audit(AuditFilter{})->back().ip, "192.0.2.1");
}

TEST_F(SqliteStoreTest, RefusesAStoreFromANewerHub) {
  { ASSERT_TRUE(open()); }
  {
    auto db = Db::open(path());
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(db->exec("PRAGMA user_version = 99").ok());
  }
  auto s = SqliteStore::open(path());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, "store_too_new");
}

TEST_F(SqliteStoreTest, UsesWalAndForeignKeys) {
  auto s = open();
  ASSERT_TRUE(s);
  auto db = Db::open(path());
  auto mode = db->prepare("PRAGMA journal_mode");
  ASSERT_TRUE(mode.ok() && *mode->step());
  EXPECT_EQ(mode->text(0), "wal");
  // A token for a user that does not exist violates the foreign key.
  EXPECT_FALSE(s->create_token("u_nobody", "t", "read", "hash", std::nullopt).ok());
}

TEST_F(SqliteStoreTest, DuplicateUserIsAConflict) {
  auto s = open();
  ASSERT_TRUE(s->create_user("bob", false).ok());
  auto dup = s->create_user("bob", false);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, "conflict");
}

TEST_F(SqliteStoreTest, TokensAreFoundByHashOnly) {
  auto s = open();
  auto u = s->create_user("carol", false);
  auto secret = new_token(TokenKind::kApi);
  auto t = s->create_token(u->id, "laptop", "read write", token_hash(secret), std::nullopt);
  ASSERT_TRUE(t.ok());
  auto found = s->token_by_hash(token_hash(secret));
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->user_id, u->id);
  EXPECT_EQ((*found)->scopes, "read write");
  auto missing = s->token_by_hash(token_hash(new_token(TokenKind::kApi)));
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  // The secret itself is nowhere in the file.
  s.reset();
  std::ifstream in(path(), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ifstream wal(path() + "-wal", std::ios::binary);
  bytes.append((std::istreambuf_iterator<char>(wal)), std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes.find(secret), std::string::npos);
  EXPECT_NE(bytes.find(token_hash(secret)), std::string::npos);
}

TEST_F(SqliteStoreTest, EnrollmentIsSingleUseAndExpires) {
  auto s = open();
  auto u = s->create_user("dave", false);
  ASSERT_TRUE(s->create_enrollment(u->id, "h1", 1000, 1).ok());
  EXPECT_EQ(s->consume_enrollment("nope", 10).error().code, "enrollment_invalid");
  EXPECT_EQ(s->consume_enrollment("h1", 1000).error().code, "enrollment_expired");
  auto owner = s->consume_enrollment("h1", 999);
  ASSERT_TRUE(owner.ok());
  EXPECT_EQ(*owner, u->id);
  EXPECT_EQ(s->consume_enrollment("h1", 999).error().code, "enrollment_used");
}

TEST_F(SqliteStoreTest, EnrollmentRaceHasOneWinner) {
  {
    auto s = open();
    auto u = s->create_user("erin", false);
    ASSERT_TRUE(s->create_enrollment(u->id, "race", INT64_MAX, 1).ok());
  }
  // Two connections (as two hub threads or processes would have) race for the one use.
  std::atomic<int> wins{0}, used{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      auto s = SqliteStore::open(path());
      ASSERT_TRUE(s.ok());
      auto r = (*s)->consume_enrollment("race", 1);
      if (r.ok()) ++wins;
      else if (r.error().code == "enrollment_used") ++used;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wins.load(), 1);
  EXPECT_EQ(used.load(), 7);
}

TEST_F(SqliteStoreTest, AgentsAndChannelsAndTerminals) {
  auto s = open();
  auto u = s->create_user("frank", false);
  auto a = s->create_agent(u->id, "gpu-box", "credhash", "host");
  ASSERT_TRUE(a.ok());
  auto by_cred = s->agent_by_credential("credhash");
  ASSERT_TRUE(by_cred.ok() && by_cred->has_value());
  EXPECT_EQ((*by_cred)->id, a->id);
  EXPECT_EQ(*s->next_channel(a->id), 1u);
  EXPECT_EQ(*s->next_channel(a->id), 2u);
  EXPECT_EQ(s->next_channel("ag_missing").error().code, "not_found");

  TerminalRecord t;
  t.id = new_id("t_");
  t.owner_id = u->id;
  t.kind = "agent";
  t.agent_id = a->id;
  t.channel = 2;
  t.name = "shell";
  t.status = "starting";
  t.created_at = 5;
  ASSERT_TRUE(s->create_terminal(t).ok());
  EXPECT_FALSE(s->create_terminal(t).ok());  // same id
  ASSERT_TRUE(s->update_terminal_status(t.id, "exited", 3).ok());
  ASSERT_TRUE(s->update_terminal_status(t.id, "exited", std::nullopt).ok());  // keeps the code
  auto back = s->terminal_by_id(t.id);
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_EQ((*back)->status, "exited");
  EXPECT_EQ((*back)->exit_code, 3);
  ASSERT_TRUE(s->revoke_agent(a->id).ok());
  EXPECT_TRUE((*s->agent_by_id(a->id))->revoked);
  ASSERT_TRUE(s->delete_terminal(t.id).ok());
  EXPECT_FALSE(s->terminal_by_id(t.id)->has_value());
}

// The filtered lookups that replace full scans (a machine by id or name, a user's container
// terminals): the same rows a scan and a filter in C++ would give, and nothing else.
TEST_F(SqliteStoreTest, AgentsByIdOrNameAndTerminalsByKindAndOwner) {
  auto s = open();
  auto gus = s->create_user("gus", false), hal = s->create_user("hal", false);
  auto a1 = s->create_agent(gus->id, "box", "c1", "host");
  auto a2 = s->create_agent(hal->id, "box", "c2", "host");  // same name, another owner
  auto a3 = s->create_agent(gus->id, "other", "c3", "container");
  ASSERT_TRUE(a1.ok() && a2.ok() && a3.ok());
  auto named = s->agents_called("box");
  ASSERT_TRUE(named.ok());
  std::set<std::string> ids;  // created in the same second: their order is the ids' (random)
  for (const auto& a : *named) ids.insert(a.id);
  EXPECT_EQ(ids, (std::set<std::string>{a1->id, a2->id}));
  auto by_id = s->agents_called(a3->id);
  ASSERT_TRUE(by_id.ok());
  ASSERT_EQ(by_id->size(), 1u);
  EXPECT_EQ((*by_id)[0].name, "other");
  EXPECT_TRUE(s->agents_called("nope")->empty());

  auto terminal = [&](const std::string& owner, const std::string& kind, const std::string& agent, uint32_t ch) {
    TerminalRecord t;
    t.id = new_id("t_");
    t.owner_id = owner;
    t.kind = kind;
    t.agent_id = agent;
    t.channel = ch;
    t.status = "running";
    EXPECT_TRUE(s->create_terminal(t).ok());
    return t.id;
  };
  auto gus_container = terminal(gus->id, "container", a3->id, 1);
  terminal(gus->id, "agent", a1->id, 1);
  auto hal_container = terminal(hal->id, "container", a3->id, 2);
  auto mine = s->list_terminals(TerminalFilter{"container", gus->id});
  ASSERT_TRUE(mine.ok());
  ASSERT_EQ(mine->size(), 1u);
  EXPECT_EQ((*mine)[0].id, gus_container);
  auto containers = s->list_terminals(TerminalFilter{"container", ""});
  ASSERT_TRUE(containers.ok());
  ASSERT_EQ(containers->size(), 2u);
  EXPECT_EQ(s->list_terminals(TerminalFilter{})->size(), 3u);
  EXPECT_EQ(s->list_terminals(TerminalFilter{"", hal->id})->at(0).id, hal_container);
}

TEST_F(SqliteStoreTest, AuditIsOrderedAndPaged) {
  auto s = open();
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(s->audit(audit_entry("u_1", "terminal.create", "t_" + std::to_string(i), "", "10.0.0.1")).ok());
  AuditFilter f;
  f.limit = 3;
  auto first = s->list_audit(f);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 3u);
  EXPECT_EQ(first->front().ip, "10.0.0.1");
  f.since_id = first->back().id;
  f.limit = 10;
  auto rest = s->list_audit(f);
  ASSERT_EQ(rest->size(), 2u);
  EXPECT_EQ(rest->back().target, "t_4");
}

TEST_F(SqliteStoreTest, AuditFiltersByActorActionPrefixTargetAndTime) {
  auto s = open();
  ASSERT_TRUE(s->audit(audit_entry("u_1", "terminal.create", "t_1", "")).ok());
  ASSERT_TRUE(s->audit(audit_entry("u_1", "terminal.delete", "t_1", "")).ok());
  ASSERT_TRUE(s->audit(audit_entry("u_2", "token.create", "tk_9", "")).ok());
  ASSERT_TRUE(s->audit(audit_entry("u_2", "terminalx", "t_2", "")).ok());
  auto count = [&](AuditFilter f) { return s->list_audit(f)->size(); };
  AuditFilter by_actor;
  by_actor.actor = "u_2";
  EXPECT_EQ(count(by_actor), 2u);
  AuditFilter by_prefix;
  by_prefix.action = "terminal.";  // a prefix: not "terminalx"
  EXPECT_EQ(count(by_prefix), 2u);
  AuditFilter exact;
  exact.action = "token.create";
  EXPECT_EQ(count(exact), 1u);
  AuditFilter by_target;
  by_target.target = "t_1";
  EXPECT_EQ(count(by_target), 2u);
  AuditFilter future;
  future.from = int64_t(std::time(nullptr)) + 3600;
  EXPECT_EQ(count(future), 0u);
  AuditFilter past;
  past.to = int64_t(std::time(nullptr)) + 3600;
  EXPECT_EQ(count(past), 4u);
}

TEST_F(SqliteStoreTest, TokensListRevokeAndHealthWrite) {
  auto s = open();
  auto u = s->create_user("alice", false);
  auto v = s->create_user("bob", false);
  auto t1 = s->create_token(u->id, "a", "read", "h1", std::nullopt);
  auto t2 = s->create_token(v->id, "b", "read write", "h2", int64_t(99));
  ASSERT_TRUE(t1.ok() && t2.ok());
  EXPECT_EQ(s->list_tokens(u->id)->size(), 1u);
  EXPECT_EQ(s->list_tokens("")->size(), 2u);
  EXPECT_EQ((*s->token_by_id(t2->id))->expires_at, 99);
  EXPECT_EQ((*s->token_by_hash("h1"))->hash, "h1");
  ASSERT_TRUE(s->revoke_token(t1->id).ok());
  EXPECT_TRUE((*s->token_by_id(t1->id))->revoked);
  EXPECT_FALSE(s->token_by_id("tk_none")->has_value());
  EXPECT_EQ(s->list_users()->size(), 2u);
  EXPECT_TRUE(s->health_check(1).ok());
  EXPECT_TRUE(s->health_check(2).ok());  // an upsert: the probe row never grows
}

TEST_F(SqliteStoreTest, SessionsAndSharesGoWithWhatTheyHangOn) {
  auto s = open();
  ASSERT_TRUE(s);
  auto u = s->create_user("dana", false);
  ASSERT_TRUE(u.ok());
  auto tok = s->create_token(u->id, "web", "read write", "hash-web", std::nullopt);
  ASSERT_TRUE(tok.ok());
  SessionRecord se{new_id("se_"), tok->id, u->id, 10, 20, false, "hash-session"};
  ASSERT_TRUE(s->create_session(se).ok());
  EXPECT_FALSE(s->create_session(se).ok());  // same id and hash
  auto found = s->session_by_hash("hash-session");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->token_id, tok->id);
  EXPECT_EQ((*found)->expires_at, 20);
  ASSERT_TRUE(s->revoke_session(se.id).ok());
  EXPECT_TRUE((*s->session_by_hash("hash-session"))->revoked);
  EXPECT_FALSE(s->session_by_hash("nope")->has_value());

  auto a = s->create_agent(u->id, "box", "cred", "host");
  ASSERT_TRUE(a.ok());
  TerminalRecord t;
  t.id = new_id("t_");
  t.owner_id = u->id;
  t.kind = "agent";
  t.agent_id = a->id;
  t.channel = 1;
  t.name = "shell";
  t.status = "running";
  ASSERT_TRUE(s->create_terminal(t).ok());
  ShareRecord sh{new_id("sh_"), t.id, u->id, "view", 1, 100, "hash-share"};
  ASSERT_TRUE(s->create_share(sh).ok());
  EXPECT_EQ((*s->share_by_hash("hash-share"))->mode, "view");
  EXPECT_EQ((*s->share_by_id(sh.id))->terminal_id, t.id);
  EXPECT_EQ(s->list_shares(t.id)->size(), 1u);
  // Deleting the terminal deletes its links (foreign key cascade).
  ASSERT_TRUE(s->delete_terminal(t.id).ok());
  EXPECT_FALSE(s->share_by_hash("hash-share")->has_value());
  EXPECT_TRUE(s->list_shares(t.id)->empty());
}

}  // namespace
}  // namespace rx::hub
