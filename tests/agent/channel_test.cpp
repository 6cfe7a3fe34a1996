// agent/channel.cpp with real PTYs, pipes and processes, driven the way the Agent drives it
// (poll the fds it names, call it back, take the frames it offers, feed it ACKs) but without
// lws or a hub. Negative checks ("not read", "no EXIT yet") look at the channel's state and at
// the fd itself right away, never after a sleep; positive ones poll with a deadline.
#include "agent/channel.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/ioctl.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>

#include "protocol/codec.h"
#include "protocol/limits.h"

namespace rx::agent {
namespace {

using namespace std::chrono_literals;
using protocol::ChannelKind;
using protocol::Stream;

constexpr uint32_t kWindow = protocol::kMinWindow;  // 4 KiB: small enough to run out of quickly

protocol::Open open_frame(ChannelKind kind, const std::string& script, uint32_t window = kWindow, uint32_t id = 7) {
  protocol::Open o;
  o.channel = id;
  o.kind = kind;
  o.argv = {"/bin/sh", "-c", script};
  o.window = window;
  return o;
}

std::unique_ptr<Channel> open_channel(ChannelKind kind, const std::string& script, uint32_t window = kWindow) {
  auto ch = Channel::open(open_frame(kind, script, window), ChannelConfig{});
  if (!ch) {
    ADD_FAILURE() << "open: " << ch.error().message;
    return nullptr;
  }
  return std::move(ch).value();
}

std::span<const uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Bytes waiting in the kernel on a pipe or pty fd, unread.
int unread(int fd) {
  int n = -1;
  EXPECT_EQ(::ioctl(fd, FIONREAD, &n), 0);
  return n;
}

// What the hub would hold: each stream's bytes, checked to arrive in order without gaps.
struct Hub {
  std::map<Stream, std::string> got;
  std::map<Stream, uint64_t> next;  // the offset the next DATA must carry
  int frames = 0;

