// A recording cut into segments a player can fetch one at a time: asciinema-player's "segmented"
// source (version 1), so the dashboard's player never holds a whole long recording. The index
// lists each segment's start time and URL; a segment holds a snapshot of the screen at its start
// (TerminalScreen) and its events. Built by reading the .cast file once, line by line, through a
// terminal emulator, and brought up to date by reading only what was appended since (a live
// recording grows while it is played).
//
// The player checks what it is given strictly, so every document keeps these rules: the first
// segment starts at 0; later starts increase strictly and stay below the duration; a segment's
// first event is at its start and its events stay before the next start; the last event of the
// last segment is at the duration. Times are whole microseconds written with six decimals, the
// same text in the index as in the segment, so the player's comparisons hold exactly. A time
// that goes backwards (none should) is taken as the one before it; a line that is not an event
// is skipped, the same way in the index as in its segment.
//
// Segment URLs name their end (segments/N?to=BYTES): a segment the client was told ends where
// the file ended then keeps that end, even after the index has grown past it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hub/fanout/terminal_screen.h"
#include "protocol/error.h"

namespace rx::hub {

class CastIndex {
 public:
  static constexpr uint64_t kSegmentBytes = 1 << 20;  // of .cast file per segment, about

  explicit CastIndex(uint64_t segment_bytes = kSegmentBytes) : segment_bytes_(segment_bytes) {}

  // Reads the complete lines `fd` holds past those read before. An error when its first line is
  // not an asciicast v2 header.
  Status extend(int fd);
  // The file offset past the last line read.
  uint64_t end() const { return end_; }
  // What this index holds in memory, about (the snapshots, mostly).
  size_t memory() const { return memory_; }

  // The index document: {"version":1,"duration","term":{cols,rows},"segments":[{start,url}],"markers"}.
  // An error until the header is read.
  Result<std::string> index_json() const;
  // Segment `n` of the index, its events from its start up to file offset `to` (what a segment
  // URL names), read from `fd`. Errors: no such segment, or a `to` this index never gave for it.
  Result<std::string> segment_json(int fd, size_t n, uint64_t to) const;

 private:
  struct Segment {
    uint64_t begin;  // file offset of its first event line
    int64_t start;   // microseconds
    int cols, rows;
    std::string init;
  };
  Status line(std::string_view text, uint64_t offset);
  // The segments the index lists: all but a last one that starts at the duration (its events
  // then close the one before: a start must stay below the duration).
  size_t listed() const;
  // Where listed segment `n` ends (the next one's begin, or the end of what was read).
  uint64_t listed_end(size_t n) const;

  uint64_t segment_bytes_;
  bool header_ = false;
  int cols_ = 80, rows_ = 24;
  std::unique_ptr<TerminalScreen> screen_;
  std::vector<Segment> segments_;
  std::vector<std::pair<int64_t, std::string>> markers_;
  int64_t last_ = 0;  // microseconds of the last event
  uint64_t end_ = 0;
  size_t memory_ = 0;
};

}  // namespace rx::hub
