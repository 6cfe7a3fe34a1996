// Exec output as JSON lines (POST /api/v1/exec with Accept: application/x-ndjson, docs/api.md
// "Exec"): one object per chunk as it arrives, then one result per target. What this owns: the
// shape of a chunk line and the UTF-8 boundary of each stream, so a character that two DATA
// frames split goes out whole, as text, in the later chunk. The fan-out owns when lines are
// written and the backpressure behind them.
#pragma once

#include <string>
#include <string_view>

namespace rx::hub {

// Bytes at the end of `bytes` that start a well-formed multi-byte UTF-8 sequence and stop before
// its end (0..3): the rest of that character is still to come.
size_t incomplete_utf8_tail(std::string_view bytes);

// One stream's bytes on their way to chunk lines: a trailing incomplete character is held back
// for the next chunk (at most 3 bytes per stream, whatever the output).
class Utf8Carry {
 public:
  // What was held back, then `bytes`, less a trailing incomplete character (held now).
  std::string take(std::string_view bytes);
  // The stream ended: what is still held (not UTF-8 on its own).
  std::string rest();

 private:
  std::string held_;
};

// One chunk as a line (with its '\n'): {"target","agent","stream","data"}, `data` the text when
// the bytes are UTF-8, else their base64 with "encoding":"base64".
std::string chunk_line(const std::string& target, const std::string& agent, bool is_stderr, std::string_view bytes);

}  // namespace rx::hub