  // Takes every DATA the channel offers now, at most `max` bytes each.
  void take(Channel& ch, size_t max = protocol::kMaxChunk) {
    while (auto f = ch.next_frame(max, 0)) {
      auto frame = protocol::decode(*f);
      ASSERT_TRUE(frame.ok()) << frame.error().message;
      auto* d = std::get_if<protocol::Data>(&*frame);
      ASSERT_NE(d, nullptr);
      EXPECT_EQ(d->channel, ch.id());
      EXPECT_LE(d->bytes.size(), max);
      EXPECT_FALSE(d->bytes.empty());
      EXPECT_EQ(d->offset, next[d->stream]) << "stream " << int(d->stream);
      got[d->stream].append(d->bytes.begin(), d->bytes.end());
      next[d->stream] = d->offset + d->bytes.size();
      ++frames;
    }
  }
  void ack_all(Channel& ch) {
    for (auto [s, offset] : next) ch.on_ack(s, offset);
  }
};

// One turn of the Agent's loop for this channel: wait (at most 50 ms) for an fd the channel
// wants watched, then call it back. `reap` false leaves the pidfd alone.
void turn(Channel& ch, bool reap = true) {
  pollfd fds[3];
  nfds_t n = 0;
  for (Stream s : {Stream::kOutput, Stream::kStderr})
    if (ch.wants_read(s)) fds[n++] = {ch.output_fd(s), POLLIN, 0};
  int exit_fd = reap ? ch.exit_watch_fd() : -1;
  if (exit_fd >= 0) fds[n++] = {exit_fd, POLLIN, 0};
  ::poll(fds, n, 50);
  for (Stream s : {Stream::kOutput, Stream::kStderr})
    if (ch.wants_read(s)) ch.read_output(s);
  if (exit_fd >= 0) {
    pollfd p{exit_fd, POLLIN, 0};
    if (::poll(&p, 1, 0) == 1) ch.on_child_event();
  }
}

// Turns until `done` holds; false after the deadline.
bool run_until(Channel& ch, const std::function<bool()>& done, bool reap = true,
               std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    turn(ch, reap);
  }
  return true;
}

bool at_eof(Channel& ch, Stream s) { return ch.output_fd(s) < 0; }

// --- output and credit ---

TEST(ChannelOutput, PtyOutputBecomesDataFramesFromOffsetZero) {
  auto ch = open_channel(ChannelKind::kPty, "printf 'hello from a pty'");
  ASSERT_TRUE(ch);
  EXPECT_EQ(ch->id(), 7u);
  EXPECT_GT(ch->pid(), 0);
  EXPECT_EQ(ch->output_fd(Stream::kStderr), -1);  // a terminal has one output stream
  Hub hub;
  ASSERT_TRUE(run_until(*ch, [&] {
    hub.take(*ch);
    return hub.got[Stream::kOutput].find("hello from a pty") != std::string::npos;
  })) << hub.got[Stream::kOutput];
  EXPECT_EQ(hub.got.count(Stream::kStderr), 0u);
}

TEST(ChannelOutput, OutOfCreditTheStreamIsNotReadAndAnAckReopensIt) {
  constexpr int kTotal = 10000;  // fits a pipe (64 KiB), so the writer finishes and all of it waits there
  auto ch = open_channel(ChannelKind::kExec, "head -c 10000 /dev/zero | tr '\\0' x");
  ASSERT_TRUE(ch);
  Hub hub;
  ASSERT_TRUE(run_until(*ch, [&] { return !ch->wants_read(Stream::kOutput); }));
  hub.take(*ch);
  EXPECT_EQ(hub.got[Stream::kOutput], std::string(kWindow, 'x'));  // a window's worth, no more
  EXPECT_FALSE(ch->has_frame());

  // The rest is written and sits in the pipe; reading now (a spurious wake-up) takes none of it.
  int fd = ch->output_fd(Stream::kOutput);
  ASSERT_GE(fd, 0);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (unread(fd) < kTotal - int(kWindow) && std::chrono::steady_clock::now() < deadline) ::poll(nullptr, 0, 10);
  ASSERT_EQ(unread(fd), kTotal - int(kWindow));
  ch->read_output(Stream::kOutput);
  EXPECT_EQ(unread(fd), kTotal - int(kWindow));
  EXPECT_FALSE(ch->has_frame());
  EXPECT_FALSE(ch->next_frame(protocol::kMaxChunk, 0));
  EXPECT_FALSE(ch->wants_read(Stream::kOutput));

  // An ACK of 1000 bytes is credit for exactly 1000 more.
  ch->on_ack(Stream::kOutput, 1000);
  EXPECT_TRUE(ch->wants_read(Stream::kOutput));
  ch->read_output(Stream::kOutput);
  EXPECT_EQ(unread(fd), kTotal - int(kWindow) - 1000);
  EXPECT_FALSE(ch->wants_read(Stream::kOutput));
  hub.take(*ch);
  EXPECT_EQ(hub.next[Stream::kOutput], kWindow + 1000u);

  // Acknowledging as it arrives, everything comes through, then EOF.
  ASSERT_TRUE(run_until(*ch, [&] {
    hub.take(*ch);
    hub.ack_all(*ch);
    return at_eof(*ch, Stream::kOutput);
  }));
  hub.take(*ch);
  EXPECT_EQ(hub.got[Stream::kOutput], std::string(kTotal, 'x'));
}

TEST(ChannelOutput, EachStreamHasItsOwnCredit) {
  // stderr runs out of credit; stdout is read to the end regardless.
  auto ch = open_channel(ChannelKind::kExec, "head -c 9000 /dev/zero >&2; printf 'still here'");
  ASSERT_TRUE(ch);
  Hub hub;
  ASSERT_TRUE(run_until(*ch, [&] {
    hub.take(*ch);
    return at_eof(*ch, Stream::kOutput) && !ch->wants_read(Stream::kStderr);
  }));
  hub.take(*ch);
  EXPECT_EQ(hub.got[Stream::kOutput], "still here");
  EXPECT_EQ(hub.got[Stream::kStderr], std::string(kWindow, '\0'));  // offsets count per stream from 0
  EXPECT_FALSE(at_eof(*ch, Stream::kStderr));
}

TEST(ChannelOutput, FramesAreCutAtTheRequestedSize) {
  auto ch = open_channel(ChannelKind::kExec, "printf 0123456789");
  ASSERT_TRUE(ch);
  ASSERT_TRUE(run_until(*ch, [&] { return at_eof(*ch, Stream::kOutput); }));
  Hub hub;
  hub.take(*ch, 3);
  EXPECT_EQ(hub.got[Stream::kOutput], "0123456789");
  EXPECT_EQ(hub.frames, 4);  // 3 + 3 + 3 + 1
}

// --- ACKs the channel must not believe ---

TEST(ChannelAck, AnAckForBytesNeverSentGivesNoCredit) {
  auto ch = open_channel(ChannelKind::kExec, "head -c 10000 /dev/zero");
  ASSERT_TRUE(ch);
  ASSERT_TRUE(run_until(*ch, [&] { return !ch->wants_read(Stream::kOutput); }));
  ASSERT_TRUE(ch->next_frame(1000, 0));  // 1000 of the 4096 read bytes sent

  // Read but unsent bytes cannot have been received: an ACK for them is a confused hub.
  ch->on_ack(Stream::kOutput, kWindow);
  EXPECT_FALSE(ch->wants_read(Stream::kOutput));
  ch->on_ack(Stream::kOutput, 1u << 30);
  EXPECT_FALSE(ch->wants_read(Stream::kOutput));
  // ACKs on streams the agent does not send on change nothing either.
  ch->on_ack(Stream::kInput, 1000);
  ch->on_ack(Stream::kStderr, 1000);
  EXPECT_FALSE(ch->wants_read(Stream::kOutput));

  // The real ACK still works after them.
  ch->on_ack(Stream::kOutput, 1000);
  EXPECT_TRUE(ch->wants_read(Stream::kOutput));
  // The unsent 3096 bytes are still offered, from offset 1000.
  auto f = ch->next_frame(protocol::kMaxChunk, 0);
  ASSERT_TRUE(f);
  auto d = std::get<protocol::Data>(protocol::decode(*f).value());
  EXPECT_EQ(d.offset, 1000u);
  EXPECT_EQ(d.bytes.size(), kWindow - 1000u);
}

// --- input ---

TEST(ChannelInput, ExecInputReachesTheProcessOnceAndAnEmptyDataEndsIt) {
  auto ch = open_channel(ChannelKind::kExec, "tr a-z A-Z");
  ASSERT_TRUE(ch);
  ch->on_input(0, bytes_of("hello\n"));
  ch->on_input(0, bytes_of("hello\n"));       // a resend after a reconnect: dropped
  ch->on_input(3, bytes_of("lo\nworld\n"));  // overlaps: only "world\n" is new
  EXPECT_EQ(ch->input_received(), 12u);
  EXPECT_FALSE(ch->input_pending());
  ch->on_input(12, {});  // end of stdin
  Hub hub;
  ASSERT_TRUE(run_until(*ch, [&] {
    hub.take(*ch);
    return at_eof(*ch, Stream::kOutput);
  }));
  hub.take(*ch);
  EXPECT_EQ(hub.got[Stream::kOutput], "HELLO\nWORLD\n");
}

TEST(ChannelInput, PtyKeystrokesReachTheShell) {
  auto ch = open_channel(ChannelKind::kPty, "read x; echo \"got-$x-done\"");
  ASSERT_TRUE(ch);
  ch->on_input(0, bytes_of("abc\n"));
  Hub hub;
  ASSERT_TRUE(run_until(*ch, [&] {
    hub.take(*ch);
    return hub.got[Stream::kOutput].find("got-abc-done") != std::string::npos;
  })) << hub.got[Stream::kOutput];
}

TEST(ChannelInput, ConsumedInputIsAcknowledgedOnceAQuarterWindowIsWritten) {
  auto ch = open_channel(ChannelKind::kExec, "wc -c");
  ASSERT_TRUE(ch);
  ch->on_input(0, bytes_of(std::string(100, 'a')));
  EXPECT_FALSE(ch->take_input_ack());  // a keystroke's worth costs no ACK
  ch->on_input(100, bytes_of(std::string(kWindow / 4, 'b')));
  EXPECT_EQ(ch->take_input_ack(), 100u + kWindow / 4);
  EXPECT_FALSE(ch->take_input_ack());
  ch->on_input(100 + kWindow / 4, {});
  Hub hub;
  ASSERT_TRUE(run_until(*ch, [&] {
    hub.take(*ch);
    return at_eof(*ch, Stream::kOutput);
  }));
  hub.take(*ch);
  EXPECT_EQ(std::stoi(hub.got[Stream::kOutput]), 100 + int(kWindow / 4));
}

// --- exit and close ---

TEST(ChannelExit, ExitOnlyAfterTheReapAndEveryOutputByteSent_CloseOnlyWhenAcknowledged) {
  auto ch = open_channel(ChannelKind::kExec, "printf abc; exit 7");
  ASSERT_TRUE(ch);
  // The process ends; until it is reaped there is no EXIT.
  pollfd p{ch->pidfd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1);
  EXPECT_FALSE(ch->take_exit(Channel::Clock::now()));
  ch->on_child_event();
  EXPECT_EQ(ch->exit_watch_fd(), -1);
  // Reaped, but its output is neither at EOF nor sent.
  EXPECT_FALSE(ch->take_exit(Channel::Clock::now()));
  ASSERT_TRUE(run_until(*ch, [&] { return at_eof(*ch, Stream::kOutput) && at_eof(*ch, Stream::kStderr); }));
  EXPECT_FALSE(ch->take_exit(Channel::Clock::now()));  // at EOF, not sent
  EXPECT_FALSE(ch->sent_exit());
  Hub hub;
  hub.take(*ch);
  EXPECT_EQ(hub.got[Stream::kOutput], "abc");
  auto e = ch->take_exit(Channel::Clock::now());
  ASSERT_TRUE(e);
  EXPECT_EQ(e->channel, 7u);
  EXPECT_EQ(e->code, 7);
  EXPECT_EQ(e->signal, "");
  EXPECT_FALSE(ch->take_exit(Channel::Clock::now() + 1h));  // once
  ASSERT_TRUE(ch->sent_exit());
  EXPECT_EQ(*ch->sent_exit(), *e);  // repeatable after a reconnect

  // CLOSE waits for the hub to have every byte.
  EXPECT_FALSE(ch->finished());
  ch->on_ack(Stream::kOutput, 2);
  EXPECT_FALSE(ch->finished());
  ch->on_ack(Stream::kOutput, 3);
  EXPECT_TRUE(ch->finished());
  ch->on_ack(Stream::kOutput, 1);  // stale: ignored
  EXPECT_TRUE(ch->finished());
}

TEST(ChannelExit, KilledBySignalNamesIt) {
  auto ch = open_channel(ChannelKind::kPty, "sleep 30");
  ASSERT_TRUE(ch);
  ASSERT_TRUE(ch->signal("KILL").ok());
  EXPECT_EQ(ch->signal("NOPE").error().code, "bad_signal");
  std::optional<protocol::Exit> e;
  Hub hub;
  ASSERT_TRUE(run_until(*ch, [&] {
    hub.take(*ch);
    e = ch->take_exit(Channel::Clock::now());
    return e.has_value();
  }));
  EXPECT_EQ(e->code, 128 + 9);
  EXPECT_EQ(e->signal, "KILL");
}

TEST(ChannelExit, ABackgroundJobHoldingTheOutputDelaysExitByTheGraceOnly) {
  // The shell exits; `sleep` keeps stdout open, so EOF never comes: EXIT goes 2 s after the reap.
  auto ch = open_channel(ChannelKind::kExec, "sleep 30 & exit 4");
  ASSERT_TRUE(ch);
  ASSERT_TRUE(run_until(*ch, [&] { return ch->exit_watch_fd() == -1; }));  // reaped
  EXPECT_FALSE(at_eof(*ch, Stream::kOutput));
  EXPECT_FALSE(ch->take_exit(Channel::Clock::now()));
  auto e = ch->take_exit(Channel::Clock::now() + 2s);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, 4);
}

