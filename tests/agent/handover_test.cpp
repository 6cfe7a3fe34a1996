// agent/handover.cpp: the state one agent hands the next (every malformed input refused with a
// reason, never a crash), the descriptors it inherits, and a real terminal moved from one Channel
// to another as a successor agent resumes it.
#include "agent/handover.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "agent/channel.h"
#include "protocol/codec.h"
#include "protocol/limits.h"

namespace rx::agent {
namespace {

using namespace std::chrono_literals;

HandoverState sample() {
  HandoverState s;
  ChannelSnapshot a;
  a.id = 7;
  a.window = 256 * 1024;
  a.pid = 4242;
  a.ring_start = 1000;
  a.ring = {'h', 'e', 'l', 'l', 'o', 0, 0xff};
  a.acked = 1003;
  a.input_consumed = 55;
  a.pending_input = {'l', 's', '\r'};
  ChannelSnapshot b;
  b.id = 9;
  b.window = 4096;
  b.pid = 77;
  b.eof = true;
  b.exited = true;
  b.exit_code = 130;
  b.exit_signal = "INT";
  b.exit_sent = true;
  b.reaped_ms_ago = 1500;
  s.channels = {a, b};
  return s;
}

TEST(Handover, StateRoundTrips) {
  auto bytes = encode_handover(sample());
  auto back = decode_handover(bytes);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, sample());
  auto empty = decode_handover(encode_handover({}));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->channels.empty());
}

TEST(Handover, EveryTruncationIsRefused) {
  auto bytes = encode_handover(sample());
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto r = decode_handover(std::span(bytes).first(n));
    ASSERT_FALSE(r.ok()) << "a state cut at " << n << " of " << bytes.size() << " bytes was accepted";
    EXPECT_EQ(r.error().code, "bad_handover");
  }
}

// Patches the first channel's record: offset counted from the record's start.
std::vector<uint8_t> patched(size_t offset, std::vector<uint8_t> with) {
  auto bytes = encode_handover(sample());
  std::copy(with.begin(), with.end(), bytes.begin() + 16 + long(offset));  // magic, version, count, length
  return bytes;
}

TEST(Handover, BadValuesAreRefusedWithAReason) {
  struct Case {
    std::vector<uint8_t> bytes;
    std::string says;
  };
  auto bytes = encode_handover(sample());
  std::vector<Case> cases;
  cases.push_back({{'R', 'X'}, "no RXHO magic"});
  cases.push_back({{'P', 'K', 3, 4, 1, 0, 0, 0, 0, 0, 0, 0}, "no RXHO magic"});
  auto v2 = bytes;
  v2[4] = 2;
  cases.push_back({v2, "is version 2; this agent reads version 1"});
  cases.push_back({patched(0, {0, 0, 0, 0}), "names channel 0"});
  cases.push_back({patched(4, {0, 0, 0, 0}), "a window of 0"});
  cases.push_back({patched(8, {0, 0, 0, 0}), "no pid"});
  // The ring's length field claims 2^40 bytes.
  cases.push_back({patched(20, {0, 0, 0, 0, 0, 1, 0, 0}), "truncated or oversized"});
  // acked (after the 7 ring bytes) beyond the ring's end.
  cases.push_back({patched(35, {0xff, 0xff, 0, 0, 0, 0, 0, 0}), "acknowledged beyond its output"});
  auto twice = encode_handover(HandoverState{{sample().channels[0], sample().channels[0]}});
  cases.push_back({twice, "lists channel 7 twice"});
  auto trailing = bytes;
  trailing.push_back(0);
  cases.push_back({trailing, "1 bytes after its last channel"});
  auto many = bytes;
  many[8] = many[9] = many[10] = many[11] = 0xff;
  cases.push_back({many, "bad channel count"});
  for (const auto& c : cases) {
    auto r = decode_handover(c.bytes);
    ASSERT_FALSE(r.ok()) << "accepted; wanted: " << c.says;
    EXPECT_EQ(r.error().code, "bad_handover");
    EXPECT_NE(r.error().message.find(c.says), std::string::npos) << r.error().message;
  }
}

