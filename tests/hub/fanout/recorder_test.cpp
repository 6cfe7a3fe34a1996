// hub/fanout/recorder: a terminal's output, sizes, exit and (only when asked) input become
// asciicast lines on disk, and the recorder never holds the agent's credit, even with a disk
// too slow to keep up (its output is then dropped with a marker).
#include "hub/fanout/recorder.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "hub/base/tokens.h"
#include "protocol/limits.h"
#include "tests/hub/channel/link_fake.h"

namespace rx::hub {
namespace {

namespace fs = std::filesystem;
using protocol::Ack;
using protocol::Stream;
using nlohmann::json;

std::span<const uint8_t> bytes(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

uint64_t acked(const RecordingLink& link) {
  uint64_t at = 0;
  for (const auto& a : link.sent<Ack>())
    if (a.stream == Stream::kOutput) at = std::max(at, a.offset);
  return at;
}

class RecorderTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("rexec-recorder-" + new_id(""));
    fs::create_directories(dir_);
    term_.set_size(80, 24);
    term_.attach_agent(&link_, 0);
  }
  void TearDown() override { fs::remove_all(dir_); }
  Recorder::Setup setup(bool input = false) {
    Recorder::Setup s;
    s.recording_id = "r_1";
    s.path = (dir_ / "r_1.cast").string();
    s.header = AsciicastHeader{80, 24, 1795585284, "box", "xterm-256color"};
    s.record_input = input;
    return s;
  }
  // The file's lines, each parsed (a line that is not JSON fails the test).
  std::vector<json> lines() {
    std::ifstream in(dir_ / "r_1.cast");
    std::vector<json> out;
    for (std::string line; std::getline(in, line);) {
      auto j = json::parse(line, nullptr, false);
      EXPECT_FALSE(j.is_discarded()) << line;
      out.push_back(j);
    }
    return out;
  }
  // The "o" text of the file, in order.
  std::string output_text() {
    std::string text;
    for (const auto& l : lines())
      if (l.is_array() && l[1] == "o") text += l[2].get<std::string>();
    return text;
  }

