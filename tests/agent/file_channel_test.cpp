// A file channel (FILE frame) through the Channel API, driven as the Agent drives one (poll the fds
// it names, call it back, take its DATA frames, feed it ACKs and input), with no lws and no hub:
// the status line on stream 2, the file on stream 1 under credit, the upload on stream 0, EXIT.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "agent/channel.h"
#include "protocol/codec.h"
#include "protocol/limits.h"
#include "tests/agent/file_test_support.h"

namespace rx::agent {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using protocol::Stream;
using test::names_in;
using test::read_file;
using test::TempDir;
using test::write_file;

constexpr uint32_t kWindow = protocol::kMinWindow;  // 4 KiB: a download runs out of credit at once

protocol::FileOpen file_frame(std::string op, std::string path, uint32_t flags = 0) {
  protocol::FileOpen f;
  f.channel = 9;
  f.op = std::move(op);
  f.path = std::move(path);
  f.window = kWindow;
  f.flags = flags;
  return f;
}

// What the hub would hold of each stream, checked to arrive in order.
struct Hub {
  std::map<Stream, std::string> got;
  std::map<Stream, uint64_t> next;
  void take(Channel& ch) {
    while (auto f = ch.next_frame(protocol::kMaxChunk, 0)) {
      auto frame = protocol::decode(*f);
      ASSERT_TRUE(frame.ok()) << frame.error().message;
      auto& d = std::get<protocol::Data>(*frame);
      EXPECT_EQ(d.offset, next[d.stream]);
      got[d.stream].append(d.bytes.begin(), d.bytes.end());
      next[d.stream] = d.offset + d.bytes.size();
    }
  }
  void ack_all(Channel& ch) {
    for (auto [s, offset] : next) ch.on_ack(s, offset);
  }
  std::vector<json> status() {
    std::vector<json> lines;
    const std::string& err = got[Stream::kStderr];
    for (size_t at = 0, nl; (nl = err.find('\n', at)) != std::string::npos; at = nl + 1)
      lines.push_back(json::parse(err.substr(at, nl - at)));
    return lines;
  }
};

// One turn of the Agent's loop for this channel (at most 50 ms).
void turn(Channel& ch) {
  pollfd fds[4];
  nfds_t n = 0;
  for (Stream s : {Stream::kOutput, Stream::kStderr})
    if (ch.wants_read(s)) fds[n++] = {ch.output_fd(s), POLLIN, 0};
  if (ch.input_pending()) fds[n++] = {ch.input_fd(), POLLOUT, 0};
  int exit_fd = ch.exit_watch_fd();
  if (exit_fd >= 0) fds[n++] = {exit_fd, POLLIN, 0};
  ::poll(fds, n, 50);
  for (Stream s : {Stream::kOutput, Stream::kStderr})
    if (ch.wants_read(s)) ch.read_output(s);
  if (ch.input_pending()) ch.flush_input();
  if (exit_fd >= 0) {
    pollfd p{exit_fd, POLLIN, 0};
    if (::poll(&p, 1, 0) == 1) ch.on_child_event();
  }
}

bool run_until(Channel& ch, const std::function<bool()>& done, std::chrono::milliseconds timeout = 20s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    turn(ch);
  }
  return true;
}

// Until EXIT, acknowledging everything as the hub does for exec output; then CLOSE is due.
std::optional<protocol::Exit> run_to_exit(Channel& ch, Hub& hub) {
  std::optional<protocol::Exit> e;
  bool ok = run_until(ch, [&] {
    hub.take(ch);
    hub.ack_all(ch);
    e = ch.take_exit(Channel::Clock::now());
    return e.has_value();
  });
  EXPECT_TRUE(ok) << "no EXIT";
  hub.take(ch);
  hub.ack_all(ch);
  EXPECT_TRUE(ch.finished());
  return e;
}

std::unique_ptr<Channel> open_file(const protocol::FileOpen& f, const ChannelConfig& config = {}) {
  auto ch = Channel::open(f, config);
  if (!ch) {
    ADD_FAILURE() << ch.error().code << ": " << ch.error().message;
    return nullptr;
  }
  return std::move(ch).value();
}

