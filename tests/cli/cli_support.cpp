#include "tests/cli/cli_support.h"

#include <fcntl.h>
#include <stdlib.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

namespace rx::test {

namespace {

using Clock = std::chrono::steady_clock;

pid_t spawn(const std::vector<std::string>& args, const std::map<std::string, std::string>& env, int in, int out, int err) {
  std::vector<std::string> argv{binary("cli/rexec")};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::string> envs;
  for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
  std::vector<char*> a, e;
  for (auto& s : argv) a.push_back(s.data());
  for (auto& s : envs) e.push_back(s.data());
  a.push_back(nullptr);
  e.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execve(a[0], a.data(), e.data());
    ::_exit(127);
  }
  return pid;
}

int exit_status(int raw) { return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw); }

}  // namespace

Cli::Cli(const HubFixture& hub, std::string token) : Cli("http://127.0.0.1:" + std::to_string(hub.port()), std::move(token)) {}

Cli::Cli(std::string hub_url, std::string token) {
  env_ = child_env();
  env_["HOME"] = home_.path();
  env_["REXEC_HUB"] = std::move(hub_url);
  if (!token.empty()) env_["REXEC_TOKEN"] = std::move(token);
}

CliResult Cli::run_on_tty(const std::vector<std::string>& args, std::chrono::milliseconds timeout) const {
  CliResult r;
  int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0 || ::grantpt(master) || ::unlockpt(master)) return r;
  int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  pid_t pid = spawn(args, env_, null, null, slave);
  ::close(slave);
  ::close(null);
  // Read until the child has exited and the terminal has nothing more (EIO once no one holds it).
  auto deadline = Clock::now() + timeout;
  int raw = 0;
  bool exited = false;
  while (Clock::now() < deadline) {
    pollfd p{master, POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) {
      char buf[4096];
      ssize_t n = ::read(master, buf, sizeof buf);
      if (n > 0) {
        r.err.append(buf, size_t(n));
        continue;
      }
      if (exited) break;
    } else if (exited) {
      break;
    }
    if (!exited && ::waitpid(pid, &raw, WNOHANG) == pid) exited = true;
  }
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &raw, 0);
  } else {
    r.status = exit_status(raw);
  }
  ::close(master);
  return r;
}

CliResult Cli::run(const std::vector<std::string>& args, const std::string& input, std::chrono::milliseconds timeout) const {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC)) return {};
  pid_t pid = spawn(args, env_, in[0], out[1], err[1]);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  (void)!::write(in[1], input.data(), input.size());
  ::close(in[1]);
  CliResult r;
  auto deadline = Clock::now() + timeout;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0 && Clock::now() < deadline) {
    if (::poll(fds, 2, 100) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[65536];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? r.out : r.err).append(buf, size_t(n));
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  int raw = 0;
  if (open_fds > 0) {  // timed out
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &raw, 0);
    return r;
  }
  ::waitpid(pid, &raw, 0);
  r.status = exit_status(raw);
  return r;
}

CliChild::CliChild(const Cli& cli, const std::vector<std::string>& args) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC)) return;
  char tmpl[] = "/tmp/rexec-cli-err-XXXXXX";
  int err = ::mkstemp(tmpl);
  err_path_ = tmpl;
  pid_ = spawn(args, cli.env_, in[0], out[1], err);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err);
  in_ = in[1];
  out_ = out[0];
}

CliChild::~CliChild() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (in_ >= 0) ::close(in_);
  if (out_ >= 0) ::close(out_);
  if (!err_path_.empty()) ::unlink(err_path_.c_str());
}

std::optional<std::string> CliChild::read_line(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (auto nl = buf_.find('\n'); nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0 || out_ < 0) return std::nullopt;
    pollfd p{out_, POLLIN, 0};
    if (::poll(&p, 1, int(left)) <= 0) continue;
    char buf[65536];
    ssize_t n = ::read(out_, buf, sizeof buf);
    if (n <= 0) {
      ::close(out_);
      out_ = -1;
      return std::nullopt;
    }
    buf_.append(buf, size_t(n));
  }
}

bool CliChild::write(const std::string& bytes) {
  return in_ >= 0 && ::write(in_, bytes.data(), bytes.size()) == ssize_t(bytes.size());
}

void CliChild::close_stdin() {
  if (in_ >= 0) ::close(in_);
  in_ = -1;
}

std::optional<int> CliChild::wait(std::chrono::milliseconds timeout, std::string* rest) {
  auto deadline = Clock::now() + timeout;
  while (out_ >= 0 && Clock::now() < deadline) {
    pollfd p{out_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[65536];
    ssize_t n = ::read(out_, buf, sizeof buf);
    if (n <= 0) {
      ::close(out_);
      out_ = -1;
    } else {
      buf_.append(buf, size_t(n));
    }
  }
  while (!status_ && Clock::now() < deadline) {
    int raw = 0;
    if (::waitpid(pid_, &raw, WNOHANG) == pid_) status_ = exit_status(raw);
    else ::usleep(20000);
  }
  if (rest) *rest = buf_;
  return status_;
}

std::string CliChild::err() const { return read_file(err_path_); }

}  // namespace rx::test
