// protocol/limits.h and protocol/SPEC.md state the same numbers: a limit changed in one place and
// not the other fails here.
#include "protocol/limits.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

namespace rx::protocol {
namespace {

std::string spec() {
  std::ifstream in(std::string(REXEC_SOURCE_DIR) + "/protocol/SPEC.md");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// 66560 -> "66,560", as SPEC.md writes numbers.
std::string grouped(uint64_t n) {
  std::string s = std::to_string(n);
  for (int i = int(s.size()) - 3; i > 0; i -= 3) s.insert(size_t(i), ",");
  return s;
}

TEST(Limits, SpecStatesTheLimitsOfTheCode) {
  const std::string text = spec();
  ASSERT_FALSE(text.empty());
  auto has = [&](const std::string& needle) {
    EXPECT_NE(text.find(needle), std::string::npos) << "SPEC.md does not say: " << needle;
  };
  has("| " + grouped(kMaxFrameBytes) + " bytes (64 KiB + 1 KiB) | `frame_too_large` |");
  has("| one `bin` (DATA payload) | " + grouped(kMaxChunk) + " bytes | `too_large` |");
  has("| one `str` | " + grouped(kMaxString) + " bytes | `too_large` |");
  has("| elements of one array or map | " + grouped(kMaxElements) + " | `too_large` |");
  has("| nesting of arrays and maps | " + std::to_string(kMaxDepth) + " | `too_deep` |");
  has(grouped(kMinWindow) + " ≤ window ≤ " + grouped(kMaxWindow));
  has("(default " + std::to_string(kDefaultWindow / 1024) + " KiB)");
  has("`ReplayRing` (≥ " + std::to_string(kReplayBytes / (1024 * 1024)) + " MiB)");
  has("A client message is at most " + grouped(kMaxViewerMessage) + " bytes");
  has("This build speaks version " + std::to_string(kProtocolVersionMax) + " only.");
  EXPECT_EQ(kProtocolVersionMin, kProtocolVersionMax) << "SPEC.md 1.5 says one version only";
}

}  // namespace
}  // namespace rx::protocol