// The agent's own account, with `home` as its home: relative paths resolve there.
// A channel whose operation must fail: it exits 1 with one status line of `code`, and no output.
void expect_refused(Channel& ch, const std::string& code) {
  Hub hub;
  auto e = run_to_exit(ch, hub);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, 1);
  auto lines = hub.status();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["code"], code);
  EXPECT_EQ(hub.got[Stream::kOutput], "");
}

ChannelConfig home_at(const std::string& home) {
  ChannelConfig c;
  c.account = current_account();
  c.account->home = home;
  return c;
}

std::span<const uint8_t> bytes_of(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

TEST(FileChannel, GetSendsTheStatusLineOnStderrAndTheFileOnStdoutUnderCredit) {
  TempDir dir;
  std::string content;
  for (int i = 0; content.size() < 200000; ++i) content += std::to_string(i) + "\n";
  write_file(dir / "data.txt", content, 0640);
  auto ch = open_file(file_frame("get", "data.txt"), home_at(dir.path()));
  ASSERT_TRUE(ch);
  EXPECT_EQ(ch->id(), 9u);
  EXPECT_GT(ch->pid(), 0);
  EXPECT_FALSE(ch->can_hand_over());  // an upgrade ends it, as it ends an exec

  // Without ACKs, one window of the file and no more.
  Hub hub;
  ASSERT_TRUE(run_until(*ch, [&] {
    hub.take(*ch);
    return !ch->wants_read(Stream::kOutput) && !hub.got[Stream::kStderr].empty();
  }));
  hub.take(*ch);
  EXPECT_EQ(hub.got[Stream::kOutput], content.substr(0, kWindow));

  auto e = run_to_exit(*ch, hub);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, 0);
  EXPECT_EQ(e->signal, "");
  auto lines = hub.status();
  ASSERT_EQ(lines.size(), 1u) << hub.got[Stream::kStderr];
  EXPECT_EQ(lines[0]["ok"], true);
  EXPECT_EQ(lines[0]["size"], content.size());
  EXPECT_EQ(lines[0]["mode"], 0640);
  EXPECT_EQ(lines[0]["is_dir"], false);
  EXPECT_TRUE(hub.got[Stream::kOutput] == content);
}

TEST(FileChannel, PutTakesStreamZeroUntilAnEmptyDataAndAcknowledgesIt) {
  TempDir dir;
  auto ch = open_file(file_frame("put", "up.bin"), home_at(dir.path()));
  ASSERT_TRUE(ch);
  std::string content(3 * kWindow + 123, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = char(i * 7);
  Hub hub;
  uint64_t offset = 0;
  for (size_t at = 0; at < content.size(); at += 1000) {
    std::string chunk = content.substr(at, 1000);
    ch->on_input(offset, bytes_of(chunk));
    offset += chunk.size();
    ASSERT_TRUE(run_until(*ch, [&] { return !ch->input_pending(); }));
  }
  EXPECT_EQ(ch->take_input_ack(), content.size());  // consumed: written to the child's stdin
  ch->on_input(offset, {});                         // the end of the upload
  auto e = run_to_exit(*ch, hub);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, 0) << hub.got[Stream::kStderr];
  EXPECT_EQ(hub.got[Stream::kStderr], "{\"ok\":true,\"ready\":true}\n{\"ok\":true,\"size\":" +
                                          std::to_string(content.size()) + "}\n");
  EXPECT_EQ(hub.got[Stream::kOutput], "");
  EXPECT_TRUE(read_file(dir / "up.bin") == content);
  EXPECT_EQ(names_in(dir.path()), (std::set<std::string>{"up.bin"}));
}

