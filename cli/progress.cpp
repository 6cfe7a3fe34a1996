#include "cli/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>

namespace rx::cli {

namespace {

int columns(FILE* out) {
  winsize ws{};
  if (::ioctl(::fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

}  // namespace

std::string human_bytes(double n) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t i = 0;
  while (n >= 1024 && i + 1 < std::size(kUnits)) {
    n /= 1024;
    ++i;
  }
  char buf[32];
  if (i == 0) std::snprintf(buf, sizeof buf, "%.0f B", n);
  else std::snprintf(buf, sizeof buf, n < 10 ? "%.1f %s" : "%.0f %s", n, kUnits[i]);
  return buf;
}

ProgressBar::ProgressBar(std::string label, FILE* out, bool wanted)
    : label_(std::move(label)), out_(out), on_(wanted && ::isatty(::fileno(out))) {}

ProgressBar::~ProgressBar() {
  if (drawn_) std::fputc('\n', out_);
}

void ProgressBar::update(uint64_t done, uint64_t total) {
  if (!on_) return;
  auto now = Clock::now();
  if (drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  draw(done, total);
}

void ProgressBar::finish(uint64_t done, uint64_t total) {
  if (!on_) return;
  draw(done, total);
  std::fputc('\n', out_);
  drawn_ = false;
}

void ProgressBar::draw(uint64_t done, uint64_t total) {
  double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  std::string tail = human_bytes(double(done));
  if (total) tail += " / " + human_bytes(double(total));
  // A rate over the first instants would be noise.
  if (seconds >= 0.25) tail += "  " + human_bytes(double(done) / seconds) + "/s";
  int width = columns(out_) - 1;  // the last column would wrap on some terminals
  // Room goes first to the numbers, then to the name, then to the bar (10 to 30 wide).
  std::string percent;
  if (total) {
    char p[8];
    std::snprintf(p, sizeof p, "%3d%% ", int(std::min<uint64_t>(100, done * 100 / total)));
    percent = p;
  }
  int spare = width - int(percent.size() + tail.size()) - 2;
  int bar = 0;
  if (total && spare - int(label_.size()) >= 13) bar = std::min(30, spare - int(label_.size()) - 3);
  else if (total && spare >= 13 + 12) bar = 10;
  std::string middle = percent;
  if (bar) {
    int full = int(uint64_t(bar) * std::min(done, total) / total);
    middle += "[" + std::string(size_t(full), '#') + std::string(size_t(bar - full), '.') + "] ";
  }
  int room = spare - (bar ? bar + 3 : 0);
  std::string label = label_;
  if (room < int(label.size())) {
    // The end of a path says more than its start; the cut lands on a UTF-8 character's first byte.
    size_t cut = room > 3 ? label.size() - size_t(room - 3) : label.size();
    while (cut < label.size() && (static_cast<unsigned char>(label[cut]) & 0xC0) == 0x80) ++cut;
    label = room > 3 ? "..." + label.substr(cut) : "";
  }
  std::string line = "\r" + label + (label.empty() ? "" : "  ") + middle + tail + "\033[K";
  std::fputs(line.c_str(), out_);
  std::fflush(out_);
  drawn_ = true;
}

}  // namespace rx::cli