TEST(ChannelExit, ExitCodeOfAPty) {
  auto ch = open_channel(ChannelKind::kPty, "printf bye; exit 3");
  ASSERT_TRUE(ch);
  Hub hub;
  std::optional<protocol::Exit> e;
  ASSERT_TRUE(run_until(*ch, [&] {
    hub.take(*ch);
    e = ch->take_exit(Channel::Clock::now());
    return e.has_value();
  }));
  EXPECT_EQ(e->code, 3);
  EXPECT_NE(hub.got[Stream::kOutput].find("bye"), std::string::npos);
  // Output at EOF and sent before EXIT: nothing is left to send after it.
  EXPECT_TRUE(at_eof(*ch, Stream::kOutput));
  EXPECT_FALSE(ch->has_frame());
}

// --- a lost link: resume and replay ---

TEST(ChannelResume, ReplaysFromTheOffsetTheHubHas) {
  auto ch = open_channel(ChannelKind::kExec, "printf 0123456789");
  ASSERT_TRUE(ch);
  ASSERT_TRUE(run_until(*ch, [&] { return at_eof(*ch, Stream::kOutput); }));
  Hub first;
  first.take(*ch);
  ASSERT_EQ(first.got[Stream::kOutput], "0123456789");
  EXPECT_FALSE(ch->has_frame());

  // The link died after the hub had 4 bytes: WELCOME names 4, the rest is sent again.
  ch->resume(Stream::kOutput, 4);
  Hub second;
  second.next[Stream::kOutput] = 4;
  second.take(*ch);
  EXPECT_EQ(second.got[Stream::kOutput], "456789");

  // The hub named no offset (it lost its state): everything the ring holds.
  ch->resume(Stream::kOutput, std::nullopt);
  Hub third;
  third.take(*ch);
  EXPECT_EQ(third.got[Stream::kOutput], "0123456789");

  // An offset below what it acknowledged before (a restarted hub) is honoured while the ring has it.
  ch->on_ack(Stream::kOutput, 10);
  ch->resume(Stream::kOutput, 2);
  Hub fourth;
  fourth.next[Stream::kOutput] = 2;
  fourth.take(*ch);
  EXPECT_EQ(fourth.got[Stream::kOutput], "23456789");

  // Beyond what exists: clamped to the end, nothing invented.
  ch->resume(Stream::kOutput, 1000);
  EXPECT_FALSE(ch->has_frame());
  EXPECT_FALSE(ch->next_frame(protocol::kMaxChunk, 0));
  // A stream with nothing in it: nothing to resend.
  ch->resume(Stream::kStderr, 5);
  EXPECT_FALSE(ch->has_frame());
}

