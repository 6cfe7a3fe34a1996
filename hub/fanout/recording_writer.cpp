#include "hub/fanout/recording_writer.h"

#include <cstdio>

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>
#include <utility>

namespace rx::hub {
namespace {

// strerror() is not thread-safe; the category's message is.
std::string error_text(int e) { return std::generic_category().message(e); }

// Creates the directories above `path` that are missing, 0700: recordings are what users typed
// and saw, for no one else. Directories that exist keep their mode.
std::optional<std::string> make_parents(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::filesystem::path at;
  for (const auto& part : parent) {
    at /= part;
    if (::mkdir(at.c_str(), 0700) == 0 || errno == EEXIST) continue;
    int e = errno;
    // Some filesystems answer EACCES or EROFS for a directory that exists.
    struct stat st;
    if (::stat(at.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
    return error_text(e) + " (mkdir " + at.string() + ")";
  }
  return std::nullopt;
}

// Cuts a file of `size` bytes back to just after its last '\n' (to 0 when it has none): what
// follows is a line a killed hub left half-written, which would make the whole recording
// unreadable. Returns the new size. Reads backwards, so a clean file costs one pread.
std::optional<off_t> cut_partial_line(int fd, off_t size, std::string& error) {
  char buf[4096];
  off_t pos = size;
  off_t keep = 0;
  while (pos > 0) {
    auto n = static_cast<size_t>(std::min<off_t>(sizeof buf, pos));
    ssize_t r = ::pread(fd, buf, n, pos - static_cast<off_t>(n));
    if (r < 0 && errno == EINTR) continue;
    if (r != static_cast<ssize_t>(n)) {
      error = r < 0 ? error_text(errno) : "short read";
      return std::nullopt;
    }
    auto newline = std::string_view(buf, n).rfind('\n');
    if (newline != std::string_view::npos) {
      keep = pos - static_cast<off_t>(n) + static_cast<off_t>(newline) + 1;
      break;
    }
    pos -= static_cast<off_t>(n);
  }
  if (keep != size && ::ftruncate(fd, keep) != 0) {
    error = error_text(errno);
    return std::nullopt;
  }
  return keep;
}

// Writes all of `text` or, on failure, none of it: a short write followed by an error (the disk
// filled up mid-line) is truncated back to where the text began, so the file never ends in half
// a line. Truncation needs a regular file; other files (a pipe, /dev/full) cannot hold half a line.
std::optional<std::string> write_whole(int fd, bool regular, std::string_view text) {
  off_t start = regular ? ::lseek(fd, 0, SEEK_END) : -1;
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;  // 0 for a non-empty write: the device took nothing
      if (done > 0 && start >= 0 && ::ftruncate(fd, start) != 0) {
        return error_text(e) + " (and the partial line could not be cut: " + error_text(errno) + ")";
      }
      return error_text(e);
    }
    done += static_cast<size_t>(n);
  }
  return std::nullopt;
}

}  // namespace

RecordingWriter::RecordingWriter(Options o) : options_(o), thread_([this] { run(); }) {}

RecordingWriter::~RecordingWriter() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void RecordingWriter::post(Job job) {
  // The writer waits only on an empty queue: a job behind others needs no wake-up (one per
  // output chunk would cost a thread switch each, a terminal's output being thousands of chunks).
  bool was_empty = jobs_.empty();
  jobs_.push_back(std::move(job));
  ++posted_;
  if (was_empty) wake_.notify_one();
}

uint64_t RecordingWriter::open(std::string path, std::string header) {
  std::lock_guard lock(mutex_);
  uint64_t h = next_handle_++;
  facts_[h];
  post({Job::Kind::open, h, std::move(path), std::move(header)});
  return h;
}

bool RecordingWriter::append(uint64_t h, std::string line, std::optional<uint64_t> mark) {
  return queue({Job::Kind::append, h, {}, std::move(line), mark});
}

bool RecordingWriter::output(uint64_t h, double t, std::string bytes, uint64_t mark) {
  return queue({Job::Kind::output, h, {}, std::move(bytes), mark, t});
}

bool RecordingWriter::output_rest(uint64_t h, double t, uint64_t mark) {
  std::lock_guard lock(mutex_);
  auto it = facts_.find(h);
  if (it == facts_.end() || it->second.closing) return false;
  post({Job::Kind::rest, h, {}, {}, mark, t});
  return true;
}

bool RecordingWriter::queue(Job job) {
  std::lock_guard lock(mutex_);
  auto it = facts_.find(job.handle);
  if (it == facts_.end() || it->second.closing) return false;
  if (job.text.empty()) return true;
  // queued_bytes_ never exceeds the bound, so this cannot wrap.
  if (job.text.size() > options_.max_queued_bytes - queued_bytes_) return false;
  queued_bytes_ += job.text.size();
  post(std::move(job));
  return true;
}

void RecordingWriter::close(uint64_t h) {
  std::lock_guard lock(mutex_);
  auto it = facts_.find(h);
  if (it == facts_.end() || it->second.closing) return;
  it->second.closing = true;
  post({Job::Kind::close, h, {}, {}});
}

uint64_t RecordingWriter::written(uint64_t h) const {
  std::lock_guard lock(mutex_);
  auto it = facts_.find(h);
  return it == facts_.end() ? 0 : it->second.written;
}

uint64_t RecordingWriter::failures(uint64_t h) const {
  std::lock_guard lock(mutex_);
  auto it = facts_.find(h);
  return it == facts_.end() ? 0 : it->second.failures;
}

std::string RecordingWriter::error(uint64_t h) const {
  std::lock_guard lock(mutex_);
  auto it = facts_.find(h);
  return it == facts_.end() ? std::string() : it->second.error;
}

size_t RecordingWriter::queued_bytes() const {
  std::lock_guard lock(mutex_);
  return queued_bytes_;
}

void RecordingWriter::flush() {
  std::unique_lock lock(mutex_);
  uint64_t target = posted_;
  drained_.wait(lock, [&] { return done_ >= target; });
}

void RecordingWriter::run() {
  // Named, so an operator's top -H (and a test that freezes it as a stuck disk would) finds it.
  pthread_setname_np(pthread_self(), "rx-recorder");
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
    if (jobs_.empty()) break;  // stopping, and everything queued is written
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    // The disk is slow exactly when it matters: no lock while writing, so append() never waits.
    lock.unlock();
    Outcome out = perform(job);
    lock.lock();
    if (job.kind == Job::Kind::close) {
      facts_.erase(job.handle);
    } else if (auto it = facts_.find(job.handle); it != facts_.end()) {
      it->second.written += out.written;
      if (out.error) {
        it->second.error = std::move(*out.error);
        ++it->second.failures;
      } else {
        it->second.error.clear();
      }
    }
    if (job.kind == Job::Kind::append || job.kind == Job::Kind::output) queued_bytes_ -= job.text.size();
    ++done_;
    drained_.notify_all();
  }
  lock.unlock();
  files_.clear();  // closes every file still open
}

