#include "hub/channel/exec_lines.h"

#include <algorithm>
#include <utility>

#include <nlohmann/json.hpp>

#include "hub/base/json_text.h"
#include "protocol/base64.h"
#include "protocol/utf8.h"
#include "protocol/viewer.h"

namespace rx::hub {
namespace {

// Length of the whole sequence a lead byte starts (1 for ASCII and for bytes that lead nothing).
size_t sequence_length(unsigned char lead) {
  if (lead >= 0xf0) return 4;
  if (lead >= 0xe0) return 3;
  if (lead >= 0xc0) return 2;
  return 1;
}

// True when `start` (shorter than its sequence) can still become a well-formed character: some
// continuation completes it. The second byte is the constrained one (no overlongs, surrogates or
// code points past U+10FFFF); 0x80, 0x90 and 0xa0 between them meet every lead's range.
bool completable(std::string_view start, size_t need) {
  for (char second : {'\x80', '\x90', '\xa0'}) {
    std::string probe(start);
    if (probe.size() == 1) probe += second;
    probe.resize(need, '\x80');
    if (protocol::utf8_sequence(probe) == need) return true;
  }
  return false;
}

}  // namespace

size_t incomplete_utf8_tail(std::string_view bytes) {
  for (size_t n = std::min<size_t>(3, bytes.size()); n > 0; --n) {
    std::string_view tail = bytes.substr(bytes.size() - n);
    size_t need = sequence_length(static_cast<unsigned char>(tail[0]));
    if (need > n && completable(tail, need)) return n;
  }
  return 0;
}

std::string Utf8Carry::take(std::string_view bytes) {
  std::string out = std::exchange(held_, {});
  out.append(bytes);
  size_t tail = incomplete_utf8_tail(out);
  held_.assign(out, out.size() - tail, tail);
  out.resize(out.size() - tail);
  return out;
}

std::string Utf8Carry::rest() { return std::exchange(held_, {}); }

std::string chunk_line(const std::string& target, const std::string& agent, bool is_stderr, std::string_view bytes) {
  nlohmann::json line{{"target", target}, {"agent", agent}, {"stream", is_stderr ? "stderr" : "stdout"}};
  if (protocol::viewer::valid_utf8(bytes)) {
    line["data"] = bytes;
  } else {
    line["data"] = protocol::base64_encode(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
    line["encoding"] = "base64";
  }
  return json_text(line) + "\n";
}

}  // namespace rx::hub
