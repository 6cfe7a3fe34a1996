// RecordingWriter: lines land whole and in order, off the caller's thread; a reopened recording
// keeps one header and loses only a half-written last line; a slow disk makes append() refuse
// rather than wait; a full disk is named in error() and costs the other recordings nothing.
#include "hub/fanout/recording_writer.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

namespace rx::hub {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_all(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

class RecordingWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("rexec-recording-writer-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device()()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(RecordingWriterTest, LinesLandInOrderAcrossTwoHandles) {
  RecordingWriter w({});
  uint64_t a = w.open((dir_ / "a.cast").string(), "HA\n");
  uint64_t b = w.open((dir_ / "b.cast").string(), "HB\n");
  EXPECT_GT(a, 0u);
  EXPECT_GT(b, 0u);
  EXPECT_NE(a, b);
  std::string want_a = "HA\n", want_b = "HB\n";
  for (int i = 0; i < 200; ++i) {
    std::string la = "a" + std::to_string(i) + "\n", lb = "b" + std::to_string(i) + "\nb+\n";
    ASSERT_TRUE(w.append(a, la));
    ASSERT_TRUE(w.append(b, lb));
    want_a += la;
    want_b += lb;
  }
  w.flush();
  EXPECT_EQ(w.queued_bytes(), 0u);
  EXPECT_EQ(read_all(dir_ / "a.cast"), want_a);
  EXPECT_EQ(read_all(dir_ / "b.cast"), want_b);
  EXPECT_EQ(w.written(a), want_a.size());
  EXPECT_EQ(w.written(b), want_b.size());
  EXPECT_EQ(w.error(a), "");
  EXPECT_EQ(w.error(b), "");
}

TEST_F(RecordingWriterTest, HeaderOnlyOnceWhenReopened) {
  auto path = (dir_ / "t.cast").string();
  {
    RecordingWriter w({});
    uint64_t h = w.open(path, "H\n");
    ASSERT_TRUE(w.append(h, "one\n"));
    w.close(h);
    uint64_t again = w.open(path, "H\n");
    ASSERT_TRUE(w.append(again, "two\n"));
    w.flush();
    EXPECT_EQ(w.written(again), 4u) << "no header the second time";
  }
  {
    RecordingWriter w({});  // a restarted hub
    ASSERT_TRUE(w.append(w.open(path, "H\n"), "three\n"));
  }
  EXPECT_EQ(read_all(path), "H\none\ntwo\nthree\n");

  // An empty file that exists is given the header.
  auto empty = (dir_ / "empty.cast").string();
  write_all(empty, "");
  {
    RecordingWriter w({});
    ASSERT_TRUE(w.append(w.open(empty, "H\n"), "x\n"));
  }
  EXPECT_EQ(read_all(empty), "H\nx\n");
}

TEST_F(RecordingWriterTest, PartialLastLineIsCutOnOpen) {
  auto path = dir_ / "killed.cast";
  write_all(path, "A\nB\npart");
  auto none = dir_ / "no-newline.cast";
  write_all(none, "half a head");
  // A partial line longer than one read of the tail.
  auto long_tail = dir_ / "long-tail.cast";
  write_all(long_tail, "A\n" + std::string(10000, 'x'));
  auto clean = dir_ / "clean.cast";
  write_all(clean, "A\n");
  {
    RecordingWriter w({});
    uint64_t h = w.open(path.string(), "H\n");
    w.flush();
    EXPECT_EQ(read_all(path), "A\nB\n");
    ASSERT_TRUE(w.append(h, "C\n"));
    ASSERT_TRUE(w.append(w.open(none.string(), "H\n"), "C\n"));
    ASSERT_TRUE(w.append(w.open(long_tail.string(), "H\n"), "C\n"));
    ASSERT_TRUE(w.append(w.open(clean.string(), "H\n"), "C\n"));
  }
  EXPECT_EQ(read_all(path), "A\nB\nC\n");
  EXPECT_EQ(read_all(none), "H\nC\n") << "nothing complete was left: the file starts again";
  EXPECT_EQ(read_all(long_tail), "A\nC\n");
  EXPECT_EQ(read_all(clean), "A\nC\n");
}

TEST_F(RecordingWriterTest, FilesAre0600InDirectories0700) {
  auto path = dir_ / "new" / "deeper" / "t.cast";
  {
    RecordingWriter w({});
    uint64_t h = w.open(path.string(), "H\n");
    w.flush();
    EXPECT_EQ(w.error(h), "");
  }
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  for (auto d : {dir_ / "new", dir_ / "new" / "deeper"}) {
    ASSERT_EQ(::stat(d.c_str(), &st), 0) << d;
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0700u) << d;
  }
  // A directory that already existed keeps its mode.
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  EXPECT_NE(st.st_mode & 07777, 0u);
}

TEST_F(RecordingWriterTest, SlowDiskRefusesPastTheBound) {
  const std::string line = "0123456789abcde\n";  // 16 bytes
  const size_t max = 4 * line.size();
  RecordingWriter w({.max_queued_bytes = max, .write_delay = 50ms});
  auto path = dir_ / "slow.cast";
  uint64_t h = w.open(path.string(), "");
  // Each write holds its line 50 ms, so appends outrun the writer and the queue fills; the loop
  // ends on the first refusal (the bound is only a guard against a writer that never fills).
  size_t accepted = 0;
  while (w.append(h, line)) {
    ++accepted;
    ASSERT_LT(accepted, 1000u) << "append never refused";
  }
  EXPECT_GE(accepted, 4u);
  // Full: the last refusal saw a full queue, and at most a write or so has finished since.
  EXPECT_LE(w.queued_bytes(), max);
  EXPECT_GE(w.queued_bytes(), max - line.size());
  EXPECT_FALSE(w.append(h, std::string(max + 1, 'x') + "\n")) << "a line over the bound never fits";
  w.flush();
  EXPECT_EQ(w.queued_bytes(), 0u);
  EXPECT_TRUE(w.append(h, line));
  w.flush();
  std::string want;
  for (size_t i = 0; i <= accepted; ++i) want += line;
  EXPECT_EQ(read_all(path), want) << "the refused lines were not written";
  EXPECT_EQ(w.written(h), want.size());
}

TEST_F(RecordingWriterTest, CloseThenDestructorLeavesAllBytes) {
  auto closed = dir_ / "closed.cast";
  auto open = dir_ / "open.cast";
  std::string want_closed = "H\n", want_open = "H\n";
  {
    RecordingWriter w({.max_queued_bytes = 8 << 20, .write_delay = 5ms});
    uint64_t c = w.open(closed.string(), "H\n");
    uint64_t o = w.open(open.string(), "H\n");
    for (int i = 0; i < 20; ++i) {
      std::string l = "[" + std::to_string(i) + ", \"o\", \"x\"]\n";
      ASSERT_TRUE(w.append(c, l));
      ASSERT_TRUE(w.append(o, l));
      want_closed += l;
      want_open += l;
    }
    w.close(c);
    EXPECT_FALSE(w.append(c, "late\n")) << "closed: nothing more is queued";
    EXPECT_GT(w.queued_bytes(), 0u) << "the destructor, not a flush, writes these";
  }
  EXPECT_EQ(read_all(closed), want_closed);
  EXPECT_EQ(read_all(open), want_open);
}

TEST_F(RecordingWriterTest, ClosedHandlesAreForgotten) {
  RecordingWriter w({});
  uint64_t h = w.open((dir_ / "t.cast").string(), "H\n");
  ASSERT_TRUE(w.append(h, "x\n"));
  w.flush();
  EXPECT_EQ(w.written(h), 4u);
  w.close(h);
  w.flush();
  EXPECT_EQ(w.written(h), 0u);
  EXPECT_EQ(w.error(h), "");
  EXPECT_FALSE(w.append(h, "y\n"));
  EXPECT_FALSE(w.append(12345, "y\n")) << "never opened";
}

TEST_F(RecordingWriterTest, FullDiskIsNamedAndOthersGoOn) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  RecordingWriter w({});
  uint64_t full = w.open("/dev/full", "H\n");
  uint64_t good = w.open((dir_ / "good.cast").string(), "H\n");
  w.flush();
  EXPECT_EQ(w.error(full), "No space left on device");
  EXPECT_EQ(w.written(full), 0u);
  // Later appends are tried (space may come back) and fail the same way.
  EXPECT_TRUE(w.append(full, "x\n"));
  ASSERT_TRUE(w.append(good, "x\n"));
  w.flush();
  EXPECT_EQ(w.error(full), "No space left on device");
  EXPECT_EQ(w.written(full), 0u);
  EXPECT_EQ(w.error(good), "");
  EXPECT_EQ(w.written(good), 4u);
  EXPECT_EQ(read_all(dir_ / "good.cast"), "H\nx\n");
}

