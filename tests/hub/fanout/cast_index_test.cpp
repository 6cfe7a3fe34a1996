// CastIndex: the segmented source asciinema-player plays. Every index and segment keeps the rules
// the player enforces (cast_index.h); a segment's snapshot, painted and followed by its events,
// gives the screen the whole recording gives at that point; a live recording's index grows by
// what was appended, and a segment URL handed out before keeps answering what it named.
#include "hub/fanout/cast_index.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hub/base/fd.h"
#include "hub/fanout/asciicast.h"
#include "hub/fanout/terminal_screen.h"
#include "tests/support/process.h"

namespace rx::hub {
namespace {

// A session's lines: colours, a full-screen program, two resizes, a marker, a time that goes
// backwards, a line that is not an event, and events that share a time.
std::vector<std::string> session_lines() {
  std::vector<std::string> lines{AsciicastEncoder::header({80, 24, 1700000000, "t", "xterm-256color"})};
  AsciicastEncoder enc;
  double t = 0;
  for (int i = 0; i < 400; ++i) {
    t += 0.013;
    lines.push_back(enc.output(t, "\x1b[3" + std::to_string(i % 8) + "mline " + std::to_string(i) + " \xe4\xb8\xad\x1b[0m\r\n"));
    if (i % 37 == 0) lines.push_back(enc.output(t, "same time " + std::to_string(i) + "\r\n"));  // shares t
    if (i == 100) lines.push_back(AsciicastEncoder::resize(t, 100, 30));
    if (i == 150) lines.push_back(AsciicastEncoder::marker(t, "half way"));
    if (i == 200) lines.push_back(enc.output(t, "\x1b[?1049h\x1b[2J\x1b[Hin the app\x1b[5;5Hthere"));
    if (i == 230) lines.push_back(enc.output(t, "\x1b[?1049lback\r\n"));
    if (i == 260) lines.push_back(AsciicastEncoder::resize(t, 60, 20));
    if (i == 300) lines.push_back("[" + asciicast_time(t - 1) + ", \"o\", \"backwards\\r\\n\"]\n");
    if (i == 310) lines.push_back("not json at all\n");
  }
  lines.push_back(AsciicastEncoder::exit(t + 0.5, 0));
  return lines;
}

std::string joined(const std::vector<std::string>& lines, size_t count) {
  std::string out;
  for (size_t i = 0; i < count && i < lines.size(); ++i) out += lines[i];
  return out;
}

void write_file(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary | std::ios::trunc) << text; }

// What a player does with event `e` ([t, code, data]): output and resizes change the screen.
void play_event(TerminalScreen& s, const nlohmann::json& e) {
  if (e[1] == "o") s.feed(e[2].get<std::string>());
  if (e[1] == "r") {
    int c = 0, r = 0;
    std::sscanf(e[2].get<std::string>().c_str(), "%dx%d", &c, &r);
    s.resize(c, r);
  }
}

// A screen fed the events of `cast` (its whole text) up to the time `until_us` (inclusive).
std::string screen_at(const std::string& cast, int64_t until_us, bool whole = false) {
  std::istringstream in(cast);
  std::string line;
  std::getline(in, line);
  auto h = nlohmann::json::parse(line);
  TerminalScreen s(h["width"], h["height"]);
  int64_t last = 0;
  while (std::getline(in, line)) {
    auto e = nlohmann::json::parse(line, nullptr, false);
    if (!e.is_array()) continue;
    int64_t us = std::max(last, int64_t(std::llround(e[0].get<double>() * 1e6)));
    if (!whole && us > until_us) break;
    last = us;
    play_event(s, e);
  }
  return s.cells_fingerprint();
}

int64_t micros(const nlohmann::json& t) { return std::llround(t.get<double>() * 1e6); }

struct Played {
  nlohmann::json index;
  std::vector<nlohmann::json> segments;
};

// Fetches the index and every segment it lists, checking each rule the player checks.
Played play(const CastIndex& idx, int fd) {
  Played p;
  auto doc = idx.index_json();
  EXPECT_TRUE(doc) << doc.error().message;
  p.index = nlohmann::json::parse(*doc);
  EXPECT_EQ(p.index["version"], 1);
  const auto& segs = p.index["segments"];
  EXPECT_FALSE(segs.empty());
  int64_t duration = micros(p.index["duration"]);
  for (size_t i = 0; i < segs.size(); ++i) {
    int64_t start = micros(segs[i]["start"]);
    if (i == 0) {
      EXPECT_EQ(start, 0);
    } else {
      EXPECT_GT(start, micros(segs[i - 1]["start"])) << "segment " << i;
      EXPECT_LT(start, duration) << "segment " << i;
    }
    std::string url = segs[i]["url"];
    EXPECT_EQ(url.rfind("segments/" + std::to_string(i) + "?to=", 0), 0u) << url;
    uint64_t to = std::stoull(url.substr(url.find("to=") + 3));
    auto seg = idx.segment_json(fd, i, to);
    EXPECT_TRUE(seg) << seg.error().message;
    auto j = nlohmann::json::parse(*seg);
    auto events = j["events"];
    EXPECT_FALSE(events.empty()) << "segment " << i;
    int64_t end = i + 1 < segs.size() ? micros(segs[i + 1]["start"]) : duration;
    int64_t prev = -1;
    for (const auto& e : events) {
      int64_t t = micros(e[0]);
      EXPECT_GE(t, prev);
      EXPECT_GE(t, start);
      if (i + 1 < segs.size()) {
        EXPECT_LT(t, end);
      } else {
        EXPECT_LE(t, end);
      }
      prev = t;
    }
    if (i > 0) {
      EXPECT_EQ(micros(events.front()[0]), start) << "segment " << i;
    }
    if (i + 1 == segs.size()) {
      EXPECT_EQ(micros(events.back()[0]), duration);
    }
    p.segments.push_back(j);
  }
  return p;
}

// Plays segment `j` as the player does: reset to its snapshot, then its events.
std::string replayed(const nlohmann::json& seg) {
  TerminalScreen s(seg["snapshot"]["cols"], seg["snapshot"]["rows"]);
  s.feed(seg["snapshot"]["init"].get<std::string>());
  for (const auto& e : seg["events"]) play_event(s, e);
  return s.cells_fingerprint();
}

class CastIndexTest : public ::testing::Test {
 protected:
  test::TempDir dir_{"rexec-cast-index"};
  std::string path_ = dir_ / "r.cast";
  Fd open_cast() { return Fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC)); }
};

