// hub/channel/exec_fanout: one command on many agents, against a real SQLite store and a real
// libuv loop, with recording links for the agents and a plain client (the HTTP client and real
// agents are in tests/integration/exec_stream_test.cpp).
#include "hub/channel/exec_fanout.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "hub/base/tokens.h"
#include "hub/store/sqlite_store.h"
#include "protocol/limits.h"
#include "tests/hub/channel/link_fake.h"

namespace rx::hub {
namespace {

namespace fs = std::filesystem;
using namespace protocol;

class RecordingClient final : public ExecClient {
 public:
  void line(const std::string& l) override {
    lines.push_back(nlohmann::json::parse(l));
    queued += l.size();
  }
  size_t backlog() const override { return queued; }
  bool gone() const override { return is_gone; }
  void done(nlohmann::json a) override {
    ++dones;
    answer = std::move(a);
  }
  std::vector<nlohmann::json> lines;
  size_t queued = 0;
  bool is_gone = false;
  int dones = 0;
  nlohmann::json answer;
};

class ExecFanoutTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("rexec-fanout-" + new_id(""));
    fs::create_directories(dir_);
    store_ = std::move(SqliteStore::open((dir_ / "hub.db").string())).value();
    uv_loop_init(&loop_);
    user_ = *store_->create_user("alice", false);
    for (const char* name : {"one", "two", "three"}) {
      auto agent = store_->create_agent(user_.id, name, std::string("hash-") + name, "host");
      ASSERT_TRUE(agent.ok()) << agent.error().message;
      agents_.push_back(*agent);
      links_.push_back(std::make_unique<RecordingLink>(agents_.back()));
    }
    fanout_ = std::make_unique<ExecFanout>(*store_, &loop_, registry_);
  }
  void TearDown() override {
    fanout_.reset();
    uv_run(&loop_, UV_RUN_NOWAIT);  // the targets' timers close
    uv_loop_close(&loop_);
    store_.reset();
    fs::remove_all(dir_);
  }
  ExecRequest request(size_t targets, bool stream = false, int parallel = 0) {
    ExecRequest r;
    for (size_t i = 0; i < targets; ++i) r.targets.push_back(agents_[i].name);
    r.argv = {"echo", "hi"};
    r.user_id = user_.id;
    r.stream = stream;
    r.parallel = parallel;
    return r;
  }
  ExecFanout::Handle run(const ExecRequest& r, std::shared_ptr<RecordingClient> client) {
    std::vector<AgentRecord> targets(agents_.begin(), agents_.begin() + long(r.targets.size()));
    auto h = fanout_->add(targets, r, client);
    fanout_->start(h);
    return h;
  }
  // The exec channel the fan-out opened on agent `i` (0: none).
  uint32_t opened(size_t i) {
    auto opens = links_[i]->sent<Open>();
    return opens.empty() ? 0 : opens.back().channel;
  }
  // Agent `i` prints `out`, exits with `code` and closes its channel.
  void finish(size_t i, const std::string& out, int32_t code) {
    uint32_t ch = opened(i);
    ASSERT_NE(ch, 0u) << agents_[i].name << " got no OPEN";
    std::vector<uint8_t> bytes(out.begin(), out.end());
    EXPECT_TRUE(fanout_->on_data(*links_[i], DataView{ch, Stream::kOutput, 0, bytes}));
    EXPECT_TRUE(fanout_->on_frame(*links_[i], ch, Exit{ch, code, ""}));
    EXPECT_TRUE(fanout_->on_frame(*links_[i], ch, Close{ch, ""}));
  }

  fs::path dir_;
  std::unique_ptr<SqliteStore> store_;
  uv_loop_t loop_{};
  User user_;
  std::vector<AgentRecord> agents_;
  std::vector<std::unique_ptr<RecordingLink>> links_;
  AgentRegistry registry_;
  std::unique_ptr<ExecFanout> fanout_;
};