TEST(Handover, FieldsANewerAgentAppendsAreSkipped) {
  HandoverState one{{sample().channels[0]}};
  auto bytes = encode_handover(one);
  // Grow the record by 5 bytes of "future fields".
  uint32_t len = uint32_t(bytes[12]) | uint32_t(bytes[13]) << 8 | uint32_t(bytes[14]) << 16 | uint32_t(bytes[15]) << 24;
  len += 5;
  for (int i = 0; i < 4; ++i) bytes[12 + size_t(i)] = uint8_t(len >> (8 * i));
  bytes.insert(bytes.end(), {1, 2, 3, 4, 5});
  auto r = decode_handover(bytes);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, one);
}

TEST(Handover, StateFdIsSealedAndReadsBack) {
  auto bytes = encode_handover(sample());
  auto fd = write_state_fd(bytes);
  ASSERT_TRUE(fd.ok()) << fd.error().message;
  EXPECT_EQ(::write(*fd, "x", 1), -1) << "the state memfd is not sealed";
  auto back = read_state_fd(*fd);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, bytes);
  auto small = read_state_fd(*fd, 10);
  EXPECT_FALSE(small.ok());
  ::close(*fd);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  auto pipe_state = read_state_fd(p[0]);
  ASSERT_FALSE(pipe_state.ok());
  EXPECT_NE(pipe_state.error().message.find("not a memfd"), std::string::npos);
  ::close(p[0]);
  ::close(p[1]);
}

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) >= 0; }

TEST(Handover, InheritsTheReexecListTakesWhatItNamesAndClosesTheRest) {
  int a[2], b[2];
  ASSERT_EQ(::pipe(a), 0);
  ASSERT_EQ(::pipe(b), 0);
  std::string list = "rexec.state=" + std::to_string(a[0]) + ",rexec.c1.pty=" + std::to_string(b[0]);
  ::setenv("REXEC_HANDOVER_FDS", list.c_str(), 1);
  {
    auto in = InheritedFds::take_from_environment();
    EXPECT_EQ(std::getenv("REXEC_HANDOVER_FDS"), nullptr) << "a shell would inherit the list";
    EXPECT_FALSE(in.from_systemd());
    EXPECT_TRUE(in.problem.empty()) << in.problem;
    EXPECT_EQ(in.names(), (std::vector<std::string>{"rexec.c1.pty", "rexec.state"}));
    EXPECT_TRUE(::fcntl(a[0], F_GETFD) & FD_CLOEXEC) << "an inherited fd would leak into shells";
    EXPECT_EQ(in.take("rexec.state"), a[0]);
    EXPECT_EQ(in.take("rexec.state"), -1);
    EXPECT_EQ(in.take("rexec.c2.pty"), -1);
  }
  EXPECT_TRUE(is_open(a[0])) << "a taken fd belongs to the taker";
  EXPECT_FALSE(is_open(b[0])) << "an fd nobody took must be closed (its shell hangs up)";
  for (int fd : {a[0], a[1], b[1]}) ::close(fd);
}

TEST(Handover, BadReexecEntriesAreReportedAndSkipped) {
  int a[2];
  ASSERT_EQ(::pipe(a), 0);
  int closed = ::dup(a[1]);
  ::close(closed);
  std::string list = "rexec.state=" + std::to_string(closed) + ",bad:name=" + std::to_string(a[0]) + ",x=1,junk,ok=" +
                     std::to_string(a[0]) + ",ok=" + std::to_string(a[1]);
  ::setenv("REXEC_HANDOVER_FDS", list.c_str(), 1);
  auto in = InheritedFds::take_from_environment();
  EXPECT_NE(in.problem.find("REXEC_HANDOVER_FDS has a bad entry"), std::string::npos) << in.problem;
  EXPECT_EQ(in.names(), std::vector<std::string>{"ok"});  // the second "ok" is refused too
  EXPECT_EQ(in.take("ok"), a[0]);
  ::close(a[0]);
  ::close(a[1]);
}

