#include "agent/file_op.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>  // renameat2, RENAME_NOREPLACE
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "protocol/error.h"
#include "protocol/file_path.h"
#include "protocol/frame.h"
#include "protocol/utf8.h"

namespace rx::agent {
namespace {

constexpr size_t kChunk = 64 * 1024;
constexpr size_t kShownPath = 256;  // bytes of a path quoted in a message: a line stays short

// ---- JSON: a handful of flat objects, not worth a library in a static binary ---------------------

std::string json_string(std::string_view bytes) {
  std::string out = "\"";
  for (unsigned char c : protocol::clean_utf8(bytes)) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      char u[8];
      std::snprintf(u, sizeof(u), "\\u%04x", c);
      out += u;
    } else {
      out += char(c);
    }
  }
  return out + "\"";
}

// Named adders, not overloads: a string literal would pick add(bool) over add(string_view).
class JsonObject {
 public:
  JsonObject& str(std::string_view key, std::string_view value) { return raw(key, json_string(value)); }
  JsonObject& num(std::string_view key, int64_t value) { return raw(key, std::to_string(value)); }
  JsonObject& flag(std::string_view key, bool value) { return raw(key, value ? "true" : "false"); }
  std::string line() const { return text_ + "}\n"; }

 private:
  JsonObject& raw(std::string_view key, std::string_view value) {
    if (text_.size() > 1) text_ += ',';
    text_ += json_string(key);
    text_ += ':';
    text_ += value;
    return *this;
  }
  std::string text_ = "{";
};

// Blocking writes: the pipe to the agent is how its credit flow holds this child back.
bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(size_t(n));
  }
  return true;
}

void status(const JsonObject& o) { (void)write_all(STDERR_FILENO, o.line()); }

int fail(const Error& e) {
  status(JsonObject().flag("ok", false).str("code", e.code).str("message", e.message));
  return 1;
}

// ---- errors ------------------------------------------------------------------------------------

// A path as a message shows it: cut at a whole UTF-8 sequence, so a 4 KiB path stays readable.
std::string shown(std::string_view path) {
  if (path.size() <= kShownPath) return std::string(path);
  size_t end = 0;
  while (end < kShownPath) {
    size_t n = std::max<size_t>(1, protocol::utf8_sequence(path.substr(end)));
    if (end + n > kShownPath) break;
    end += n;
  }
  return std::string(path.substr(0, end)) + "...";
}

std::string code_of(int err) {
  switch (err) {
    case ENOENT: return "not_found";
    case EACCES:
    case EPERM: return "permission_denied";
    case EISDIR: return "is_directory";
    case ENOTDIR: return "not_directory";
    case EEXIST: return "exists";
    case ENOTEMPTY: return "not_empty";
    case ENOSPC:
    case EDQUOT: return "no_space";
    case ENAMETOOLONG:
    case ELOOP: return "bad_path";
    default: return "io_error";
  }
}

// "cannot open notes.txt: No such file or directory", coded by errno.
Error failure(int err, std::string_view what, std::string_view path) {
  return make_error(code_of(err), std::string(what) + " " + shown(path) + ": " + std::strerror(err));
}

Error not_regular(std::string_view path) {
  return make_error("not_regular_file", shown(path) + " is not a regular file (a FIFO, socket or device)");
}