  fs::path dir_;
  RecordingLink link_{AgentRecord{}};
  Terminal term_{"t_1", "a_1", 7, 16};  // a 16-byte window: credit shows at once
};

TEST_F(RecorderTest, OutputSizesAndExitBecomeValidAsciicastAndInputIsLeftOut) {
  RecordingWriter writer({});
  {
    Recorder r(term_, writer, setup());
    EXPECT_EQ(term_.viewer_count(), 0u) << "a recorder is not a viewer";
    term_.on_data(0, bytes("\x1b[31mred\x1b[0m caf\xc3"));  // "é" split across two chunks
    term_.on_data(17, bytes("\xa9 \xff!"));
    term_.resize(120, 40);
    ASSERT_TRUE(term_.send_input(bytes("hunter2\r")).ok());
    term_.on_exit(7, "");
    writer.flush();
  }
  writer.flush();
  auto all = lines();
  ASSERT_GE(all.size(), 5u);
  EXPECT_EQ(all[0]["version"], 2);
  EXPECT_EQ(all[0]["width"], 80);
  EXPECT_EQ(all[0]["height"], 24);
  double last = -1;
  std::vector<std::string> codes;
  for (size_t i = 1; i < all.size(); ++i) {
    ASSERT_TRUE(all[i].is_array() && all[i].size() == 3) << all[i].dump();
    EXPECT_GE(all[i][0].get<double>(), last) << "times go backwards at line " << i;
    last = all[i][0].get<double>();
    codes.push_back(all[i][1]);
    EXPECT_NE(all[i][1], "i") << "input recorded without record_input";
  }
  EXPECT_EQ(output_text(), "\x1b[31mred\x1b[0m caf\xc3\xa9 \xef\xbf\xbd!");
  EXPECT_NE(std::find(codes.begin(), codes.end(), "r"), codes.end());
  EXPECT_EQ(all.back()[1] == "x" || all[all.size() - 2][1] == "x", true) << all.back().dump();
  std::ifstream raw(dir_ / "r_1.cast");
  std::stringstream text;
  text << raw.rdbuf();
  EXPECT_EQ(text.str().find("hunter2"), std::string::npos);
  EXPECT_NE(text.str().find("\"120x40\""), std::string::npos);
  EXPECT_NE(text.str().find("[" + asciicast_time(all.back()[0].get<double>())), std::string::npos);
}

TEST_F(RecorderTest, InputIsRecordedWhenTheTerminalAsks) {
  RecordingWriter writer({});
  {
    Recorder r(term_, writer, setup(true));
    ASSERT_TRUE(term_.send_input(bytes("ls\r")).ok());
  }
  writer.flush();
  std::string typed;
  for (const auto& l : lines())
    if (l.is_array() && l[1] == "i") typed += l[2].get<std::string>();
  EXPECT_EQ(typed, "ls\r");
}

TEST_F(RecorderTest, ASlowDiskNeverHoldsCreditAndLeavesAMarkedGap) {
  // Each write waits 200 ms and at most 300 bytes may wait: the disk cannot keep up.
  RecordingWriter writer({300, std::chrono::milliseconds(200)});
  Recorder r(term_, writer, setup());
  uint64_t offset = 0;
  for (int i = 0; i < 40; ++i) {
    std::string chunk(16, char('a' + i % 26));
    term_.on_data(offset, bytes(chunk));
    offset += chunk.size();
    // Credit is back at once: the agent may send the next window while the disk is still busy.
    EXPECT_EQ(acked(link_), offset) << "chunk " << i;
  }
  EXPECT_GT(r.dropped_bytes(), 0u) << "the queue never filled: the test did not slow the disk";
  EXPECT_LE(writer.queued_bytes(), 300u);
  writer.flush();
  term_.on_data(offset, bytes("after"));  // room again: the marker first, then this
  writer.flush();
  std::string text;
  bool marked = false;
  for (const auto& l : lines())
    if (l.is_array() && l[1] == "m" && l[2].get<std::string>().find("not recorded") != std::string::npos) marked = true;
  EXPECT_TRUE(marked) << "no marker tells of the dropped output";
  EXPECT_TRUE(output_text().ends_with("after"));
  EXPECT_LT(output_text().size(), offset + 5) << "the dropped output is not in the file";
}

TEST_F(RecorderTest, AContinuedRecordingKeepsItsHeaderAndItsTimesIncreasing) {
  {
    RecordingWriter writer({});
    Recorder r(term_, writer, setup());
    term_.on_data(0, bytes("first\r\n"));
  }
  auto before = lines();
  ASSERT_GE(before.size(), 2u);
  double resume = last_event_time((dir_ / "r_1.cast").string());
  EXPECT_EQ(resume, before.back()[0].get<double>());
  {
    Terminal again("t_1", "a_1", 8, 16);
    again.attach_agent(&link_, 0);
    RecordingWriter writer({});
    auto s = setup();
    s.resume_at = resume;
    Recorder r(again, writer, s);
    again.on_data(0, bytes("second\r\n"));
  }
  auto all = lines();
  size_t headers = 0;
  double last = -1;
  for (const auto& l : all) {
    if (l.is_object()) {
      ++headers;
      continue;
    }
    EXPECT_GE(l[0].get<double>(), last);
    last = l[0].get<double>();
  }
  EXPECT_EQ(headers, 1u);
  EXPECT_EQ(output_text(), "first\r\nsecond\r\n");
}

TEST_F(RecorderTest, TheMarkSaysWhereOutputGoesOnAndALineWrittenAfterItIsCutBack) {
  std::string path = (dir_ / "r_1.cast").string();
  {
    RecordingWriter writer({});
    Recorder r(term_, writer, setup());
    term_.on_data(0, bytes("one\r\n"));
    term_.on_data(5, bytes("two\r\n"));
    writer.flush();
    EXPECT_EQ(r.recorded_offset(), 10u);
  }
  auto mark = RecordingWriter::read_mark(path);
  ASSERT_TRUE(mark);
  EXPECT_EQ(mark->offset, 10u);
  EXPECT_EQ(mark->size, fs::file_size(path));
  // The hub is killed after writing a line and before its mark: the line is past the mark.
  std::ofstream(path, std::ios::app) << "[9.000000, \"o\", \"three\\r\\n\"]\n";
  Terminal again("t_1", "a_1", 7, 16);  // the same channel, after a hub restart
  again.attach_agent(&link_, 0);
  {
    RecordingWriter writer({});
    auto s = setup();
    s.resume_offset = mark->offset;
    s.resume_at = 1;
    Recorder r(again, writer, s);
    again.on_data(0, bytes("one\r\ntwo\r\nthree\r\n"));  // the agent replays from its ring's start
    writer.flush();
  }
  EXPECT_EQ(output_text(), "one\r\ntwo\r\nthree\r\n") << "the cut line or the replay is in twice";
}

}  // namespace
}  // namespace rx::hub
