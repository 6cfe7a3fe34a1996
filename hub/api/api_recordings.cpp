// Terminal recordings (hub/fanout/recordings.h): list, metadata, the .cast file (streamed, with
// HTTP Range), delete. A recording is its owner's (an admin sees all); others' answer 404.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>

#include "hub/api/api.h"
#include "hub/api/file_stream.h"
#include "hub/api/json_fields.h"
#include "hub/fanout/cast_indexes.h"
#include "hub/fanout/recordings.h"

namespace rx::hub {
namespace {

struct ByteRange {
  uint64_t first = 0, last = 0;  // inclusive
};

// "bytes=A-B", "bytes=A-", "bytes=-N" over a file of `size` bytes (one range; RFC 9110 14.1.2).
// nullopt: not satisfiable (416).
std::optional<ByteRange> parse_range(std::string_view header, uint64_t size) {
  if (!header.starts_with("bytes=") || header.find(',') != std::string_view::npos) return std::nullopt;
  header.remove_prefix(6);
  auto dash = header.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto number = [](std::string_view s, uint64_t& out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && ec == std::errc() && end == s.data() + s.size();
  };
  std::string_view a = header.substr(0, dash), b = header.substr(dash + 1);
  ByteRange r;
  if (a.empty()) {  // the last N bytes
    uint64_t n = 0;
    if (!number(b, n) || n == 0 || size == 0) return std::nullopt;
    r.first = n >= size ? 0 : size - n;
    r.last = size - 1;
    return r;
  }
  if (!number(a, r.first) || r.first >= size) return std::nullopt;
  r.last = size - 1;
  if (!b.empty()) {
    uint64_t last = 0;
    if (!number(b, last) || last < r.first) return std::nullopt;
    r.last = std::min(last, size - 1);
  }
  return r;
}

}  // namespace

nlohmann::json Api::recording_json(const RecordingRecord& r) {
  const Recorder* live = recordings_ ? recordings_->live(r.id) : nullptr;
  return {{"id", r.id},
          {"terminal", r.terminal_id},
          {"kind", r.kind},
          {"owner", r.owner_id},
          {"agent", r.agent_id},
          {"name", r.name},
          {"started_at", r.started_at},
          {"ended_at", r.ended_at ? nlohmann::json(*r.ended_at) : nlohmann::json(nullptr)},
          {"bytes", recording_file_size(r.path)},
          {"duration", live ? live->duration() : r.duration},
          {"live", live != nullptr},
          {"cast", "/api/v1/recordings/" + r.id + ".cast"}};
}

Result<RecordingRecord> Api::find_recording(const Principal& p, const std::string& id) {
  auto r = store_.recording_by_id(id);
  if (!r) return r.error();
  if (!*r || !p.sees((*r)->owner_id)) return make_error("not_found", "no recording \"" + id + "\"");
  return **r;
}

Reply Api::list_recordings(const Principal& p, Request& req) {
  RecordingFilter f;
  if (auto it = req.query.find("terminal"); it != req.query.end()) f.terminal_id = it->second;
  if (auto it = req.query.find("before"); it != req.query.end()) f.before = it->second;
  if (auto it = req.query.find("user"); it != req.query.end()) {
    auto u = find_user(it->second);
    if (!u) return u.error();
    if (!*u) return make_error("not_found", "no user \"" + it->second + "\"");
    if (!p.sees((*u)->id)) return make_error("forbidden", "only administrators may list other users' recordings");
    f.owner_id = (*u)->id;
  }
  if (!p.is_admin()) f.owner_id = p.user.id;
  auto since = query_int(req, "since", 0, INT64_MAX);
  auto until = query_int(req, "until", 0, INT64_MAX);
  auto limit = query_int(req, "limit", 1, 1000);
  for (const Error* e : {since ? nullptr : &since.error(), until ? nullptr : &until.error(), limit ? nullptr : &limit.error()})
    if (e) return *e;
  f.since = since->value_or(0);
  f.until = until->value_or(0);
  f.limit = int(limit->value_or(100));
  auto rows = store_.list_recordings(f);
  if (!rows) return rows.error();
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : *rows) out.push_back(recording_json(r));
  nlohmann::json next = rows->size() == size_t(f.limit) ? nlohmann::json(rows->back().id) : nlohmann::json(nullptr);
  return json_response(200, {{"recordings", out}, {"next_before", next}});
}

Reply Api::get_recording(const Principal& p, Request& req) {
  auto r = find_recording(p, req.params["id"]);
  if (!r) return r.error();
  return json_response(200, recording_json(*r));
}