TEST(Handover, ListenFdsForAnotherPidAreNotOurs) {
  ::setenv("LISTEN_PID", std::to_string(::getpid() + 1).c_str(), 1);
  ::setenv("LISTEN_FDS", "1", 1);
  ::setenv("LISTEN_FDNAMES", "rexec.state", 1);
  auto in = InheritedFds::take_from_environment();
  EXPECT_TRUE(in.empty());
  EXPECT_EQ(std::getenv("LISTEN_FDS"), nullptr);
  EXPECT_EQ(std::getenv("LISTEN_PID"), nullptr);
}

// Drains a channel's output into its ring until `want` is in it.
bool read_into(Channel& ch, const std::string& want, std::chrono::milliseconds timeout = 5s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    ch.read_output(protocol::Stream::kOutput);
    auto s = ch.snapshot(Channel::Clock::now());
    if (std::string(s.ring.begin(), s.ring.end()).find(want) != std::string::npos) return true;
    pollfd p{ch.output_fd(protocol::Stream::kOutput), POLLIN, 0};
    ::poll(&p, 1, 50);
  }
  return false;
}

TEST(Handover, ATerminalMovesToASuccessorChannelAndKeepsEverything) {
  protocol::Open o;
  o.channel = 3;
  o.kind = protocol::ChannelKind::kPty;
  o.argv = {"/bin/sh", "-c", "echo READY; read x; echo got=$x; exit 5"};
  auto opened = Channel::open(o, {});
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  auto old = std::move(opened).value();
  ASSERT_TRUE(read_into(*old, "READY"));
  pid_t pid = old->pid();
  auto snap = old->snapshot(Channel::Clock::now());
  EXPECT_EQ(snap.id, 3u);
  EXPECT_EQ(snap.pid, pid);
  EXPECT_FALSE(snap.exited);
  // What a successor gets: its own copies of the master and the pidfd.
  int master = ::fcntl(old->input_fd(), F_DUPFD_CLOEXEC, 0);
  int pidfd = ::fcntl(old->pidfd(), F_DUPFD_CLOEXEC, 0);
  old->release();
  old.reset();  // the predecessor goes away...
  EXPECT_EQ(::kill(pid, 0), 0) << "...and must not take the shell with it";

  auto ch = Channel::restore(snap, master, pidfd, Channel::Clock::now());
  EXPECT_EQ(ch->pid(), pid);
  auto s2 = ch->snapshot(Channel::Clock::now());
  EXPECT_EQ(s2.ring, snap.ring) << "the output ring came along";
  EXPECT_EQ(s2.ring_start, snap.ring_start);
  std::string line = "hi\n";
  ch->on_input(snap.input_consumed, std::span(reinterpret_cast<const uint8_t*>(line.data()), line.size()));
  EXPECT_EQ(ch->input_received(), snap.input_consumed + line.size()) << "input numbering continues";
  ASSERT_TRUE(read_into(*ch, "got=hi")) << "the shell did not read input written by the successor";
  auto deadline = std::chrono::steady_clock::now() + 5s;
  std::optional<protocol::Exit> exit;
  while (!exit && std::chrono::steady_clock::now() < deadline) {
    ch->on_child_event();
    ch->read_output(protocol::Stream::kOutput);
    while (ch->next_frame(protocol::kMaxChunk, 0)) {}
    exit = ch->take_exit(Channel::Clock::now());
    if (!exit) std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->code, 5);  // still our child (a re-exec keeps the pid): reaped with waitpid
}

TEST(Handover, ARestoredTerminalWithoutItsDescriptorsEndsWithAnUnknownStatus) {
  ChannelSnapshot s = sample().channels[0];
  s.pid = 999999;  // nobody's: never signalled, since its pidfd did not come along
  auto ch = Channel::restore(s, -1, -1, Channel::Clock::now());
  EXPECT_FALSE(ch->wants_read(protocol::Stream::kOutput));
  EXPECT_EQ(ch->exit_watch_fd(), -1);
  // The ring's unsent bytes still go out, then the EXIT.
  std::optional<protocol::Exit> exit;
  for (int i = 0; i < 10 && !exit; ++i) {
    while (ch->next_frame(protocol::kMaxChunk, 0)) {}
    exit = ch->take_exit(Channel::Clock::now());
  }
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->code, kExitUnknown);
}

}  // namespace
}  // namespace rx::agent
