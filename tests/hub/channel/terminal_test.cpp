// hub/channel/terminal: output to sinks and credit back to the agent, input held until the
// agent has it, with a recording link and plain sinks.
#include "hub/channel/terminal.h"

#include <gtest/gtest.h>

#include "protocol/limits.h"
#include "tests/hub/channel/link_fake.h"

namespace rx::hub {
namespace {

using protocol::Ack;
using protocol::Data;
using protocol::Stream;

class RecordingSink final : public OutputSink {
 public:
  void wake() override { ++wakes; }
  void queue_event(const nlohmann::json& event) override { events.push_back(event); }
  void terminal_gone(const std::string& reason) override { gone = reason; }
  const std::string& share_id() const override { return share; }
  // Takes everything the terminal has for this sink, in chunks of at most `max`.
  std::string take_all(Terminal& t, size_t max = 1 << 20) {
    std::string got;
    for (auto c = t.take_output(this, max); c.size() > 0; c = t.take_output(this, max)) {
      EXPECT_EQ(c.offset, offset + got.size());
      got.append(c.first.begin(), c.first.end());
      got.append(c.second.begin(), c.second.end());
    }
    return got;
  }
  bool saw(const std::string& type) const {
    for (const auto& e : events)
      if (e["type"] == type) return true;
    return false;
  }
  bool is_viewer() const override { return viewer; }
  void resized(uint16_t cols, uint16_t rows) override { sizes.push_back({cols, rows}); }
  void typed(std::span<const uint8_t> b) override { input.append(b.begin(), b.end()); }
  int wakes = 0;
  bool viewer = true;
  std::vector<std::pair<uint16_t, uint16_t>> sizes;
  std::string input;
  std::vector<nlohmann::json> events;
  std::string gone, share;
  uint64_t offset = 0;  // where take_all expects the next chunk
};

std::span<const uint8_t> bytes(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

AgentRecord agent_record() {
  AgentRecord a;
  a.id = "a_1";
  a.name = "box";
  return a;
}

// The highest output ACK the agent got (0: none).
uint64_t acked(const RecordingLink& link) {
  uint64_t at = 0;
  for (const auto& a : link.sent<Ack>())
    if (a.stream == Stream::kOutput) at = std::max(at, a.offset);
  return at;
}

TEST(Terminal, CreditFollowsTheSlowestSinkAndComesBackWhenItLeaves) {
  RecordingLink link(agent_record());
  Terminal t("t_1", "a_1", 7, 16);  // a 16-byte window: an ACK is due every 4 bytes consumed
  t.attach_agent(&link, 0);
  RecordingSink fast, slow;
  t.add_viewer(&fast, std::nullopt);
  t.add_viewer(&slow, std::nullopt);
  t.on_data(0, bytes("0123456789abcdef"));
  EXPECT_GT(fast.wakes, 0);
  EXPECT_EQ(fast.take_all(t), "0123456789abcdef");
  EXPECT_EQ(acked(link), 0u) << "the slow sink has taken nothing: no credit goes back";
  slow.offset = 0;
  EXPECT_EQ(slow.take_all(t, 8), "0123456789abcdef");
  EXPECT_EQ(acked(link), 16u);
  t.on_data(16, bytes("more"));
  EXPECT_EQ(acked(link), 16u);
  t.remove_viewer(&slow);  // the fast one has not taken "more" yet either
  EXPECT_EQ(acked(link), 16u);
  fast.offset = 16;
  EXPECT_EQ(fast.take_all(t), "more");
  EXPECT_EQ(acked(link), 20u);
  t.remove_viewer(&fast);
  t.on_data(20, bytes("nobody"));
  EXPECT_EQ(acked(link), 26u) << "with no sink attached, everything received is consumed";
}

// A viewer that stops reading no longer holds the others back once kStallAfter has passed; when
// it reads again it is told of the gap and goes on from what the ring holds. Alone, or beside
// sinks that are no viewers (a recorder), it still sets the pace.
TEST(Terminal, AStalledViewerStopsHoldingTheOthersBackAndSkipsAheadWhenItReadsAgain) {
  RecordingLink link(agent_record());
  RecordingSink reader, stuck, recorder;  // before the terminal, which tells them it is gone
  Terminal t("t_1", "a_1", 7, 64);        // an ACK is due every 16 bytes consumed
  auto now = Terminal::Clock::time_point{} + std::chrono::hours(1);
  t.set_clock([&] { return now; });
  t.attach_agent(&link, 0);
  recorder.viewer = false;
  t.add_viewer(&stuck, std::nullopt);
  t.add_viewer(&recorder, std::nullopt);
  t.on_data(0, bytes("0123456789abcdef"));
  recorder.take_all(t);
  now += Terminal::kStallAfter * 3;
  t.tick();
  EXPECT_EQ(acked(link), 0u) << "alone (a recorder is no viewer), a stalled viewer sets the pace";

  t.add_viewer(&reader, std::nullopt);
  EXPECT_EQ(reader.take_all(t), "0123456789abcdef");
  t.tick();
  EXPECT_EQ(acked(link), 16u) << "the reader keeps up: the stuck viewer no longer holds credit";

  // Output goes on past what the ring holds; the stuck one reads again: a gap, then the new bytes.
  std::string block(64, 'x');
  uint64_t at = 16;
  while (at < 16 + protocol::kReplayBytes + 4096) {  // one window at a time, as the agent sends
    t.on_data(at, bytes(block));
    reader.offset = recorder.offset = at;
    at += block.size();
    ASSERT_EQ(reader.take_all(t), block);
    recorder.take_all(t);
    ASSERT_EQ(acked(link), at) << "credit stopped at " << acked(link);
  }
  auto chunk = t.take_output(&stuck, size_t(1) << 22);
  ASSERT_TRUE(stuck.saw("gap"));
  EXPECT_GT(chunk.offset, 0u);
  EXPECT_EQ(chunk.offset + chunk.size(), at) << "it goes on from what the ring holds, up to the end";

  // Reading again it is a viewer like the others: it holds credit until it takes what is new.
  t.on_data(at, bytes("new!"));
  reader.offset = stuck.offset = recorder.offset = at;
  EXPECT_EQ(reader.take_all(t), "new!");
  EXPECT_EQ(recorder.take_all(t), "new!");
  EXPECT_EQ(stuck.take_all(t), "new!");
  t.on_data(at + 4, bytes(std::string(12, 'y')));  // 16 bytes since the last ACK: one is due
  reader.offset = stuck.offset = recorder.offset = at + 4;
  reader.take_all(t);
  recorder.take_all(t);
  EXPECT_EQ(acked(link), at) << "the stuck viewer has not taken these yet";
  stuck.take_all(t);
  EXPECT_EQ(acked(link), at + 16);
}

TEST(Terminal, ASinkThatIsNoViewerIsNotCountedAndHearsSizesAndInput) {
  RecordingLink link(agent_record());
  Terminal t("t_1", "a_1", 7, protocol::kDefaultWindow);
  t.set_size(80, 24);
  t.attach_agent(&link, 0);
  RecordingSink recorder, person;
  recorder.viewer = false;
  t.add_viewer(&recorder, std::nullopt);
  EXPECT_EQ(t.viewer_count(), 0u);
  EXPECT_FALSE(recorder.saw("viewers")) << "no viewer came or went";
  t.add_viewer(&person, std::nullopt);
  EXPECT_EQ(t.viewer_count(), 1u);
  for (const auto& e : person.events) {
    if (e["type"] == "viewers") {
      EXPECT_EQ(e["count"], 1) << "the recorder counted as a viewer";
    }
  }
  t.resize(80, 24);  // the size it has: nobody is told
  t.resize(120, 40);
  t.resize(120, 40);
  t.resize(100, 30);
  EXPECT_EQ(recorder.sizes, (std::vector<std::pair<uint16_t, uint16_t>>{{120, 40}, {100, 30}}));
  ASSERT_TRUE(t.send_input(bytes("ls\r")).ok());
  EXPECT_EQ(recorder.input, "ls\r");
  t.remove_viewer(&recorder);
  EXPECT_EQ(t.viewer_count(), 1u);
  t.remove_viewer(&person);
}

TEST(Terminal, ASinkBehindTheRingIsToldOfTheGap) {
  RecordingLink link(agent_record());
  RecordingSink sink;  // outlives the terminal, which tells it when it goes
  Terminal t("t_1", "a_1", 7, protocol::kDefaultWindow);
  t.attach_agent(&link, 0);
  t.add_viewer(&sink, 0);
  EXPECT_TRUE(sink.saw("replay"));
  t.on_data(100, bytes("after"));  // the agent no longer had 0..100
  sink.offset = 100;
  EXPECT_EQ(sink.take_all(t), "after");
  EXPECT_TRUE(sink.saw("gap"));
}

TEST(Terminal, InputWaitsForItsAgentAndIsResentFromWhatTheAgentHas) {
  Terminal t("t_1", "a_1", 7, protocol::kDefaultWindow);
  ASSERT_TRUE(t.send_input(bytes("ls\n")));
  RecordingLink link(agent_record());
  t.attach_agent(&link, 0);
  auto sent = link.sent<Data>();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(std::string(sent[0].bytes.begin(), sent[0].bytes.end()), "ls\n");
  EXPECT_EQ(sent[0].stream, Stream::kInput);
  // A new link where the agent had the first two bytes: only the rest goes again.
  t.detach_agent();
  EXPECT_EQ(t.status(), TerminalStatus::kOffline);
  RecordingLink again(agent_record());
  t.attach_agent(&again, 2);
  sent = again.sent<Data>();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].offset, 2u);
  EXPECT_EQ(std::string(sent[0].bytes.begin(), sent[0].bytes.end()), "\n");
}

TEST(Terminal, InputToAnEndedTerminalIsRefusedNotKept) {
  RecordingLink link(agent_record());
  Terminal t("t_1", "a_1", 7, protocol::kDefaultWindow);
  t.attach_agent(&link, 0);
  t.on_exit(0, "");
  auto s = t.send_input(bytes("x"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, "not_running");
  // Without an agent the input buffer fills, then refuses.
  Terminal away("t_2", "a_1", 8, protocol::kDefaultWindow);
  ASSERT_TRUE(away.send_input(std::vector<uint8_t>(Terminal::kInputBuffer, 'a')));
  auto full = away.send_input(bytes("b"));
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, "input_dropped");
}

TEST(Terminal, SinksAreToldEachStatusByName) {
  RecordingSink sink;
  RecordingLink link(agent_record());
  Terminal t("t_1", "a_1", 7, protocol::kDefaultWindow);
  t.add_viewer(&sink, std::nullopt);
  t.attach_agent(&link, 0);
  t.on_exit(2, "");
  std::vector<std::string> seen;
  for (const auto& e : sink.events)
    if (e["type"] == "status") seen.push_back(e["status"].get<std::string>());
  EXPECT_EQ(seen, (std::vector<std::string>{"offline", "running", "exited"}));
  EXPECT_EQ(t.status(), TerminalStatus::kExited);
  t.remove_viewer(&sink);
}

TEST(Terminal, DeletingTellsEverySinkAndShareDropsOnlyItsOwn) {
  RecordingSink mine, shared;
  shared.share = "s_1";
  {
    Terminal t("t_1", "a_1", 7, protocol::kDefaultWindow);
    t.add_viewer(&mine, std::nullopt);
    t.add_viewer(&shared, std::nullopt);
    t.drop_share_viewers("s_1", "share deleted");
    EXPECT_EQ(shared.gone, "share deleted");
    EXPECT_EQ(mine.gone, "");
    EXPECT_EQ(t.viewer_count(), 1u);
  }
  EXPECT_EQ(mine.gone, "terminal deleted");
}

}  // namespace
}  // namespace rx::hub
