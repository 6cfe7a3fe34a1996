// Recorder: one terminal's recording, an OutputSink of its Terminal that is not a viewer. It is
// woken with every chunk of output and takes all of it at once, so it never holds the agent's
// credit back; it encodes asciicast lines (asciicast.h) and queues them on the RecordingWriter,
// whose thread writes them. When the writer's queue is full (a slow disk), output is dropped and
// the next line that fits is a marker saying how much is missing: the shell is never slowed.
// What a viewer types is recorded only when the terminal asked for it (record_input): a password
// typed at a prompt that does not echo stays out of the file.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "hub/channel/terminal.h"
#include "hub/fanout/asciicast.h"
#include "hub/fanout/recording_writer.h"

namespace rx::hub {

class Recorder final : public OutputSink {
 public:
  struct Setup {
    std::string recording_id;
    std::string path;
    AsciicastHeader header;
    bool record_input = false;
    // Seconds the file already holds (a recording continued after a restart): times go on from
    // there, so they keep increasing through the whole file.
    double resume_at = 0;
    // The output offset the file holds output up to (its mark, RecordingWriter::read_mark): after
    // a hub restart the terminal's output goes on from there, so nothing the agent replays is
    // recorded twice. nullopt: from what the terminal holds (a new terminal, or a new shell).
    std::optional<uint64_t> resume_offset;
  };
  // Attaches itself to `terminal` and opens the file on the writer.
  Recorder(Terminal& terminal, RecordingWriter& writer, Setup setup);
  ~Recorder() override;
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  void wake() override;
  void queue_event(const nlohmann::json& event) override;
  void terminal_gone(const std::string& reason) override;
  const std::string& share_id() const override { return no_share_; }
  bool is_viewer() const override { return false; }
  void resized(uint16_t cols, uint16_t rows) override;
  void typed(std::span<const uint8_t> bytes) override;

  const std::string& id() const { return setup_.recording_id; }
  const std::string& terminal_id() const { return terminal_id_; }
  const std::string& path() const { return setup_.path; }
  bool live() const { return terminal_ != nullptr; }
  double duration() const { return last_t_; }       // the time of the last line
  uint64_t dropped_bytes() const { return dropped_; }  // output lost to a slow or full disk
  uint64_t recorded_offset() const { return recorded_offset_; }  // output taken up to here
  // Why the writer's last write of this recording failed ("No space left on device"; "": fine).
  std::string write_error() const { return handle_ ? writer_.error(handle_) : std::string(); }
  uint64_t write_failures() const { return handle_ ? writer_.failures(handle_) : 0; }
  // A marker line now (the hub's own words about the recording).
  void mark(const std::string& text) { put(AsciicastEncoder::marker(now(), text), 0); }

 private:
  double now();
  // Queues `line` (kOutput: raw output bytes the writer encodes; kRest: the writer's UTF-8 carry
  // at `t`), or counts it as dropped; a marker for what was dropped goes first.
  enum class Line { kEncoded, kOutput, kRest };
  void put(std::string line, size_t output_bytes, Line kind = Line::kEncoded, double t = 0);
  void finish(const std::string& why);

  Terminal* terminal_;
  std::string terminal_id_;
  RecordingWriter& writer_;
  Setup setup_;
  uint64_t handle_ = 0;
  AsciicastEncoder input_;  // typed input only: output is encoded on the writer's thread
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  double last_t_ = 0;
  uint64_t recorded_offset_ = 0;
  uint64_t dropped_ = 0;          // output bytes dropped so far
  uint64_t dropped_unmarked_ = 0;  // of those, not yet told by a marker
  std::string no_share_;
};

// The time of the last event in an asciicast file (0 when it has none): where a continued
// recording's times go on from. Reads only the file's tail.
double last_event_time(const std::string& path);

}  // namespace rx::hub