// The hub refuses these already (protocol/file_path.h); checked again so the agent never relies on it.
std::optional<Error> path_problem(std::string_view path) {
  auto why = protocol::file_path_problem(path);
  if (!why) return std::nullopt;
  return make_error("bad_path", "bad path " + shown(path) + ": " + *why);
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// ---- get -----------------------------------------------------------------------------------------

int get(const std::string& path) {
  struct stat st {};
  // Looked at before it is opened: a device is never opened at all (opening some has effects).
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) return fail(not_regular(path));
  // O_NONBLOCK: a FIFO swapped in since the stat must not block the open; fstat then refuses it.
  Fd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd) return fail(failure(errno, "cannot open", path));
  if (::fstat(fd.get(), &st) != 0) return fail(failure(errno, "cannot stat", path));
  if (S_ISDIR(st.st_mode)) return fail(make_error("is_directory", shown(path) + " is a directory"));
  if (!S_ISREG(st.st_mode)) return fail(not_regular(path));
  status(JsonObject().flag("ok", true).num("size", int64_t(st.st_size)).num("mode", st.st_mode & 07777)
             .num("mtime", int64_t(st.st_mtim.tv_sec)).flag("is_dir", false));
  // Exactly the size announced: a file that grows is cut there, one that shrinks is an error.
  const uint64_t size = uint64_t(st.st_size);
  std::vector<char> buf(kChunk);
  for (uint64_t done = 0; done < size;) {
    ssize_t n = ::read(fd.get(), buf.data(), size_t(std::min<uint64_t>(kChunk, size - done)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(failure(errno, "cannot read", path));
    if (n == 0)
      return fail(make_error("io_error", "file shrank while it was read: " + shown(path) + " had " +
                                             std::to_string(size) + " bytes, only " + std::to_string(done) + " were left"));
    if (!write_all(STDOUT_FILENO, std::string_view(buf.data(), size_t(n)))) return 1;  // the agent is gone
    done += uint64_t(n);
  }
  return 0;
}

// ---- list ----------------------------------------------------------------------------------------

struct Entry {
  std::string name;
  unsigned char type;  // d_type: for an entry that cannot be stat'ed (a directory without x)
};

int list(const std::string& path) {
  Fd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!dir) return fail(failure(errno, "cannot list", path));  // a file: ENOTDIR, not_directory
  struct stat st {};
  if (::fstat(dir.get(), &st) != 0) return fail(failure(errno, "cannot stat", path));
  std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(::fcntl(dir.get(), F_DUPFD_CLOEXEC, 0)), ::closedir);
  if (!d) return fail(failure(errno, "cannot list", path));
  std::vector<Entry> entries;
  for (;;) {
    errno = 0;
    dirent* e = ::readdir(d.get());
    if (!e) {
      if (errno != 0) return fail(failure(errno, "cannot list", path));
      break;
    }
    std::string_view name = e->d_name;
    if (name != "." && name != "..") entries.push_back({std::string(name), e->d_type});
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
  status(JsonObject().flag("ok", true).num("size", 0).num("mode", st.st_mode & 07777)
             .num("mtime", int64_t(st.st_mtim.tv_sec)).flag("is_dir", true));
  std::string out;
  for (const auto& e : entries) {
    struct stat es {};
    JsonObject line;
    line.str("name", e.name);
    if (::fstatat(dir.get(), e.name.c_str(), &es, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;  // gone since readdir
      line.num("size", 0).num("mode", 0).flag("is_dir", e.type == DT_DIR).num("mtime", 0);
    } else {
      // A link is shown as what it leads to, as get and a shell's `cd` would see it; a dangling one as itself.
      struct stat target {};
      if (S_ISLNK(es.st_mode) && ::fstatat(dir.get(), e.name.c_str(), &target, 0) == 0) es = target;
      line.num("size", S_ISDIR(es.st_mode) ? 0 : int64_t(es.st_size)).num("mode", es.st_mode & 07777)
          .flag("is_dir", S_ISDIR(es.st_mode)).num("mtime", int64_t(es.st_mtim.tv_sec));
    }
    out += line.line();
    if (out.size() >= kChunk) {
      if (!write_all(STDOUT_FILENO, out)) return 1;
      out.clear();
    }
  }
  return write_all(STDOUT_FILENO, out) ? 0 : 1;
}

// ---- delete --------------------------------------------------------------------------------------

int delete_path(const std::string& path) {
  struct stat st {};
  // lstat: deleting a link deletes the link, never what it points to.
  if (::lstat(path.c_str(), &st) != 0) return fail(failure(errno, "cannot delete", path));
  int r = S_ISDIR(st.st_mode) ? ::rmdir(path.c_str()) : ::unlink(path.c_str());
  if (r != 0 && errno == EISDIR) r = ::rmdir(path.c_str());  // it became a directory meanwhile
  if (r != 0) {
    int e = errno;
    if (e == ENOTEMPTY || e == EEXIST) return fail(make_error("not_empty", shown(path) + " is a directory that is not empty"));
    return fail(failure(e, "cannot delete", path));
  }
  status(JsonObject().flag("ok", true));
  return 0;
}

// ---- put -----------------------------------------------------------------------------------------

// `.NAME.rexec-XXXXXX`, cut so it stays one component of at most 255 bytes.
std::string temp_name(std::string_view base) {
  constexpr std::string_view kTag = ".rexec-";
  constexpr size_t kRandom = 6;
  std::string name = "." + std::string(base.substr(0, protocol::kMaxFileComponent - 1 - kTag.size() - kRandom));
  name += kTag;
  unsigned char r[kRandom] = {};
  if (::getrandom(r, sizeof(r), 0) != ssize_t(sizeof(r))) {  // no entropy yet: the clock differs per try
    uint64_t seed = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) * 0x9e3779b97f4a7c15u;
    for (auto& c : r) c = uint8_t(seed >>= 8);
  }
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  for (unsigned char c : r) name += kAlphabet[c % 62];
  return name;
}

