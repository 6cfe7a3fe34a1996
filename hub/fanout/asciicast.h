// Asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/): the lines of a terminal
// recording, one JSON document each — a header, then [time, code, data] events. Pure text, no
// I/O and no clock: the recorder (an OutputSink) takes times from a monotonic clock and hands the
// lines to a RecordingWriter (hub/fanout/recording_writer.h).
//
// A terminal's output is bytes, cut wherever the agent's chunks fall, and JSON strings must be
// UTF-8: a character split across two chunks is held back until it is whole (Utf8Carry), and
// bytes that can never be UTF-8 become U+FFFD, so every line is valid whatever the program wrote.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "hub/channel/exec_lines.h"

namespace rx::hub {

struct AsciicastHeader {
  int width = 80;
  int height = 24;
  int64_t timestamp = 0;  // Unix seconds when the recording began
  std::string title;
  std::string term = "xterm-256color";
};

class AsciicastEncoder {
 public:
  // {"version":2,"width":W,"height":H,"timestamp":T,"title":"...","env":{"TERM":"..."}} + "\n".
  // SHELL is left out: the hub does not know the shell an agent runs.
  static std::string header(const AsciicastHeader& h);
  // [t, "o", "text"] + "\n" for output bytes at t seconds since the recording began. A character
  // split at the end of `bytes` is held and written with the next call's; invalid bytes become
  // U+FFFD. "" when nothing complete is left to write.
  std::string output(double t, std::string_view bytes);
  // [t, "i", "text"] + "\n" for input (keystrokes), with its own carry.
  std::string input(double t, std::string_view bytes);
  static std::string resize(double t, int cols, int rows);      // [t, "r", "COLSxROWS"]
  static std::string marker(double t, std::string_view label);  // [t, "m", "label"]
  // [t, "x", "CODE"]: the exit event of asciicast v3; v2 readers ignore codes they do not know.
  static std::string exit(double t, int code);
  // The recording ends: what the output carry still holds, as U+FFFD ("" when it holds nothing).
  std::string output_rest(double t);

 private:
  Utf8Carry output_carry_;
  Utf8Carry input_carry_;
};

// Seconds as asciicast writes them: fixed with 6 decimals ("0.000123"), never exponent notation
// (a reader may not parse 1e-06). Negative and non-finite times, which no monotonic clock gives,
// are written as 0 so the line stays JSON.
std::string asciicast_time(double t);

}  // namespace rx::hub