TEST(ChannelResume, BytesOlderThanTheRingAreSkippedToWhatItStillHolds) {
  // About 3.4 MB of distinct lines, more than the ring's 2 MiB, acknowledged as they arrive.
  auto ch = open_channel(ChannelKind::kExec, "seq 1 500000", protocol::kMaxChunk * 4);
  ASSERT_TRUE(ch);
  std::string expected;
  for (int i = 1; i <= 500000; ++i) expected += std::to_string(i) + "\n";
  Hub hub;
  ASSERT_TRUE(run_until(*ch, [&] {
    hub.take(*ch);
    hub.ack_all(*ch);
    return at_eof(*ch, Stream::kOutput) && !ch->has_frame();
  }, true, 30s));
  ASSERT_EQ(hub.got[Stream::kOutput].size(), expected.size());
  EXPECT_TRUE(hub.got[Stream::kOutput] == expected);

  // A hub that lost everything asks from 0; the first 1.4 MB are gone, the rest comes again.
  ch->resume(Stream::kOutput, 0);
  Hub again;
  uint64_t kept_from = expected.size() - protocol::kReplayBytes;
  again.next[Stream::kOutput] = kept_from;  // the jump in offsets tells the hub what it missed
  for (int i = 0; i < 1000 && ch->has_frame(); ++i) {  // bounded: a channel that offers nothing would spin
    again.take(*ch);
    again.ack_all(*ch);
  }
  EXPECT_FALSE(ch->has_frame());
  ASSERT_EQ(again.got[Stream::kOutput].size(), protocol::kReplayBytes);
  EXPECT_TRUE(again.got[Stream::kOutput] == expected.substr(kept_from));
}