TEST_F(CastIndexTest, EverySegmentKeepsThePlayersRulesAndRepaintsTheWholeRecordingsScreen) {
  auto lines = session_lines();
  std::string cast = joined(lines, lines.size());
  write_file(path_, cast);
  for (uint64_t bytes : {uint64_t(1), uint64_t(700), uint64_t(4000), CastIndex::kSegmentBytes}) {
    SCOPED_TRACE("segment bytes " + std::to_string(bytes));
    CastIndex idx(bytes);
    Fd fd = open_cast();
    ASSERT_TRUE(idx.extend(fd.get()));
    EXPECT_EQ(idx.end(), cast.size());
    Played p = play(idx, fd.get());
    if (bytes == 4000) {
      EXPECT_GT(p.segments.size(), 5u);
    }
    if (bytes == CastIndex::kSegmentBytes) {
      EXPECT_EQ(p.segments.size(), 1u);
    }
    for (size_t i = 0; i < p.segments.size(); ++i) {
      int64_t last = micros(p.segments[i]["events"].back()[0]);
      // The segment's screen at its last event is the whole recording's screen then (its later
      // events at that same time, in the next segment, cannot be: a start is a new time).
      EXPECT_EQ(replayed(p.segments[i]), screen_at(cast, last)) << "segment " << i;
    }
    EXPECT_EQ(replayed(p.segments.back()), screen_at(cast, 0, /*whole=*/true));
    ASSERT_EQ(p.index["markers"].size(), 1u);
    EXPECT_EQ(p.index["markers"][0][1], "half way");
    EXPECT_EQ(p.index["term"]["cols"], 80);
    EXPECT_EQ(p.index["term"]["rows"], 24);
  }
}