// Where an upload waits until it is complete, in the target's directory (so the final rename is
// atomic): an unnamed O_TMPFILE, which vanishes by itself whatever kills us, or where the file
// system has none a named temporary, removed by discard()/the destructor unless committed.
class TempFile {
 public:
  TempFile(int dir, std::string base) : dir_(dir), base_(std::move(base)) {}
  ~TempFile() { discard(); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  int fd() const { return fd_.get(); }

  Status create(const std::string& path, bool use_tmpfile) {
    if (use_tmpfile) {
      fd_.reset(::openat(dir_, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
      if (fd_) return Ok{};
      // EOPNOTSUPP: this file system has no O_TMPFILE; EISDIR/EINVAL: nor has the kernel.
      if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) return failure(errno, "cannot create", path);
    }
    for (int tries = 0; tries < 100; ++tries) {
      std::string name = temp_name(base_);
      fd_.reset(::openat(dir_, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (fd_) {
        name_ = std::move(name);
        return Ok{};
      }
      if (errno != EEXIST) return failure(errno, "cannot create", path);
    }
    return make_error("io_error", "cannot create a temporary file next to " + shown(path));
  }

  // Puts the file at base_: without overwrite only if the name is free (atomically: never
  // replacing a file that appeared meanwhile), with it by rename, which replaces a symbolic link
  // at that name rather than writing through it.
  Status commit(bool overwrite, const std::string& path) {
    if (name_.empty()) {
      if (!overwrite) {
        if (int e = link_unnamed(base_)) return e == EEXIST ? exists(path) : failure(e, "cannot create", path);
        fd_.reset();
        return Ok{};
      }
      // rename() moves names only: the unnamed file gets a temporary one first.
      for (int tries = 0; tries < 100 && name_.empty(); ++tries) {
        std::string name = temp_name(base_);
        int e = link_unnamed(name);
        if (e == 0) name_ = std::move(name);
        else if (e != EEXIST) return failure(e, "cannot create", path);
      }
      if (name_.empty()) return make_error("io_error", "cannot name a temporary file next to " + shown(path));
    }
    if (overwrite) {
      if (::renameat(dir_, name_.c_str(), dir_, base_.c_str()) != 0) return failure(errno, "cannot replace", path);
    } else if (::renameat2(dir_, name_.c_str(), dir_, base_.c_str(), RENAME_NOREPLACE) != 0) {
      int e = errno;
      if (e != EINVAL && e != ENOSYS) return e == EEXIST ? exists(path) : failure(e, "cannot create", path);
      // No RENAME_NOREPLACE here (some network and overlay file systems): link() refuses an
      // existing name just as atomically.
      if (::linkat(dir_, name_.c_str(), dir_, base_.c_str(), 0) != 0)
        return errno == EEXIST ? exists(path) : failure(errno, "cannot create", path);
      ::unlinkat(dir_, name_.c_str(), 0);
    }
    name_.clear();  // it is the target now: nothing to remove
    fd_.reset();
    return Ok{};
  }

  void discard() {
    if (!name_.empty()) ::unlinkat(dir_, name_.c_str(), 0);
    name_.clear();
    fd_.reset();  // an unnamed file is freed with its last descriptor
  }

  static Error exists(const std::string& path) {
    return make_error("exists", shown(path) + " exists (overwrite was not asked for)");
  }

 private:
  // Names the O_TMPFILE; 0 or an errno. Through /proc any owner may; AT_EMPTY_PATH needs
  // CAP_DAC_READ_SEARCH, so it is only the fallback for a container without /proc.
  int link_unnamed(const std::string& name) {
    std::string proc = "/proc/self/fd/" + std::to_string(fd_.get());
    if (::linkat(AT_FDCWD, proc.c_str(), dir_, name.c_str(), AT_SYMLINK_FOLLOW) == 0) return 0;
    int e = errno;
    if (e == ENOENT && ::linkat(fd_.get(), "", dir_, name.c_str(), AT_EMPTY_PATH) == 0) return 0;
    return e;
  }

  int dir_;
  std::string base_;
  Fd fd_;
  std::string name_;  // the named temporary's; empty for an unnamed one, or once committed
};

// SIGHUP (the hub's CLOSE, or the agent's death: PR_SET_PDEATHSIG), SIGTERM and SIGINT are held
// back and read from a signalfd between chunks, so the temporary file goes before the child does.
// A handler would need the file's name in a global. Never unblocked: the process ends soon, and a
// late signal must not turn a finished upload into a death by signal.
class Cancel {
 public:
  Cancel() {
    sigemptyset(&set_);
    for (int s : {SIGHUP, SIGTERM, SIGINT}) sigaddset(&set_, s);
    ::sigprocmask(SIG_BLOCK, &set_, nullptr);
    fd_.reset(::signalfd(-1, &set_, SFD_NONBLOCK | SFD_CLOEXEC));
    ::signal(SIGXFSZ, SIG_IGN);  // over RLIMIT_FSIZE: an EFBIG we report, not a death that leaves the temp
  }
  int fd() const { return fd_.get(); }
  bool pending() const {
    pollfd p{fd_.get(), POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
  }
  // Removes the temporary file and dies of the signal that asked, as an unhandled one would kill.
  [[noreturn]] void die(TempFile& tmp) {
    tmp.discard();
    signalfd_siginfo si{};
    int sig = ::read(fd_.get(), &si, sizeof(si)) == ssize_t(sizeof(si)) ? int(si.ssi_signo) : SIGHUP;
    ::signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    ::raise(sig);  // pending while blocked: delivered by the unblock
    ::sigprocmask(SIG_UNBLOCK, &one, nullptr);
    ::_exit(128 + sig);
  }

 private:
  sigset_t set_{};
  Fd fd_;
};

// True when the agent (our parent) has died or is dying. Reparented: getppid() says so. Still
// dying: the kernel sets PF_EXITING in its flags (/proc/PID/stat, field 9) before it closes its
// descriptors, so an EOF its death caused is always seen with the flag set. Without /proc (or
// with hidepid) only the reparenting and the PR_SET_PDEATHSIG signal can tell, a little later.
bool agent_gone(pid_t parent) {
  if (::getppid() != parent) return true;
  constexpr unsigned long kPfExiting = 0x4;  // include/linux/sched.h
  Fd stat(::open(("/proc/" + std::to_string(parent) + "/stat").c_str(), O_RDONLY | O_CLOEXEC));
  char buf[1024];
  ssize_t n = stat ? ::read(stat.get(), buf, sizeof(buf) - 1) : -1;
  if (n <= 0) return false;
  std::string_view text(buf, size_t(n));
  size_t paren = text.rfind(')');  // the command name may hold spaces and parentheses
  if (paren == std::string_view::npos) return false;
  // After "pid (comm)": state ppid pgrp session tty_nr tpgid flags.
  unsigned long flags = 0;
  if (std::sscanf(std::string(text.substr(paren + 1)).c_str(), " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1) return false;
  return (flags & kPfExiting) != 0;
}

int put(const std::string& path, uint32_t mode, bool overwrite, bool use_tmpfile) {
  Cancel cancel;
  if (cancel.fd() < 0) return fail(failure(errno, "cannot prepare to receive", path));
  size_t slash = path.rfind('/');
  std::string dir_path = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  struct stat st {};
  if (base.empty() || base == ".") {  // "dir/", ".": a directory by its very name
    if (::stat(path.c_str(), &st) != 0) return fail(failure(errno, "cannot write", path));
    return fail(make_error(S_ISDIR(st.st_mode) ? "is_directory" : "bad_path", shown(path) + " names a directory"));
  }
  // O_PATH: a drop box (-wx) can be written to without being readable.
  Fd dir(::open(dir_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return fail(failure(errno, "cannot open the directory of", path));
  if (::fstatat(dir.get(), base.c_str(), &st, 0) == 0 && S_ISDIR(st.st_mode))
    return fail(make_error("is_directory", shown(path) + " is a directory"));  // a link to one too: kept
  if (::fstatat(dir.get(), base.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!overwrite) return fail(TempFile::exists(path));
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) return fail(not_regular(path));
  } else if (errno != ENOENT) {
    return fail(failure(errno, "cannot write", path));
  }

  TempFile tmp(dir.get(), base);
  if (auto s = tmp.create(path, use_tmpfile); !s) return fail(s.error());
  if (::fchmod(tmp.fd(), mode ? mode & 07777 : 0644) != 0) return fail(failure(errno, "cannot set the mode of", path));
  const pid_t parent = ::getppid();
  status(JsonObject().flag("ok", true).flag("ready", true));

  uint64_t size = 0;
  std::vector<char> buf(kChunk);
  for (;;) {
    pollfd p[2] = {{STDIN_FILENO, POLLIN, 0}, {cancel.fd(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return fail(failure(errno, "cannot receive", path));
    }
    if (p[1].revents) cancel.die(tmp);
    if (!p[0].revents) continue;
    ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return fail(failure(errno, "cannot receive", path));
    if (n == 0) break;  // the hub's empty DATA: the upload is complete
    if (!write_all(tmp.fd(), std::string_view(buf.data(), size_t(n)))) return fail(failure(errno, "cannot write", path));
    size += uint64_t(n);
  }
  if (::fsync(tmp.fd()) != 0) return fail(failure(errno, "cannot write", path));
  // A dying agent closes our stdin too: that EOF is not the end of the upload, and a cut-off
  // file must never be put in place.
  if (cancel.pending() || agent_gone(parent)) cancel.die(tmp);
  if (auto s = tmp.commit(overwrite, path); !s) return fail(s.error());
  // The new name on disk too (best effort: an O_PATH descriptor cannot be synced).
  if (Fd sync(::open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); sync) ::fsync(sync.get());
  status(JsonObject().flag("ok", true).num("size", int64_t(size)));
  return 0;
}

}  // namespace

int file_op(const std::string& op, const std::string& path, uint32_t mode, uint32_t flags, const FileOpOptions& options) {
  if (auto problem = path_problem(path)) return fail(*problem);
  if (op == "get") return get(path);
  if (op == "list") return list(path);
  if (op == "delete") return delete_path(path);
  if (op == "put") return put(path, mode, (flags & protocol::kFileOverwrite) != 0, options.use_tmpfile);
  return fail(make_error("bad_request", "unknown file operation \"" + op.substr(0, 32) + "\""));
}

}  // namespace rx::agent