TEST(FileChannel, ListAndDelete) {
  TempDir dir;
  write_file(dir / "a", "1");
  write_file(dir / "b", "22", 0600);
  for (const char* name : {"a", "b"}) {
    timespec t[2] = {{1700000000, 0}, {1700000000, 0}};
    ::utimensat(AT_FDCWD, (dir / name).c_str(), t, 0);
  }
  Hub list;
  auto ch = open_file(file_frame("list", dir.path()));
  ASSERT_TRUE(ch);
  ASSERT_EQ(run_to_exit(*ch, list)->code, 0);
  EXPECT_EQ(list.got[Stream::kOutput],
            "{\"name\":\"a\",\"size\":1,\"mode\":420,\"is_dir\":false,\"mtime\":1700000000}\n"
            "{\"name\":\"b\",\"size\":2,\"mode\":384,\"is_dir\":false,\"mtime\":1700000000}\n");

  Hub del;
  ch = open_file(file_frame("delete", dir / "a"));
  ASSERT_TRUE(ch);
  ASSERT_EQ(run_to_exit(*ch, del)->code, 0);
  EXPECT_EQ(del.got[Stream::kStderr], "{\"ok\":true}\n");
  EXPECT_EQ(names_in(dir.path()), (std::set<std::string>{"b"}));
}

TEST(FileChannel, AFailureIsAStatusLineAndExitOneNotAnError) {
  TempDir dir;
  auto ch = open_file(file_frame("get", "missing"), home_at(dir.path()));
  ASSERT_TRUE(ch);  // OPENED: the operation started and failed, the channel did not
  expect_refused(*ch, "not_found");
}

TEST(FileChannel, ClosingTheChannelCancelsAnUploadAndLeavesNothing) {
  TempDir dir;
  auto ch = open_file(file_frame("put", "partial.bin"), home_at(dir.path()));
  ASSERT_TRUE(ch);
  ch->on_input(0, bytes_of(std::string(50000, 'p')));
  Hub hub;
  ASSERT_TRUE(run_until(*ch, [&] {
    hub.take(*ch);
    return !ch->input_pending() && hub.got[Stream::kStderr].find("ready") != std::string::npos;
  }));
  ch.reset();  // the hub's CLOSE: close_channel destroys it (SIGHUP, then SIGKILL after a grace)
  EXPECT_TRUE(names_in(dir.path()).empty());
}

TEST(FileChannel, TheAccountIsChosenByTheRulesOfAnOpen) {
  auto f = file_frame("get", "/etc/hostname");
  f.account = "root";
  auto root = Channel::open(f, ChannelConfig{});
  ASSERT_FALSE(root.ok());
  EXPECT_EQ(root.error().code, "root_not_allowed");
  f.account = "no-such-account-xyz";
  auto unknown = Channel::open(f, ChannelConfig{});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, "unknown_account");
}

class FileChannelAsNobody : public testing::Test {
 protected:
  void SetUp() override {
    if (::getuid() != 0) GTEST_SKIP() << "needs root to switch accounts";
    auto a = find_account("nobody");
    ASSERT_TRUE(a.ok());
    nobody_ = *a;
  }
  TempDir dir_;
  Account nobody_;
};

TEST_F(FileChannelAsNobody, TheHubsAccountOwnsTheUploadAndCannotReadRootsFile) {
  std::string drop = dir_ / "drop";
  ::mkdir(drop.c_str(), 0777);
  ::chmod(drop.c_str(), 0777);
  auto f = file_frame("put", drop + "/by-nobody.txt");
  f.user = "carol";
  f.account = "nobody";  // a grant's unix_user
  auto ch = open_file(f);
  ASSERT_TRUE(ch);
  ch->on_input(0, bytes_of("hello"));
  ch->on_input(5, {});
  Hub hub;
  auto e = run_to_exit(*ch, hub);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, 0) << hub.got[Stream::kStderr];
  struct stat st {};
  ASSERT_EQ(::stat((drop + "/by-nobody.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, nobody_.uid);
  EXPECT_EQ(st.st_gid, nobody_.gid);

  // The map entry of the user wins over the hub's account, as for an OPEN.
  write_file(dir_ / "root-only", "secret", 0600);
  ChannelConfig config;
  auto m = UserMap::parse("carol = nobody\n", "/etc", "map");
  ASSERT_TRUE(m.ok());
  config.user_map = std::move(m).value();
  auto g = file_frame("get", dir_ / "root-only");
  g.user = "carol";
  g.account = "daemon";
  ch = open_file(g, config);
  ASSERT_TRUE(ch);
  expect_refused(*ch, "permission_denied");
}

}  // namespace
}  // namespace rx::agent
