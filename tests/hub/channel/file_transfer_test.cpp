// hub/channel/file_transfer: file channels against a real SQLite store, with a recording link for
// the agent and a plain client (the HTTP side and a real agent: tests/integration/files_test.cpp).
#include "hub/channel/file_transfer.h"

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

class PlainClient final : public FileClient {
 public:
  void started(const nlohmann::json& s) override { status = s; ++starts; }
  void data(std::string_view b) override { bytes.append(b); }
  size_t backlog() const override { return behind; }
  void room() override { ++rooms; }
  void finished(const std::optional<Error>& e, const nlohmann::json& last) override {
    ++ends;
    error = e;
    final_status = last;
  }
  nlohmann::json status, final_status;
  std::string bytes;
  size_t behind = 0;
  int starts = 0, rooms = 0, ends = 0;
  std::optional<Error> error;
};

std::vector<uint8_t> text(std::string_view s) { return {s.begin(), s.end()}; }

class FileTransferTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("rexec-files-" + new_id(""));
    fs::create_directories(dir_);
    store_ = std::move(SqliteStore::open((dir_ / "hub.db").string())).value();
    auto user = *store_->create_user("alice", false);
    agent_ = *store_->create_agent(user.id, "box", "hash-box", "host");
    link_ = std::make_unique<RecordingLink>(agent_);
    registry_.put(*link_);
    files_ = std::make_unique<FileTransfers>(*store_, registry_);
  }
  void TearDown() override {
    files_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }
  // Starts `op` and returns its handle and channel.
  std::pair<FileTransfers::Handle, uint32_t> start(const std::string& op, std::shared_ptr<PlainClient> client) {
    auto h = files_->start(FileRequest{agent_.id, op, "notes.txt", 0644, false, {"alice", ""}}, client);
    EXPECT_TRUE(h.ok());
    auto opens = link_->sent<FileOpen>();
    EXPECT_FALSE(opens.empty());
    return {h.ok() ? *h : FileTransfers::Handle{}, opens.empty() ? 0 : opens.back().channel};
  }
  void from_agent(const Frame& f) {
    if (auto* d = std::get_if<Data>(&f)) {
      files_->on_data(*link_, DataView{d->channel, d->stream, d->offset, d->bytes});
      return;
    }
    ASSERT_TRUE(files_->on_frame(*link_, frame_channel(f), f));
  }
  void finish_ok(uint32_t ch) {
    from_agent(Exit{ch, 0, ""});
    from_agent(Close{ch, "exited"});
  }
  fs::path dir_;
  std::unique_ptr<SqliteStore> store_;
  AgentRecord agent_;
  AgentRegistry registry_;
  std::unique_ptr<RecordingLink> link_;
  std::unique_ptr<FileTransfers> files_;
};

TEST_F(FileTransferTest, AGetSendsItsFrameHoldsEarlyOutputAndEndsOnClose) {
  auto client = std::make_shared<PlainClient>();
  auto [h, ch] = start("get", client);
  auto open = link_->sent<FileOpen>().at(0);
  EXPECT_EQ(open.op, "get");
  EXPECT_EQ(open.path, "notes.txt");
  EXPECT_EQ(open.user, "alice");
  EXPECT_EQ(open.window, kDefaultWindow);
  // No upload: stdin is ended at once.
  auto data = link_->sent<Data>();
  ASSERT_EQ(data.size(), 1u);
  EXPECT_TRUE(data[0].bytes.empty());
  // The file's bytes overtake the status line (the agent reads both pipes in its own order).
  from_agent(Data{ch, Stream::kOutput, 0, text("hello ")});
  EXPECT_EQ(client->starts, 0);
  EXPECT_EQ(client->bytes, "");
  from_agent(Data{ch, Stream::kStderr, 0, text("{\"ok\":true,\"size\":11,\"mode\":420,")});
  EXPECT_EQ(client->starts, 0);  // half a line is no status yet
  from_agent(Data{ch, Stream::kStderr, 32, text("\"mtime\":5,\"is_dir\":false}\n")});
  EXPECT_EQ(client->starts, 1);
  EXPECT_EQ(client->status["size"], 11);
  EXPECT_EQ(client->bytes, "hello ");
  from_agent(Data{ch, Stream::kOutput, 6, text("world")});
  from_agent(Data{ch, Stream::kOutput, 6, text("world")});  // a resend after a hiccup: dropped
  EXPECT_EQ(client->bytes, "hello world");
  finish_ok(ch);
  EXPECT_EQ(client->ends, 1);
  EXPECT_FALSE(client->error.has_value());
  EXPECT_EQ(files_->active(), 0u);
}

