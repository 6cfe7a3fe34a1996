#include "hub/fanout/recorder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "hub/base/fd.h"

#include "protocol/limits.h"

namespace rx::hub {

Recorder::Recorder(Terminal& terminal, RecordingWriter& writer, Setup setup)
    : terminal_(&terminal), terminal_id_(terminal.id()), writer_(writer), setup_(std::move(setup)) {
  last_t_ = setup_.resume_at;
  recorded_offset_ = setup_.resume_offset.value_or(0);
  handle_ = writer_.open(setup_.path, AsciicastEncoder::header(setup_.header));
  if (setup_.resume_at > 0) put(AsciicastEncoder::marker(now(), "rexec: recording continues"), 0);
  // From what the terminal holds now: a new terminal holds nothing yet.
  terminal_->add_viewer(this, setup_.resume_offset);
}

Recorder::~Recorder() {
  if (terminal_) terminal_->remove_viewer(this);
  finish("");
}

double Recorder::now() {
  double t = setup_.resume_at + std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  last_t_ = std::max(last_t_, t);  // never backwards, whatever the file held
  return last_t_;
}

void Recorder::wake() {
  if (!terminal_) return;
  // Everything, now: a recorder that left output in the ring would hold the agent's credit.
  for (;;) {
    auto chunk = terminal_->take_output(this, protocol::kMaxChunk);
    if (chunk.size() == 0) return;
    double t = now();
    std::string bytes(chunk.first.begin(), chunk.first.end());
    bytes.append(chunk.second.begin(), chunk.second.end());
    // (A character cut at the chunk's end is held by the encoder and counted as taken: a crash
    // right then loses those at most 3 bytes.) Encoded on the writer's thread: here, a copy.
    recorded_offset_ = chunk.offset + chunk.size();
    size_t n = bytes.size();
    put(std::move(bytes), n, Line::kOutput, t);
  }
}

void Recorder::queue_event(const nlohmann::json& event) {
  const auto type = event.value("type", "");
  if (type == "exit") {
    double t = now();
    put({}, 0, Line::kRest, t);
    put(AsciicastEncoder::exit(t, event.value("code", 0)), 0);
  } else if (type == "gap") {
    // Output that left the terminal's ring before it was taken (the recorder attached late).
    uint64_t lost = event.value("to", uint64_t(0)) - event.value("from", uint64_t(0));
    put(AsciicastEncoder::marker(now(), "rexec: " + std::to_string(lost) + " bytes of output are not in this recording"),
        0);
  }
}

void Recorder::resized(uint16_t cols, uint16_t rows) { put(AsciicastEncoder::resize(now(), cols, rows), 0); }

void Recorder::typed(std::span<const uint8_t> bytes) {
  if (!setup_.record_input) return;
  // Keystrokes are few: encoded here, with the input's own carry.
  put(input_.input(now(), std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size())), 0);
}

void Recorder::terminal_gone(const std::string& reason) {
  terminal_ = nullptr;
  finish(reason);
}

void Recorder::put(std::string line, size_t output_bytes, Line kind, double t) {
  if (handle_ == 0 || (line.empty() && kind != Line::kRest)) return;
  if (dropped_unmarked_ > 0) {
    std::string marker = AsciicastEncoder::marker(
        last_t_, "rexec: " + std::to_string(dropped_unmarked_) + " bytes of output not recorded (the disk was too slow)");
    if (!writer_.append(handle_, std::move(marker), recorded_offset_)) {
      dropped_ += output_bytes;
      dropped_unmarked_ += output_bytes;
      return;
    }
    dropped_unmarked_ = 0;
  }
  // Every line carries the mark, so the file never holds a line past its mark but by a crash.
  bool queued = kind == Line::kOutput ? writer_.output(handle_, t, std::move(line), recorded_offset_)
                : kind == Line::kRest ? writer_.output_rest(handle_, t, recorded_offset_)
                                      : writer_.append(handle_, std::move(line), recorded_offset_);
  if (!queued) {
    dropped_ += output_bytes;
    dropped_unmarked_ += output_bytes;
  }
}

void Recorder::finish(const std::string& why) {
  if (handle_ == 0) return;
  put({}, 0, Line::kRest, last_t_);
  if (!why.empty()) put(AsciicastEncoder::marker(last_t_, "rexec: " + why), 0);
  writer_.close(handle_);
  handle_ = 0;
}

double last_event_time(const std::string& path) {
  int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) return 0;
  Fd fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || st.st_size == 0) return 0;
  // The last line is an event of at most one chunk of output, JSON-escaped: 64 KiB holds it.
  off_t from = std::max<off_t>(0, st.st_size - 64 * 1024);
  std::string tail(size_t(st.st_size - from), '\0');
  ssize_t n = ::pread(fd.get(), tail.data(), tail.size(), from);
  if (n <= 0) return 0;
  tail.resize(size_t(n));
  // Back from the end: the last complete line that is an event ("[t, ...]"), not the header.
  size_t end = tail.rfind('\n');
  while (end != std::string::npos && end > 0) {
    size_t start = tail.rfind('\n', end - 1);
    start = start == std::string::npos ? 0 : start + 1;
    if (start == 0 && from > 0) return 0;  // a line longer than the tail read: not ours
    auto line = nlohmann::json::parse(tail.substr(start, end - start), nullptr, false);
    if (line.is_array() && !line.empty() && line[0].is_number()) return line[0].get<double>();
    if (start == 0) return 0;
    end = start - 1;
  }
  return 0;
}

}  // namespace rx::hub
