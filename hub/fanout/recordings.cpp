#include "hub/fanout/recordings.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include <ctime>

#include "hub/base/tokens.h"
#include "protocol/log_line.h"

namespace rx::hub {
namespace {

int64_t now() { return int64_t(std::time(nullptr)); }

}  // namespace

int64_t recording_file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? int64_t(st.st_size) : 0;
}

void remove_recording_files(const std::string& path) {
  ::unlink(path.c_str());
  ::unlink((path + ".pos").c_str());  // its mark (hub/fanout/recording_writer.h)
}

Recordings::Recordings(Store& store, WriteBehind& writes, Options options)
    : store_(store), writes_(writes), options_(std::move(options)), writer_(options_.writer) {}

Recordings::~Recordings() {
  // The hub stops: each recording's row gets its size so far (the files stay; they go on when
  // their terminals come back).
  for (auto& [terminal, r] : recorders_) remember(*r, false);
  recorders_.clear();
}

void Recordings::start(Terminal& terminal, const TerminalRecord& t) {
  if (!options_.enabled || !t.record) return;
  Recorder::Setup setup;
  setup.record_input = t.record_input;
  setup.header = AsciicastHeader{t.cols, t.rows, now(), t.name.empty() ? t.id : t.name, "xterm-256color"};
  if (auto old = recorders_.find(t.id); old != recorders_.end()) {
    // The same terminal again in this process: a container started again, a new shell whose
    // output starts over at offset 0, in the same file, its times going on from the old one's.
    setup.recording_id = old->second->id();
    setup.path = old->second->path();
    setup.resume_at = old->second->duration();
    remember(*old->second, false);
    dropped_before_ += old->second->dropped_bytes();
    recorders_.erase(old);
  } else if (auto existing = store_.recording_of_terminal(t.id); existing && *existing) {
    setup.recording_id = (*existing)->id;
    setup.path = (*existing)->path;
    setup.resume_at = last_event_time(setup.path);
    // The hub restarted: the same shell on the same channel, whose output goes on from the
    // file's mark. A new channel (a container started again) is a new shell from offset 0.
    if (terminal.channel() == t.channel)
      if (auto mark = RecordingWriter::read_mark(setup.path)) setup.resume_offset = mark->offset;
  } else {
    RecordingRecord r;
    r.id = new_id("r_");
    r.terminal_id = t.id;
    r.owner_id = t.owner_id;
    r.kind = t.kind;
    r.agent_id = t.agent_id;
    r.name = t.name;
    r.path = options_.dir + "/" + r.id + ".cast";
    r.started_at = setup.header.timestamp;
    setup.recording_id = r.id;
    setup.path = r.path;
    writes_.write("recording.create", [r](Store& store) { return store.create_recording(r); });
  }
  log("info", "recording.start", {{"terminal", t.id}, {"recording", setup.recording_id}});
  by_recording_[setup.recording_id] = t.id;
  recorders_[t.id] = std::make_unique<Recorder>(terminal, writer_, std::move(setup));
}

const Recorder* Recordings::live(const std::string& recording_id) const {
  auto terminal = by_recording_.find(recording_id);
  if (terminal == by_recording_.end()) return nullptr;
  auto r = recorders_.find(terminal->second);
  return r != recorders_.end() && r->second->live() ? r->second.get() : nullptr;
}

void Recordings::sweep() {
  bool ended = false;
  for (auto it = recorders_.begin(); it != recorders_.end();) {
    if (it->second->live()) {
      watch_writes(it->first, *it->second);
      ++it;
      continue;
    }
    writes_seen_.erase(it->first);
    by_recording_.erase(it->second->id());
    remember(*it->second, true);
    dropped_before_ += it->second->dropped_bytes();
    it = recorders_.erase(it);
    ended = true;
  }
  if ((options_.max_bytes > 0 || options_.max_age_s > 0) && (ended || ++sweeps_ % 60 == 0)) apply_retention(now());
}

