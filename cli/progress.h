// ProgressBar: one line on stderr, redrawn in place while a file moves: what, the percent and a
// bar when the size is known, the bytes so far, the rate. Drawn only when stderr is a terminal:
// a script's log or a pipe gets nothing from it.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace rx::cli {

class ProgressBar {
 public:
  // `wanted` false: never drawn (the caller knows the terminal is busy with something else).
  explicit ProgressBar(std::string label, FILE* out = stderr, bool wanted = true);
  // Ends the line it drew, so what is printed next (an error, say) starts on a fresh one.
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  bool shown() const { return on_; }
  // `total` 0: unknown. Redrawn at most ten times a second.
  void update(uint64_t done, uint64_t total);
  // The last state, drawn whatever the time since the previous one, and the line ended.
  void finish(uint64_t done, uint64_t total);

 private:
  using Clock = std::chrono::steady_clock;
  void draw(uint64_t done, uint64_t total);

  std::string label_;
  FILE* out_;
  bool on_;
  bool drawn_ = false;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_{};
};

// 0 B, 512 B, 1.5 KiB, 27 MiB: as the dashboard shows sizes.
std::string human_bytes(double n);

}  // namespace rx::cli
