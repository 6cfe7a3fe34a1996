// Recordings: the hub's recorders, one per live terminal that is recorded, and their rows in the
// store (RecordingRecord). The Relay tells it of every live Terminal (created, loaded at start,
// restarted); it records unless the hub's `record` setting is off or the terminal was created
// with "record": false. One recording per terminal: a terminal that comes back (a hub restart,
// a container started again) goes on in the same file, its times continuing from the file's last.
// The rows are written behind (WriteBehind), so a locked database costs no terminal its output.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "hub/channel/terminal.h"
#include "hub/fanout/recorder.h"
#include "hub/fanout/recording_writer.h"
#include "hub/store/store.h"
#include "hub/store/write_behind.h"

namespace rx::hub {

class Recordings {
 public:
  struct Options {
    bool enabled = true;
    std::string dir;  // DATA/recordings
    RecordingWriter::Options writer{};
    int64_t max_bytes = 0;  // retention (0: no limit), see retention_victims
    int64_t max_age_s = 0;
  };
  Recordings(Store& store, WriteBehind& writes, Options options);
  ~Recordings();
  Recordings(const Recordings&) = delete;
  Recordings& operator=(const Recordings&) = delete;

  // The Relay's live listener: starts (or continues) `t`'s recording on `terminal`.
  void start(Terminal& terminal, const TerminalRecord& t);
  // The recorder of recording `id` while its terminal lives, else null.
  const Recorder* live(const std::string& recording_id) const;
  // From the hub's housekeeping (once a second): recorders whose terminal is gone are forgotten
  // and their rows get the file's final size and duration; then, when one went or a minute
  // passed, retention.
  void sweep();
  // Deletes what retention_victims picks (rows, files, marks; audited as the hub's own
  // `recording.expire`); how many.
  size_t apply_retention(int64_t now);
  // Output bytes not recorded because the disk was too slow, over all recordings (a metric).
  uint64_t dropped_bytes() const { return dropped_before_ + live_dropped(); }
  // Times a recording's writes began to fail (a full or broken disk), over all recordings.
  uint64_t write_failures() const { return write_failures_; }
  const std::string& dir() const { return options_.dir; }
  RecordingWriter& writer() { return writer_; }

 private:
  void remember(const Recorder& r, bool ended);
  void watch_writes(const std::string& terminal, Recorder& r);
  uint64_t live_dropped() const;

  Store& store_;
  WriteBehind& writes_;
  Options options_;
  RecordingWriter writer_;
  std::map<std::string, std::unique_ptr<Recorder>> recorders_;  // terminal id -> its recorder
  std::map<std::string, std::string> by_recording_;             // recording id -> terminal id, for live()
  uint64_t dropped_before_ = 0;                                  // by recorders already forgotten
  int sweeps_ = 0;
  // What the housekeeping knows of a live recording's writes.
  struct Writes {
    uint64_t seen = 0;     // the writer's failure count when last looked at
    bool failing = false;  // told as failing, not yet as recovered
    std::string why;       // the reason it was told
  };
  std::map<std::string, Writes> writes_seen_;  // terminal id -> its recording's writes
  uint64_t write_failures_ = 0;
};

// The size of a recording's file (0: none yet), and removing it with its mark: the files are
// this module's (RecordingWriter writes them), so the API deletes through these too.
int64_t recording_file_size(const std::string& path);
void remove_recording_files(const std::string& path);

// A recording as retention sees it: its size on disk, and whether it is still being written.
struct RetentionEntry {
  RecordingRecord record;
  int64_t bytes = 0;
  bool live = false;
};
// The recordings to delete, oldest first: every ended one that started more than max_age_s ago,
// then ended ones from the oldest while all of them together take more than max_bytes. A live
// recording is never picked (it still counts toward the total). 0: that limit is off.
std::vector<std::string> retention_victims(std::vector<RetentionEntry> all, int64_t max_bytes, int64_t max_age_s,
                                           int64_t now);

}  // namespace rx::hub
