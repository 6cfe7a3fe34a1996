// RecordingWriter: the one thread that encodes and writes terminal recordings (asciicast lines, see
// hub/fanout/asciicast.h) to disk. The loop thread carries every keystroke, and a write to a slow,
// full or hung disk can take seconds, so the loop only queues lines here and never waits: the
// queue is bounded (Options::max_queued_bytes), and past the bound append() refuses the line at
// once, so the recorder can write a gap marker instead of stalling the terminal.
//
// A recording stays a valid asciicast up to its last complete line, whatever happens: a line is
// written whole or not at all (a write that fails halfway is truncated back), and a file left
// ending in a partial line (the hub was killed mid-write) is cut back to its last '\n' when it is
// opened again.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "hub/base/fd.h"
#include "hub/fanout/asciicast.h"

namespace rx::hub {

class RecordingWriter {
 public:
  struct Options {
    // Bytes of lines queued or being written, at most. 8 MiB is minutes of a busy terminal.
    size_t max_queued_bytes = 8 << 20;
    // Slept before each append is written: tests stand in a slow disk with it.
    std::chrono::milliseconds write_delay{0};
  };

  explicit RecordingWriter(Options o);  // starts the writer thread
  ~RecordingWriter();                   // writes everything queued, closes the files, joins
  RecordingWriter(const RecordingWriter&) = delete;
  RecordingWriter& operator=(const RecordingWriter&) = delete;

  // Opens `path` for appending on the writer thread (the call returns at once), creating it
  // 0600 and its missing directories 0700. A file that does not end in '\n' is first truncated to
  // just after its last '\n'. `header` is written only when the file is new or empty. Returns the
  // handle (> 0). When the open fails, error() says why and each later append tries it again.
  uint64_t open(std::string path, std::string header);
  // Queues `line` (one or more complete lines, each ending in '\n') for `h`. With `mark` (the
  // terminal output offset the line brings the recording to), once the line is written the
  // file's mark (PATH.pos, see read_mark) says so, with the file's size at that point. Returns false and
  // queues nothing when it would take the queue past max_queued_bytes (so a line longer than
  // that is never queued), or when `h` is not open. Never blocks on the disk.
  bool append(uint64_t h, std::string line, std::optional<uint64_t> mark = std::nullopt);
  // Output bytes at `t` seconds, made an asciicast "o" line (AsciicastEncoder::output, with the
  // handle's own UTF-8 carry) here on the writer thread: the loop only copies them. Queued and
  // refused as append() is, by their size. output_rest(): what the carry still holds, as U+FFFD.
  bool output(uint64_t h, double t, std::string bytes, uint64_t mark);
  bool output_rest(uint64_t h, double t, uint64_t mark);
  // Closes `h` after what was queued for it is written. Once that is done, written() and error()
  // forget the handle (0 and ""): the writer keeps nothing per recording that has ended.
  void close(uint64_t h);

  // Thread-safe facts for the recorder and the metrics. written(): bytes written to h's file
  // (header included). error(): why h's last write (or open) failed, e.g. "No space left on
  // device"; "" once a write succeeds again — the writer keeps trying later appends, since
  // space may come back, and a line that failed is dropped whole.
  uint64_t written(uint64_t h) const;
  std::string error(uint64_t h) const;
  // Writes (or opens) of h that failed so far: a count, so a failure between two looks at error()
  // (a small line that fits after a big one that did not) is not missed.
  uint64_t failures(uint64_t h) const;
  // Bytes of lines queued or being written.
  size_t queued_bytes() const;

  // Blocks until everything queued before the call is written (tests, shutdown).
  void flush();

  // A recording's mark: the output offset its last marked line reached and the file's size just
  // after that line. A hub killed between writing a line and its mark leaves the file longer than
  // its mark says: open() cuts it back to the mark's size, so a recording that goes on from the
  // mark's offset repeats nothing and misses nothing. nullopt: no mark (or not readable).
  struct Mark {
    uint64_t offset = 0;
    uint64_t size = 0;
  };
  static std::optional<Mark> read_mark(const std::string& path);

 private:
  struct Job {
    enum class Kind { open, append, output, rest, close } kind;
    uint64_t handle;
    std::string path;  // open
    std::string text;  // open: the header; append: the lines
    std::optional<uint64_t> mark{};  // append: the output offset the lines reach
    double t = 0;                    // output, rest: the time of the line
  };
  // What the other threads may ask about a handle (under mutex_).
  struct Facts {
    uint64_t written = 0;
    std::string error;
    uint64_t failures = 0;
    bool closing = false;  // close() was called: appends are refused
  };
  // A handle's file, touched by the writer thread only.
  struct File {
    std::string path;
    std::string header;
    std::optional<Fd> fd;  // empty until an open succeeds (and after one fails)
    bool regular = false;  // a regular file, which a failed write can be truncated back on
    std::optional<Fd> mark_fd;  // PATH.pos, opened at the first mark
    AsciicastEncoder encoder;   // output lines, with their UTF-8 carry
  };
  // What one job did, handed back under the lock.
  struct Outcome {
    uint64_t written = 0;
    std::optional<std::string> error;  // set: the job's write or open failed
  };

  void post(Job job);  // with mutex_ held
  bool queue(Job job);  // append, output, rest: under the bound, for an open handle
  void run();          // the writer thread
  Outcome perform(const Job& job);
  std::optional<std::string> open_file(File& f, uint64_t& written);
  void write_mark(File& f, uint64_t offset);

  const Options options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;     // the writer thread: a job or stop_
  std::condition_variable drained_;  // flush(): a job is done
  std::deque<Job> jobs_;
  std::map<uint64_t, Facts> facts_;
  size_t queued_bytes_ = 0;
  uint64_t next_handle_ = 1;
  uint64_t posted_ = 0;  // jobs queued so far, and
  uint64_t done_ = 0;    // jobs finished: flush() waits for done_ to reach posted_
  bool stop_ = false;
  std::map<uint64_t, File> files_;  // the writer thread's own
  std::thread thread_;              // last: it starts once everything above is built
};

}  // namespace rx::hub