TEST_F(FileTransferTest, AFailureLineIsTheErrorAndItsOutputIsDropped) {
  auto client = std::make_shared<PlainClient>();
  auto [h, ch] = start("get", client);
  from_agent(Data{ch, Stream::kStderr, 0,
                  text("{\"ok\":false,\"code\":\"permission_denied\",\"message\":\"notes.txt: Permission denied\"}\n")});
  from_agent(Data{ch, Stream::kOutput, 0, text("never")});
  from_agent(Exit{ch, 1, ""});
  from_agent(Close{ch, "exited"});
  EXPECT_EQ(client->starts, 0);
  EXPECT_EQ(client->bytes, "");
  ASSERT_TRUE(client->error.has_value());
  EXPECT_EQ(client->error->code, "permission_denied");
  EXPECT_EQ(client->error->message, "notes.txt: Permission denied");
}

TEST_F(FileTransferTest, GarbageOrSilenceFromTheAgentIsAnIoError) {
  auto a = std::make_shared<PlainClient>();
  auto [ha, cha] = start("delete", a);
  from_agent(Data{cha, Stream::kStderr, 0, text("not json\n")});
  finish_ok(cha);
  ASSERT_TRUE(a->error.has_value());
  EXPECT_EQ(a->error->code, "io_error");
  // An exit that is not 0 with no line to say why.
  auto b = std::make_shared<PlainClient>();
  auto [hb, chb] = start("delete", b);
  from_agent(Exit{chb, 137, "KILL"});
  from_agent(Close{chb, "exited"});
  ASSERT_TRUE(b->error.has_value());
  EXPECT_EQ(b->error->code, "io_error");
  EXPECT_NE(b->error->message.find("137"), std::string::npos) << b->error->message;
}

TEST_F(FileTransferTest, AnUploadNeverHasMoreThanTheWindowInFlight) {
  auto client = std::make_shared<PlainClient>();
  auto [h, ch] = start("put", client);
  EXPECT_TRUE(link_->sent<Data>().empty()) << "a put must not end its input at once";
  std::string chunk(100 * 1024, 'u');
  for (int i = 0; i < 5; ++i) files_->write(h, chunk);  // 500 KiB, twice the window
  uint64_t sent = 0;
  for (const auto& d : link_->sent<Data>()) {
    EXPECT_EQ(d.offset, sent);
    EXPECT_LE(d.bytes.size(), kMaxChunk);
    sent += d.bytes.size();
  }
  EXPECT_EQ(sent, kDefaultWindow);
  EXPECT_EQ(files_->held(h), 5 * chunk.size() - kDefaultWindow);
  // The agent took half: half a window more goes, and the client hears there is room.
  from_agent(Ack{ch, Stream::kInput, kDefaultWindow / 2});
  sent = 0;
  for (const auto& d : link_->sent<Data>()) sent += d.bytes.size();
  EXPECT_EQ(sent, kDefaultWindow + kDefaultWindow / 2);
  EXPECT_GE(client->rooms, 1);
  files_->end_input(h);
  from_agent(Ack{ch, Stream::kInput, sent});
  from_agent(Ack{ch, Stream::kInput, 5 * chunk.size()});
  auto all = link_->sent<Data>();
  ASSERT_FALSE(all.empty());
  EXPECT_TRUE(all.back().bytes.empty()) << "the end of the upload was not sent";
  EXPECT_EQ(all.back().offset, 5 * chunk.size());
  from_agent(Data{ch, Stream::kStderr, 0, text("{\"ok\":true,\"ready\":true}\n{\"ok\":true,\"size\":512000}\n")});
  finish_ok(ch);
  EXPECT_FALSE(client->error.has_value());
  EXPECT_EQ(client->final_status["size"], 512000);
}