TEST_F(CastIndexTest, ALiveRecordingsIndexGrowsAndOldSegmentUrlsKeepTheirEnd) {
  auto lines = session_lines();
  std::string half = joined(lines, lines.size() / 2);
  write_file(path_, half + "[1.0, \"o\", \"a line not yet who");  // the writer is mid-line
  CastIndex idx(3000);
  Fd fd = open_cast();
  ASSERT_TRUE(idx.extend(fd.get()));
  EXPECT_EQ(idx.end(), half.size()) << "a partial line is not read";
  Played before = play(idx, fd.get());
  std::string last_url = before.index["segments"].back()["url"];

  std::string whole = joined(lines, lines.size());
  write_file(path_, whole);
  ASSERT_TRUE(idx.extend(fd.get()));
  EXPECT_EQ(idx.end(), whole.size());
  Played after = play(idx, fd.get());
  EXPECT_GT(after.segments.size(), before.segments.size());

  // Read once, whole: the same document as grown step by step.
  CastIndex fresh(3000);
  ASSERT_TRUE(fresh.extend(fd.get()));
  EXPECT_EQ(*fresh.index_json(), *idx.index_json());

  // The URL the first index gave for its last segment still ends where that index ended.
  size_t n = before.segments.size() - 1;
  uint64_t to = std::stoull(last_url.substr(last_url.find("to=") + 3));
  auto again = idx.segment_json(fd.get(), n, to);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(nlohmann::json::parse(*again), before.segments.back());
  EXPECT_EQ(micros(before.segments.back()["events"].back()[0]), micros(before.index["duration"]));
}

TEST_F(CastIndexTest, UnknownSegmentsBadEndsAndANonCastFileAreRefused) {
  auto lines = session_lines();
  write_file(path_, joined(lines, lines.size()));
  CastIndex idx(4000);
  Fd fd = open_cast();
  ASSERT_TRUE(idx.extend(fd.get()));
  auto index = nlohmann::json::parse(*idx.index_json());
  size_t count = index["segments"].size();
  auto missing = idx.segment_json(fd.get(), count + 5, idx.end());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, "not_found");
  auto past = idx.segment_json(fd.get(), 0, idx.end() + 1);
  ASSERT_FALSE(past);
  EXPECT_EQ(past.error().code, "bad_request");
  auto far = idx.segment_json(fd.get(), 0, idx.end());  // many segments' worth in one: refused
  ASSERT_FALSE(far);
  EXPECT_EQ(far.error().code, "bad_request");
  auto before = idx.segment_json(fd.get(), 1, 3);
  ASSERT_FALSE(before);
  EXPECT_EQ(before.error().code, "bad_request");

  for (std::string header : {R"({"version": 3, "width": 80, "height": 24})", R"({"version": "2", "width": 80, "height": 24})",
                             R"({"version": 2, "width": "80", "height": 24})", R"([2, 80, 24])", "not json"}) {
    write_file(dir_ / "junk.cast", header + "\n[0.1, \"o\", \"x\"]\n");
    Fd junk(::open((dir_ / "junk.cast").c_str(), O_RDONLY));
    CastIndex bad;
    auto s = bad.extend(junk.get());
    ASSERT_FALSE(s) << header;
    EXPECT_EQ(s.error().code, "bad_recording");
    EXPECT_FALSE(bad.index_json());
  }
}

TEST_F(CastIndexTest, ARecordingWithNoOutputYetHasOneEmptySegment) {
  write_file(path_, AsciicastEncoder::header({80, 24, 1700000000, "", "xterm"}));
  CastIndex idx;
  Fd fd = open_cast();
  ASSERT_TRUE(idx.extend(fd.get()));
  auto index = nlohmann::json::parse(*idx.index_json());
  EXPECT_EQ(index["duration"], 0);
  ASSERT_EQ(index["segments"].size(), 1u);
  auto seg = nlohmann::json::parse(*idx.segment_json(fd.get(), 0, idx.end()));
  EXPECT_TRUE(seg["events"].empty());  // the player says "missing events": the page tells why
}

}  // namespace
}  // namespace rx::hub