// A disk that fills mid-line: RLIMIT_FSIZE makes write() take part of a line and then fail
// (EFBIG), as ENOSPC does on a filesystem that runs out. The part is cut off again, and once
// there is room the next line is written.
TEST_F(RecordingWriterTest, LineThatFailsHalfwayIsCutAndLaterLinesLand) {
  auto path = dir_ / "t.cast";
  RecordingWriter w({});
  uint64_t h = w.open(path.string(), "H\n");
  ASSERT_TRUE(w.append(h, "first\n"));
  w.flush();
  ASSERT_EQ(read_all(path), "H\nfirst\n");

  struct rlimit saved;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);  // else the write past the limit kills the test
  struct rlimit small = saved;
  small.rlim_cur = 8 + 10;  // the file, and room for 10 bytes of the next line
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  ASSERT_TRUE(w.append(h, "a line of thirty bytes, or so\n"));
  w.flush();
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &saved), 0);
  std::signal(SIGXFSZ, old_handler);

  EXPECT_EQ(w.error(h), "File too large");
  EXPECT_EQ(read_all(path), "H\nfirst\n") << "the part that fit was cut back";
  EXPECT_EQ(w.written(h), 8u);
  ASSERT_TRUE(w.append(h, "second\n"));
  w.flush();
  EXPECT_EQ(w.error(h), "") << "fine again once a write succeeds";
  EXPECT_EQ(read_all(path), "H\nfirst\nsecond\n");
  EXPECT_EQ(w.written(h), 15u);
}

}  // namespace
}  // namespace rx::hub