TEST_F(FileTransferTest, ADownloadIsAckedOnlyAsFastAsItsClientTakesIt) {
  auto client = std::make_shared<PlainClient>();
  auto [h, ch] = start("get", client);
  from_agent(Data{ch, Stream::kStderr, 0, text("{\"ok\":true,\"size\":262144}\n")});
  client->behind = kFileClientBacklog + 1;  // the HTTP client stopped reading
  size_t acks_before = link_->sent<Ack>().size();
  std::vector<uint8_t> block(kMaxChunk, 'd');
  for (uint64_t off = 0; off < kDefaultWindow; off += block.size()) from_agent(Data{ch, Stream::kOutput, off, block});
  for (const auto& a : link_->sent<Ack>()) EXPECT_NE(a.stream, Stream::kOutput) << "ACKed output the client had not taken";
  client->behind = 0;
  files_->resume(h);
  auto acks = link_->sent<Ack>();
  ASSERT_GT(acks.size(), acks_before);
  EXPECT_EQ(acks.back().stream, Stream::kOutput);
  EXPECT_EQ(acks.back().offset, kDefaultWindow);
  // The last bytes, under a quarter window, are ACKed once the child exited: the agent sends
  // CLOSE only when all its output is acknowledged.
  from_agent(Data{ch, Stream::kOutput, kDefaultWindow, text("tail")});
  EXPECT_EQ(link_->sent<Ack>().back().offset, kDefaultWindow) << "a few bytes were ACKed before they had to be";
  from_agent(Exit{ch, 0, ""});
  EXPECT_EQ(link_->sent<Ack>().back().offset, kDefaultWindow + 4);
}

TEST_F(FileTransferTest, ACancelClosesTheChannelAndEndsWhenTheAgentSaysItIsGone) {
  auto client = std::make_shared<PlainClient>();
  auto [h, ch] = start("put", client);
  files_->write(h, "partial");
  files_->cancel(h, make_error("too_large", "over the cap"));
  auto closes = link_->sent<Close>();
  ASSERT_EQ(closes.size(), 1u);
  EXPECT_EQ(closes[0].channel, ch);
  EXPECT_EQ(client->ends, 0) << "answered before the agent removed what it wrote";
  from_agent(Close{ch, "cancelled"});
  EXPECT_EQ(client->ends, 1);
  ASSERT_TRUE(client->error.has_value());
  EXPECT_EQ(client->error->code, "too_large");
}

TEST_F(FileTransferTest, AnAgentGoneEndsItsTransfersAndAnOfflineAgentRefusesAtOnce) {
  auto client = std::make_shared<PlainClient>();
  auto [h, ch] = start("get", client);
  files_->agent_gone(agent_.id);
  ASSERT_TRUE(client->error.has_value());
  EXPECT_EQ(client->error->code, "agent_offline");
  EXPECT_EQ(files_->active(), 0u);
  EXPECT_FALSE(files_->on_frame(*link_, ch, Close{ch, "late"})) << "a finished transfer still claimed its channel";
  registry_.remove(*link_);
  auto refused = files_->start(FileRequest{agent_.id, "get", "x", 0, false, {}}, std::make_shared<PlainClient>());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, "agent_offline");
}

}  // namespace
}  // namespace rx::hub