void Recordings::watch_writes(const std::string& terminal, Recorder& r) {
  // The terminal goes on whatever the disk does; the recording says what it lost, once the disk
  // takes lines again.
  Writes& w = writes_seen_[terminal];
  uint64_t failures = r.write_failures();
  if (failures > w.seen) {
    w.seen = failures;
    if (w.failing) return;
    w.failing = true;
    w.why = r.write_error();
    if (w.why.empty()) w.why = "a write failed";
    ++write_failures_;
    log("warn", "recording.write_failed", {{"terminal", terminal}, {"recording", r.id()}, {"reason", w.why}});
  } else if (w.failing && r.write_error().empty()) {
    // No new failure since the last look, and the last write went in: the disk takes lines again.
    w.failing = false;
    r.mark("rexec: output while the disk refused writes (" + w.why + ") is not in this recording");
    log("info", "recording.write_recovered", {{"terminal", terminal}, {"recording", r.id()}});
  }
}

size_t Recordings::apply_retention(int64_t at) {
  std::vector<RetentionEntry> all;
  RecordingFilter page;
  page.limit = 1000;
  for (;;) {
    auto rows = store_.list_recordings(page);
    if (!rows) {
      log("warn", "recording.retention_failed", {{"reason", rows.error().message}});
      return 0;
    }
    for (auto& r : *rows) {
      bool live = this->live(r.id) != nullptr;
      int64_t bytes = recording_file_size(r.path);
      all.push_back({std::move(r), bytes, live});
    }
    if (rows->size() < size_t(page.limit)) break;
    page.before = all.back().record.id;
  }
  // The rows just read, by id: a victim's path and terminal without reading its row again.
  std::map<std::string, RecordingRecord> by_id;
  for (const auto& e : all) by_id[e.record.id] = e.record;
  size_t deleted = 0;
  for (const auto& id : retention_victims(std::move(all), options_.max_bytes, options_.max_age_s, at)) {
    const RecordingRecord& r = by_id[id];
    auto gone = store_.delete_recording(id);
    if (!gone || !*gone) continue;  // the database is busy: the next round tries again
    remove_recording_files(r.path);
    writes_.audit(audit_entry("hub", "recording.expire", id, "terminal=" + r.terminal_id, ""));
    ++deleted;
  }
  if (deleted > 0) log("info", "recording.retention", {{"deleted", std::to_string(deleted)}});
  return deleted;
}

std::vector<std::string> retention_victims(std::vector<RetentionEntry> all, int64_t max_bytes, int64_t max_age_s,
                                           int64_t now) {
  std::sort(all.begin(), all.end(), [](const RetentionEntry& a, const RetentionEntry& b) {
    return a.record.started_at != b.record.started_at ? a.record.started_at < b.record.started_at
                                                      : a.record.id < b.record.id;
  });
  int64_t total = 0;
  for (const auto& e : all) total += e.bytes;
  std::vector<std::string> out;
  for (const auto& e : all) {
    if (e.live) continue;
    bool too_old = max_age_s > 0 && e.record.started_at + max_age_s < now;
    bool too_much = max_bytes > 0 && total > max_bytes;
    if (!too_old && !too_much) continue;
    out.push_back(e.record.id);
    total -= e.bytes;
  }
  return out;
}

void Recordings::remember(const Recorder& r, bool ended) {
  std::optional<int64_t> ended_at;
  if (ended) ended_at = now();
  writes_.write("recording.update", [id = r.id(), bytes = recording_file_size(r.path()), duration = r.duration(),
                                     ended_at](Store& store) { return store.update_recording(id, bytes, duration, ended_at); });
}

uint64_t Recordings::live_dropped() const {
  uint64_t n = 0;
  for (const auto& [terminal, r] : recorders_) n += r->dropped_bytes();
  return n;
}

}  // namespace rx::hub
