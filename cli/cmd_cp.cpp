// cp: one file to or from a terminal's machine, through its agent (docs/files.md).
//   rexec cp ./model.bin t_abc:models/model.bin    # upload (PUT .../files); -f overwrites
//   rexec cp t_abc:/var/log/syslog .               # download (GET .../files) into a dir, a file or - (stdout)
// Both directions stream: the file is never held whole, here or on the hub. A download goes to a
// temp file beside its target and is renamed into place only when complete, so an error or a
// Ctrl-C leaves nothing half-written; an upload cut short leaves nothing on the machine either
// (the agent writes a temp file and renames it, and removes it when the hub cancels).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "cli/failure.h"
#include "cli/interrupt.h"
#include "cli/output.h"
#include "cli/parse.h"
#include "cli/progress.h"
#include "cli/targets.h"

namespace rx::cli {

namespace {

struct Remote {
  std::string terminal;  // id or name
  std::string path;      // as typed: relative to the account's home, or absolute
};

// ID:PATH as scp reads it: a colon with something before it and no '/' there (./a:b is local).
std::optional<Remote> remote_of(const std::string& arg) {
  auto colon = arg.find(':');
  if (colon == std::string::npos || colon == 0 || arg.find('/') < colon) return std::nullopt;
  return Remote{arg.substr(0, colon), arg.substr(colon + 1)};
}

std::string base_name(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string dir_name(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// libcurl's escaping (every byte but the unreserved ones as %XX), so a name with spaces, '&',
// '#', '+' or any UTF-8 reaches the hub as typed.
std::string percent_encode(const std::string& s) {
  std::unique_ptr<char, decltype(&curl_free)> escaped(curl_easy_escape(nullptr, s.data(), int(s.size())), &curl_free);
  if (!escaped) throw Failure("out of memory encoding the path");
  return escaped.get();
}

std::string files_url(const std::string& terminal_id, const std::string& path) {
  return "/api/v1/terminals/" + terminal_id + "/files?path=" + percent_encode(path);
}

class LocalFile {
 public:
  LocalFile(int fd, bool owned) : fd_(fd), owned_(owned) {}
  ~LocalFile() {
    if (owned_ && fd_ >= 0) ::close(fd_);
  }
  LocalFile(const LocalFile&) = delete;
  LocalFile& operator=(const LocalFile&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
  bool owned_;
};

// A download until it is complete: made beside its target (the same file system, so the rename is
// atomic) and removed by the destructor unless commit() renamed it into place.
class PartFile {
 public:
  PartFile(const std::string& target, mode_t mode) : target_(target) {
    temp_ = dir_name(target) + "/." + base_name(target) + ".rexec-part-XXXXXX";
    fd_ = ::mkostemp(temp_.data(), O_CLOEXEC);
    if (fd_ < 0) throw Failure("cannot write " + target + ": " + std::strerror(errno));
    // mkstemp makes 0600; the file gets what any new file would (or --mode).
    ::fchmod(fd_, mode);
  }
  ~PartFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_.c_str());
  }
  PartFile(const PartFile&) = delete;
  PartFile& operator=(const PartFile&) = delete;
  int fd() const { return fd_; }

  void commit() {
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) throw Failure("cannot write " + target_ + ": " + std::strerror(errno));
    if (::rename(temp_.c_str(), target_.c_str()) != 0) throw Failure("cannot write " + target_ + ": " + std::strerror(errno));
    committed_ = true;
  }

 private:
  std::string target_, temp_;
  int fd_ = -1;
  bool committed_ = false;
};

// What a file's own permission would be if made here now: 0666 less the umask.
mode_t default_file_mode() {
  mode_t mask = ::umask(0);
  ::umask(mask);
  return 0666 & ~mask;
}

// The hub's refusal as the user meets it: in the hub's words, which name the file (the agent's
// do; where they do not, ID:PATH goes first), and what to do about the one refusal a flag of
// ours answers.
[[noreturn]] void refused(const HubError& e, const Remote& remote, const std::string& path) {
  if (e.http_status() == 0 || e.http_status() == 401) throw;  // about the hub, not the file
  std::string message = e.what();
  if (message.find(path) == std::string::npos) message = remote.terminal + ":" + path + ": " + message;
  if (e.code() == "exists") message += "; rexec cp -f overwrites it";
  throw HubError(message, e.http_status(), e.code());
}

struct Options {
  std::string source, destination, mode;
  bool force = false;
};

void upload(Context& ctx, const std::string& local, const Remote& remote, const Options& o) {
  bool from_stdin = local == "-";
  int fd = from_stdin ? STDIN_FILENO : ::open(local.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Failure("cannot read " + local + ": " + std::strerror(errno));
  LocalFile file(fd, !from_stdin);
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Failure("cannot read " + local + ": " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw Failure(local + " is a directory: cp copies one file (tar it first)");
  // A pipe or a FIFO has no size to announce: the body goes chunked, to its end.
  std::optional<uint64_t> size;
  if (S_ISREG(st.st_mode)) size = uint64_t(st.st_size);

  std::string path = remote.path;
  if (path.empty() || path.back() == '/') {  // into a directory: under the local name
    if (from_stdin) throw Failure("name the remote file: rexec cp - " + remote.terminal + ":DIR/NAME");
    path += base_name(local);
  }
  std::optional<unsigned> mode;
  if (!o.mode.empty()) mode = parse_mode(o.mode);
  else if (!from_stdin) mode = unsigned(st.st_mode & 0777);

  auto terminal = find_terminal(ctx.hub(), remote.terminal);
  std::string url = files_url(field(terminal, "id"), path);
  if (mode) {
    char m[8];
    std::snprintf(m, sizeof m, "%04o", *mode);
    url += std::string("&mode=") + m;
  }
  if (o.force) url += "&overwrite=1";

  std::string where = remote.terminal + ":" + path;
  InterruptGuard guard;
  ProgressBar bar(where);
  std::optional<nlohmann::json> answer;
  try {
    answer = ctx.hub().put_stream(url, fd, size, local, [&](uint64_t done, uint64_t total) {
      bar.update(done, total);
      return !guard.raised();
    });
  } catch (const HubError& e) {
    refused(e, remote, path);
  }
  if (!answer) throw Failure("interrupted: the upload was cancelled and " + where + " left as it was", 130);
  uint64_t sent = answer->value("size", uint64_t(0));
  bar.finish(sent, size.value_or(sent));
}

void download(Context& ctx, const Remote& remote, const std::string& local, const Options& o) {
  if (remote.path.empty()) throw Failure("name the remote file: rexec cp " + remote.terminal + ":PATH LOCAL");
  if (local.empty()) throw Failure("name the local file, a directory, or - for stdout");
  bool to_stdout = local == "-";
  std::string target = local;
  struct stat st {};
  if (!to_stdout && ((::stat(local.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) || local.back() == '/')) {
    std::string name = base_name(remote.path);
    if (name.empty() || name == "/" || name == ".") throw Failure("name the local file: " + remote.path + " has no name to keep");
    target = local + (local.back() == '/' ? "" : "/") + name;
  }
  mode_t mode = o.mode.empty() ? default_file_mode() : mode_t(parse_mode(o.mode));

  auto terminal = find_terminal(ctx.hub(), remote.terminal);
  std::string url = files_url(field(terminal, "id"), remote.path);
  std::string where = remote.terminal + ":" + remote.path;
  // Made before the request: a directory we cannot write to fails here, before any byte moves.
  std::optional<PartFile> part;
  if (!to_stdout) part.emplace(target, mode);
  int fd = to_stdout ? STDOUT_FILENO : part->fd();

  InterruptGuard guard;
  // The file itself on the terminal: a bar redrawn in the middle of it would garble both.
  ProgressBar bar(where, stderr, !(to_stdout && ::isatty(STDOUT_FILENO)));
  int write_errno = 0;
  uint64_t received = 0, expected = 0;
  auto sink = [&](const char* data, size_t n) {
    while (n > 0) {
      ssize_t w = ::write(fd, data, n);
      if (w < 0) {
        if (errno == EINTR && !guard.raised()) continue;
        if (errno != EINTR) write_errno = errno;
        return false;
      }
      data += w;
      n -= size_t(w);
      received += uint64_t(w);
    }
    return true;
  };
  bool complete = false;
  try {
    complete = ctx.hub().get_stream(url, sink, [&](uint64_t done, uint64_t total) {
      expected = total;
      bar.update(done, total);
      return !guard.raised();
    });
  } catch (const HubError& e) {
    refused(e, remote, remote.path);
  }
  if (write_errno) throw Failure("cannot write " + (to_stdout ? std::string("stdout") : target) + ": " + std::strerror(write_errno));
  if (!complete) throw Failure(to_stdout ? "interrupted: stdout has only part of the file" : "interrupted: " + target + " was not written", 130);
  if (part) part->commit();
  bar.finish(received, expected ? expected : received);
}

}  // namespace

void add_cp_command(CLI::App& app, Context& ctx) {
  auto* cp = app.add_subcommand("cp", "Copy a file to or from a terminal's machine: cp LOCAL ID:PATH, cp ID:PATH LOCAL");
  auto o = std::make_shared<Options>();
  cp->add_option("source", o->source, "LOCAL file (- for stdin) or ID:PATH (a terminal id or name; PATH relative to its user's home)")
      ->required();
  cp->add_option("destination", o->destination, "ID:PATH (ending in /: keep the local name) or LOCAL file, directory or - (stdout)")
      ->required();
  cp->add_flag("-f,--force", o->force, "Upload over an existing remote file (a download replaces LOCAL, as cp does)");
  cp->add_option("--mode", o->mode, "Permission bits of the file written, octal (default: the local file's on upload, 0666 less the umask on download)");
  cp->footer(
      "A progress bar is drawn on stderr when it is a terminal. A download goes to a temp file beside\n"
      "LOCAL and is renamed into place when complete: a failure leaves nothing behind.");
  cp->callback([&ctx, o] {
    auto from = remote_of(o->source), to = remote_of(o->destination);
    if (from.has_value() == to.has_value())
      throw Failure("cp copies between here and a terminal: one side LOCAL, the other ID:PATH (rexec cp ./f t_abc:f)");
    if (to) upload(ctx, o->source, *to, *o);
    else download(ctx, *from, o->destination, *o);
  });
}

}  // namespace rx::cli
