#include "hub/fanout/cast_index.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "hub/base/json_text.h"

namespace rx::hub {
namespace {

struct Event {
  int64_t us;
  std::string code;
  nlohmann::json data;
};

// [time, "code", data] with its time in microseconds, never below `floor`; nullopt for a line
// that is not an event.
std::optional<Event> parse_event(std::string_view line, int64_t floor) {
  auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array() || j.size() != 3 || !j[0].is_number() || !j[1].is_string()) return std::nullopt;
  double t = j[0].get<double>();
  int64_t us = std::isfinite(t) && t > 0 && t < 1e12 ? std::llround(t * 1e6) : 0;
  return Event{std::max(us, floor), j[1].get<std::string>(), std::move(j[2])};
}

std::string seconds(int64_t us) { return fmt::format("{}.{:06}", us / 1000000, us % 1000000); }

int size_field(const nlohmann::json& header, const char* name) {
  auto it = header.find(name);
  return it != header.end() && it->is_number_integer() ? std::clamp(it->get<int>(), 1, 1000) : 0;
}

}  // namespace

Status CastIndex::extend(int fd) {
  std::string pending;
  uint64_t at = end_;  // file offset of pending's first byte
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, off_t(at + pending.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error("io_error", std::string("reading the recording: ") + std::strerror(errno));
    if (n == 0) break;
    pending.append(buf, size_t(n));
    size_t from = 0;
    for (size_t nl; (nl = pending.find('\n', from)) != std::string::npos; from = nl + 1) {
      if (auto s = line(std::string_view(pending).substr(from, nl - from), at + from); !s) return s;
      end_ = at + nl + 1;
    }
    pending.erase(0, from);
    at += from;
  }
  return Ok{};
}

Status CastIndex::line(std::string_view text, uint64_t offset) {
  if (!header_) {
    auto h = nlohmann::json::parse(text, nullptr, false);
    int cols = h.is_object() ? size_field(h, "width") : 0, rows = h.is_object() ? size_field(h, "height") : 0;
    // value() would throw on a "version" that is not a number: an index is built on a pool thread.
    auto version = h.is_object() ? h.find("version") : h.end();
    if (!h.is_object() || version == h.end() || !version->is_number_integer() || *version != 2 || !cols || !rows)
      return make_error("bad_recording", "the recording's first line is not an asciicast v2 header");
    header_ = true;
    cols_ = cols;
    rows_ = rows;
    screen_ = std::make_unique<TerminalScreen>(cols, rows);
    segments_.push_back(Segment{offset + text.size() + 1, 0, cols, rows, ""});
    return Ok{};
  }
  auto e = parse_event(text, last_);
  if (!e) return Ok{};
  if (e->us > last_ && offset - segments_.back().begin >= segment_bytes_) {
    segments_.push_back(Segment{offset, e->us, screen_->cols(), screen_->rows(), screen_->snapshot()});
    memory_ += sizeof(Segment) + segments_.back().init.size();
  }
  last_ = e->us;
  if (!e->data.is_string()) return Ok{};
  const std::string& data = e->data.get_ref<const std::string&>();
  if (e->code == "o") {
    screen_->feed(data);
  } else if (e->code == "r") {
    int cols = 0, rows = 0;
    if (std::sscanf(data.c_str(), "%dx%d", &cols, &rows) == 2) screen_->resize(cols, rows);
  } else if (e->code == "m") {
    markers_.emplace_back(e->us, data);
    memory_ += sizeof(markers_.back()) + data.size();
  }
  return Ok{};
}

size_t CastIndex::listed() const {
  size_t n = segments_.size();
  return n > 1 && segments_.back().start >= last_ ? n - 1 : n;
}

uint64_t CastIndex::listed_end(size_t n) const { return n + 1 < listed() ? segments_[n + 1].begin : end_; }

Result<std::string> CastIndex::index_json() const {
  if (!header_) return make_error("not_found", "the recording has no header yet");
  std::string out = fmt::format(R"({{"version":1,"duration":{},"term":{{"cols":{},"rows":{}}},"segments":[)", seconds(last_),
                                cols_, rows_);
  for (size_t i = 0, n = listed(); i < n; ++i)
    out += fmt::format(R"({}{{"start":{},"url":"segments/{}?to={}"}})", i ? "," : "", seconds(segments_[i].start), i,
                       listed_end(i));
  out += R"(],"markers":[)";
  for (size_t i = 0; i < markers_.size(); ++i)
    out += fmt::format("{}[{},{}]", i ? "," : "", seconds(markers_[i].first), json_text(markers_[i].second));
  return out + "]}";
}

Result<std::string> CastIndex::segment_json(int fd, size_t n, uint64_t to) const {
  if (n >= segments_.size()) return make_error("not_found", fmt::format("the recording has no segment {}", n));
  const Segment& s = segments_[n];
  // At most to the end of the segment after it: where this one ends when that one is not listed.
  uint64_t most = n + 2 < segments_.size() ? segments_[n + 2].begin : end_;
  if (to < s.begin || to > most)
    return make_error("bad_request", fmt::format("segment {} ends between byte {} and {}, not at {}", n, s.begin, most, to));
  std::string bytes(to - s.begin, '\0');
  for (size_t got = 0; got < bytes.size();) {
    ssize_t r = ::pread(fd, bytes.data() + got, bytes.size() - got, off_t(s.begin + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return make_error("io_error", std::string("reading the recording: ") + std::strerror(errno));
    if (r == 0) return make_error("io_error", "the recording is shorter than its index");
    got += size_t(r);
  }
  std::string out = fmt::format(R"({{"snapshot":{{"cols":{},"rows":{},"init":{}}},"events":[)", s.cols, s.rows,
                                json_text(s.init));
  int64_t floor = s.start;
  bool first = true;
  size_t from = 0;
  for (size_t nl; (nl = bytes.find('\n', from)) != std::string::npos; from = nl + 1) {
    auto e = parse_event(std::string_view(bytes).substr(from, nl - from), floor);
    if (!e) continue;
    floor = e->us;
    out += fmt::format("{}[{},{},{}]", first ? "" : ",", seconds(e->us), json_text(e->code), json_text(e->data));
    first = false;
  }
  return out + "]}";
}

}  // namespace rx::hub