TEST(ChannelResume, UnsentBytesTheRingNoLongerHoldsAreSkipped) {
  // A window larger than the ring (up to 16 MiB is allowed): reading can outrun sending by more
  // than the ring keeps, so the oldest unsent bytes are overwritten before they go out.
  constexpr uint32_t kBigWindow = 4 * 1024 * 1024;
  auto ch = open_channel(ChannelKind::kExec, "seq 1 500000", kBigWindow);
  ASSERT_TRUE(ch);
  std::string expected;
  for (int i = 1; i <= 500000; ++i) expected += std::to_string(i) + "\n";
  ASSERT_LT(expected.size(), kBigWindow);
  ASSERT_TRUE(run_until(*ch, [&] { return at_eof(*ch, Stream::kOutput); }, true, 30s));  // nothing sent yet
  Hub hub;
  uint64_t kept_from = expected.size() - protocol::kReplayBytes;
  hub.next[Stream::kOutput] = kept_from;  // the first DATA jumps there
  for (int i = 0; i < 1000 && ch->has_frame(); ++i) hub.take(*ch);
  EXPECT_FALSE(ch->has_frame());
  ASSERT_EQ(hub.got[Stream::kOutput].size(), protocol::kReplayBytes);
  EXPECT_TRUE(hub.got[Stream::kOutput] == expected.substr(kept_from));
}

// --- opening ---

TEST(ChannelOpen, AProgramThatCannotRunIsAnErrorNotAChannel) {
  protocol::Open o = open_frame(ChannelKind::kExec, "");
  o.argv = {"/nonexistent/program"};
  auto ch = Channel::open(o, ChannelConfig{});
  ASSERT_FALSE(ch.ok());
  EXPECT_EQ(ch.error().code, "spawn_failed") << ch.error().message;

  protocol::Open u = open_frame(ChannelKind::kPty, "true");
  u.account = "no-such-account-xyz";
  auto cu = Channel::open(u, ChannelConfig{});
  ASSERT_FALSE(cu.ok());
  EXPECT_EQ(cu.error().code, "unknown_account");
}

TEST(ChannelOpen, WindowZeroMeansTheDefault) {
  auto ch = open_channel(ChannelKind::kExec, "head -c 300000 /dev/zero", 0);
  ASSERT_TRUE(ch);
  ASSERT_TRUE(run_until(*ch, [&] { return !ch->wants_read(Stream::kOutput); }));
  Hub hub;
  hub.take(*ch);
  EXPECT_EQ(hub.got[Stream::kOutput].size(), protocol::kDefaultWindow);
}

}  // namespace
}  // namespace rx::agent