TEST_F(ExecFanoutTest, PlainRunAnswersOnceWhenEveryTargetIsDoneInRequestOrder) {
  registry_.put(*links_[0]);
  registry_.put(*links_[1]);
  auto client = std::make_shared<RecordingClient>();
  run(request(2), client);
  auto open = links_[0]->sent<Open>();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].kind, ChannelKind::kExec);
  EXPECT_EQ(open[0].argv, (std::vector<std::string>{"echo", "hi"}));
  finish(1, "second\n", 3);
  EXPECT_EQ(client->dones, 0) << "one target still runs";
  finish(0, "first\n", 0);
  ASSERT_EQ(client->dones, 1);
  const auto& results = client->answer["results"];
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0]["target"], "one");
  EXPECT_EQ(results[0]["stdout"], "first\n");
  EXPECT_EQ(results[0]["exit_code"], 0);
  EXPECT_EQ(results[1]["exit_code"], 3);
  EXPECT_TRUE(client->lines.empty()) << "a plain run writes no lines";
}

TEST_F(ExecFanoutTest, AnOfflineTargetEndsAtOnceAndAFrameOfNoRunIsNotTheFanouts) {
  auto client = std::make_shared<RecordingClient>();
  run(request(1), client);
  ASSERT_EQ(client->dones, 1);
  EXPECT_EQ(client->answer["results"][0]["error"]["code"], "agent_offline");
  std::vector<uint8_t> none;
  EXPECT_FALSE(fanout_->on_data(*links_[0], DataView{5, Stream::kOutput, 0, none}));
  EXPECT_FALSE(fanout_->on_frame(*links_[0], 5, Close{5, ""}));
}

TEST_F(ExecFanoutTest, ParallelOneOpensTheNextTargetWhenOneEnds) {
  for (auto& l : links_) registry_.put(*l);
  auto client = std::make_shared<RecordingClient>();
  run(request(3, false, 1), client);
  EXPECT_NE(opened(0), 0u);
  EXPECT_EQ(opened(1), 0u);
  finish(0, "", 0);
  EXPECT_NE(opened(1), 0u);
  EXPECT_EQ(opened(2), 0u);
  finish(1, "", 0);
  finish(2, "", 0);
  EXPECT_EQ(client->dones, 1);
}

TEST_F(ExecFanoutTest, AgentGoneEndsItsTargetsAndCancelKillsTheRestStartingNone) {
  for (auto& l : links_) registry_.put(*l);
  auto client = std::make_shared<RecordingClient>();
  auto h = run(request(3, false, 2), client);
  fanout_->agent_gone(agents_[0].id);  // the registry still lists it: only the run cares here
  EXPECT_NE(opened(2), 0u) << "the waiting target took the ended one's place";
  fanout_->cancel(h);
  ASSERT_EQ(client->dones, 1);
  const auto& results = client->answer["results"];
  EXPECT_EQ(results[0]["error"]["code"], "agent_offline");
  EXPECT_EQ(results[1]["error"]["code"], "cancelled");
  EXPECT_EQ(links_[1]->sent<Signal>().at(0).name, "KILL");
}

TEST_F(ExecFanoutTest, StreamedRunHoldsAcksWhileItsClientIsBehind) {
  registry_.put(*links_[0]);
  auto client = std::make_shared<RecordingClient>();
  auto h = run(request(1, true), client);
  uint32_t ch = opened(0);
  client->queued = kExecStreamBacklog + 1;  // the client has not read what it was sent
  std::vector<uint8_t> big(kDefaultWindow / 2, 'x');
  ASSERT_TRUE(fanout_->on_data(*links_[0], DataView{ch, Stream::kOutput, 0, big}));
  ASSERT_FALSE(client->lines.empty());
  EXPECT_EQ(client->lines[0]["stream"], "stdout");
  EXPECT_TRUE(links_[0]->sent<Ack>().empty()) << "no credit while the client is behind";
  client->queued = 0;
  fanout_->resume(h);
  auto acks = links_[0]->sent<Ack>();
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].offset, big.size());
  ASSERT_TRUE(fanout_->on_frame(*links_[0], ch, Exit{ch, 0, ""}));
  ASSERT_TRUE(fanout_->on_frame(*links_[0], ch, Close{ch, ""}));
  EXPECT_EQ(client->dones, 1);
  EXPECT_TRUE(client->answer.is_null()) << "a stream's end carries no answer";
  EXPECT_EQ(client->lines.back()["exit_code"], 0);
}

}  // namespace
}  // namespace rx::hub