Reply Api::get_recording_cast(const Principal& p, Request& req, const Exchange& ex) {
  auto r = find_recording(p, req.params["id"]);
  if (!r) return r.error();
  return stream_recording(*r, req, ex);
}

Reply Api::stream_recording(const RecordingRecord& rec, Request& req, const Exchange& ex) {
  const RecordingRecord* r = &rec;
  int raw = ::open(r->path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (raw < 0) return make_error("not_found", "recording " + r->id + " has no file (nothing was written yet, or it was removed)");
  Fd fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return make_error("not_found", "recording " + r->id + " has no file");
  uint64_t size = uint64_t(st.st_size);
  Response head;
  head.content_type = "application/x-asciicast";
  head.headers.push_back({"Content-Disposition", "attachment; filename=\"" + r->id + ".cast\""});
  head.headers.push_back({"Accept-Ranges", "bytes"});
  auto range_header = req.header("range");
  if (!range_header) {
    stream_file(std::move(fd), ex, std::move(head), r->path, 0, size);
    return Later{};
  }
  auto range = parse_range(*range_header, size);
  if (!range) {
    Response refused = error_response(make_error("range_not_satisfiable", "the recording has " + std::to_string(size) +
                                                                               " bytes; Range " + range_header->substr(0, 64) +
                                                                               " is outside them or not one bytes= range"));
    refused.headers.push_back({"Content-Range", "bytes */" + std::to_string(size)});
    return refused;
  }
  head.status = 206;
  head.headers.push_back({"Content-Range", "bytes " + std::to_string(range->first) + "-" + std::to_string(range->last) +
                                               "/" + std::to_string(size)});
  stream_file(std::move(fd), ex, std::move(head), r->path, off_t(range->first), range->last - range->first + 1);
  return Later{};
}

Reply Api::get_recording_index(const Principal& p, Request& req, const Exchange& ex) {
  auto r = find_recording(p, req.params["id"]);
  if (!r) return r.error();
  return recording_index(*r, ex);
}

Reply Api::get_recording_segment(const Principal& p, Request& req, const Exchange& ex) {
  auto r = find_recording(p, req.params["id"]);
  if (!r) return r.error();
  return recording_segment(*r, req, ex);
}

// The index and segment documents are built on libvterm off the loop (CastIndexes): answered Later.
namespace {
Reply segmented_reply(Result<std::string> doc) {
  if (!doc) return doc.error();
  Response r;
  r.body = std::move(*doc);
  // A segment URL names its end, so its document never changes; an index grows with a live recording.
  return r;
}
}  // namespace

Reply Api::recording_index(const RecordingRecord& r, const Exchange& ex) {
  if (!cast_indexes_) return make_error("unavailable", "this hub does not index recordings");
  cast_indexes_->index(r.id, r.path, [ex](Result<std::string> doc) { answer(ex, segmented_reply(std::move(doc))); });
  return Later{};
}

Reply Api::recording_segment(const RecordingRecord& r, Request& req, const Exchange& ex) {
  if (!cast_indexes_) return make_error("unavailable", "this hub does not index recordings");
  const std::string& n_text = req.params["n"];
  size_t n = 0;
  auto [end, ec] = std::from_chars(n_text.data(), n_text.data() + n_text.size(), n);
  if (n_text.empty() || ec != std::errc() || end != n_text.data() + n_text.size())
    return make_error("bad_request", "a segment is named by its number (segments/N), not \"" + n_text.substr(0, 64) + "\"");
  auto to = query_int(req, "to", 0, INT64_MAX);
  if (!to) return to.error();
  if (!*to) return make_error("bad_request", "to= is required: the byte a segment ends at, as its index gave it");
  cast_indexes_->segment(r.id, r.path, n, uint64_t(**to),
                         [ex](Result<std::string> doc) { answer(ex, segmented_reply(std::move(doc))); });
  return Later{};
}

Reply Api::delete_recording(const Principal& p, Request& req) {
  auto r = find_recording(p, req.params["id"]);
  if (!r) return r.error();
  if (recordings_ && recordings_->live(r->id))
    return make_error("conflict", "recording " + r->id + " is still being written: delete its terminal first");
  auto deleted = store_.delete_recording(r->id);
  if (!deleted) return deleted.error();
  remove_recording_files(r->path);
  if (cast_indexes_) cast_indexes_->forget(r->id);
  audit(p, "recording.delete", r->id, "terminal=" + r->terminal_id);
  return json_response(200, {{"id", r->id}, {"deleted", true}});
}

}  // namespace rx::hub