RecordingWriter::Outcome RecordingWriter::perform(const Job& job) {
  Outcome out;
  switch (job.kind) {
    case Job::Kind::open: {
      File& f = files_[job.handle];
      f.path = job.path;
      f.header = job.text;
      out.error = open_file(f, out.written);
      break;
    }
    case Job::Kind::append:
    case Job::Kind::output:
    case Job::Kind::rest: {
      if (options_.write_delay.count() > 0) std::this_thread::sleep_for(options_.write_delay);
      auto it = files_.find(job.handle);
      if (it == files_.end()) break;
      File& f = it->second;
      // Encoded here, off the loop; the carry is the file's, so the lines stay in order.
      std::string encoded;
      if (job.kind == Job::Kind::output) encoded = f.encoder.output(job.t, job.text);
      if (job.kind == Job::Kind::rest) encoded = f.encoder.output_rest(job.t);
      const std::string& text = job.kind == Job::Kind::append ? job.text : encoded;
      if (text.empty()) break;
      // An open that failed (or a header that did not fit) is tried again: the directory may
      // have been made, or space freed, since.
      if (!f.fd) {
        out.error = open_file(f, out.written);
        if (out.error) break;
      }
      out.error = write_whole(f.fd->get(), f.regular, text);
      if (!out.error) out.written += text.size();
      if (!out.error && job.mark && f.regular) write_mark(f, *job.mark);
      break;
    }
    case Job::Kind::close:
      files_.erase(job.handle);
      break;
  }
  return out;
}

void RecordingWriter::write_mark(File& f, uint64_t offset) {
  if (!f.mark_fd) {
    Fd fd(::open((f.path + ".pos").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    if (fd.get() < 0) return;  // no mark: after a crash the recording repeats what the agent replays
    f.mark_fd.emplace(fd.release());
  }
  off_t size = ::lseek(f.fd->get(), 0, SEEK_END);
  if (size < 0) return;
  // Fixed width, written in place: one pwrite, never a file that holds two marks or half of one.
  char text[64];
  int n = std::snprintf(text, sizeof(text), "%020llu %020llu\n", static_cast<unsigned long long>(offset),
                        static_cast<unsigned long long>(size));
  (void)!::pwrite(f.mark_fd->get(), text, size_t(n), 0);
}

std::optional<RecordingWriter::Mark> RecordingWriter::read_mark(const std::string& path) {
  Fd fd(::open((path + ".pos").c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return std::nullopt;
  char text[64] = {};
  ssize_t n = ::pread(fd.get(), text, sizeof(text) - 1, 0);
  unsigned long long offset = 0, size = 0;
  if (n != 42 || std::sscanf(text, "%20llu %20llu", &offset, &size) != 2) return std::nullopt;
  return Mark{offset, size};
}

std::optional<std::string> RecordingWriter::open_file(File& f, uint64_t& written) {
  f.fd.reset();
  if (auto e = make_parents(f.path)) return e;
  // O_RDWR, not O_WRONLY: a partial last line is found by reading the file's tail.
  Fd fd(::open(f.path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (fd.get() < 0) return error_text(errno) + " (open " + f.path + ")";
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return error_text(errno);
  f.regular = S_ISREG(st.st_mode);
  off_t size = st.st_size;
  // Lines written after the last mark (the hub was killed in between) go: the recording goes on
  // from the mark's offset, and would have them twice.
  if (auto mark = read_mark(f.path); f.regular && mark && off_t(mark->size) < size && ::ftruncate(fd.get(), off_t(mark->size)) == 0)
    size = off_t(mark->size);
  if (f.regular && size > 0) {
    std::string error;
    auto kept = cut_partial_line(fd.get(), size, error);
    if (!kept) return error;
    size = *kept;
  }
  if (size == 0 && !f.header.empty()) {
    // Not kept open when the header fails: the next append opens again and writes it first,
    // so no recording starts without its header.
    if (auto e = write_whole(fd.get(), f.regular, f.header)) return e;
    written += f.header.size();
  }
  f.fd.emplace(fd.release());
  return std::nullopt;
}

}  // namespace rx::hub
