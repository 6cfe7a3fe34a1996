#include "agent/process.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace rx::agent {
namespace {

struct SignalEntry {
  const char* name;
  int number;
};
constexpr SignalEntry kSignals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL}, {"USR1", SIGUSR1},
    {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"CONT", SIGCONT},
    {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"WINCH", SIGWINCH}, {"SEGV", SIGSEGV}, {"ABRT", SIGABRT},
    {"BUS", SIGBUS},   {"FPE", SIGFPE},   {"ILL", SIGILL},   {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},
    {"XCPU", SIGXCPU}, {"SYS", SIGSYS},   {"TRAP", SIGTRAP},
};

std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> out;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, sep)) out.push_back(field);
  if (!line.empty() && line.back() == sep) out.emplace_back();
  return out;
}

std::vector<gid_t> supplementary_groups(const std::string& user, gid_t primary, const std::string& etc) {
  std::vector<gid_t> groups{primary};
  std::ifstream in(etc + "/group");
  for (std::string line; std::getline(in, line);) {
    auto f = split(line, ':');  // name:x:gid:member,member
    if (f.size() < 4) continue;
    for (const auto& member : split(f[3], ','))
      if (member == user) groups.push_back(gid_t(std::strtoul(f[2].c_str(), nullptr, 10)));
  }
  return groups;
}

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

int pidfd_open(pid_t pid) { return int(::syscall(SYS_pidfd_open, pid, 0)); }

// The environment a child starts with: nothing from the agent, only what a login needs.
std::vector<std::string> child_env(const Account& a, const std::string& shell, const SpawnOptions& o, bool pty) {
  std::map<std::string, std::string> env{
      {"HOME", a.home}, {"USER", a.name}, {"LOGNAME", a.name}, {"SHELL", shell},
      {"PATH", a.uid == 0 ? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                          : "/usr/local/bin:/usr/bin:/bin"},
      {"LANG", "C.UTF-8"}};
  if (pty) env["TERM"] = "xterm-256color";
  for (const auto& [k, v] : o.env) env[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

struct Prepared {
  Account account;
  std::vector<std::string> argv;
  std::string path;
  std::vector<std::string> env;
};

Prepared prepare(const SpawnOptions& o, bool pty) {
  Prepared p;
  p.account = o.account ? *o.account : current_account();
  std::string shell = !o.shell.empty() ? o.shell : p.account.shell;
  if (shell.empty()) shell = "/bin/sh";
  if (o.argv.empty()) {
    // A login shell: argv[0] starts with '-' so bash/sh read the profile.
    p.path = shell;
    p.argv = {"-" + shell.substr(shell.rfind('/') + 1)};
  } else {
    p.argv = o.argv;
    p.path = o.argv[0];
  }
  p.env = child_env(p.account, shell, o, pty);
  // A bare program name is looked up in the child's PATH, as a shell would (execvp's search,
  // but with the PATH the child gets, not the agent's).
  if (!p.path.empty() && p.path.find('/') == std::string::npos) {
    for (const auto& kv : p.env) {
      if (!kv.starts_with("PATH=")) continue;
      std::string_view dirs(kv);
      dirs.remove_prefix(5);
      while (!dirs.empty()) {
        auto colon = dirs.find(':');
        std::string candidate = std::string(dirs.substr(0, colon)) + "/" + p.path;
        if (::access(candidate.c_str(), X_OK) == 0) {
          p.path = candidate;
          break;
        }
        if (colon == std::string_view::npos) break;
        dirs.remove_prefix(colon + 1);
      }
    }
  }
  return p;
}

}  // namespace

Result<Account> find_account(const std::string& name, const std::string& etc) {
  std::ifstream in(etc + "/passwd");
  if (!in) return make_error("unknown_user", "cannot read " + etc + "/passwd");
  for (std::string line; std::getline(in, line);) {
    auto f = split(line, ':');  // name:x:uid:gid:gecos:home:shell
    if (f.size() < 7) continue;
    if (f[0] != name && f[2] != name) continue;
    Account a;
    a.name = f[0];
    a.uid = uid_t(std::strtoul(f[2].c_str(), nullptr, 10));
    a.gid = gid_t(std::strtoul(f[3].c_str(), nullptr, 10));
    a.home = f[5].empty() ? "/" : f[5];
    a.shell = f[6].empty() ? "/bin/sh" : f[6];
    a.groups = supplementary_groups(a.name, a.gid, etc);
    return a;
  }
  return make_error("unknown_user", "no user \"" + name + "\" in " + etc + "/passwd");
}

Account current_account(const std::string& etc) {
  auto a = find_account(std::to_string(::getuid()), etc);
  if (a) return *a;
  Account fallback;
  fallback.name = ::getuid() == 0 ? "root" : std::to_string(::getuid());
  fallback.uid = ::getuid();
  fallback.gid = ::getgid();
  fallback.home = ::getuid() == 0 ? "/root" : "/";
  fallback.groups = {fallback.gid};
  return fallback;
}

std::optional<int> signal_number(const std::string& name) {
  for (const auto& s : kSignals)
    if (name == s.name) return s.number;
  return std::nullopt;
}

std::string signal_name(int number) {
  for (const auto& s : kSignals)
    if (number == s.number) return s.name;
  return "SIG" + std::to_string(number);
}

Child::~Child() {
  if (!released_ && !try_reap()) {
    // Hang up the whole session, then make sure; reap so no zombie is left behind.
    auto hang_up = [this](int sig) {
      signal_group(sig);
      if (!adopted_) ::kill(pid_, sig);
    };
    hang_up(SIGHUP);
    for (int i = 0; i < 50 && !try_reap() && !(adopted_ && exited()); ++i) ::usleep(2000);
    if (!status_ && !(adopted_ && exited())) {
      hang_up(SIGKILL);
      int st = 0;
      if (!adopted_) ::waitpid(pid_, &st, 0);
    }
  }
  if (pidfd_ >= 0) ::close(pidfd_);
}

namespace {

ExitStatus from_wait_status(int st) {
  ExitStatus e;
  if (WIFEXITED(st)) {
    e.code = WEXITSTATUS(st);
  } else if (WIFSIGNALED(st)) {
    e.code = 128 + WTERMSIG(st);
    e.signal = signal_name(WTERMSIG(st));
  }
  return e;
}

// struct pidfd_info of <linux/pidfd.h> as of Linux 6.15 (Debian 12's headers predate it).
struct PidfdInfo {
  uint64_t mask, cgroupid;
  uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
  int32_t exit_code;  // a wait status, set once the process was reaped
  uint32_t coredump_mask, spare;
};
constexpr uint64_t kPidfdInfoExit = 1u << 3;
constexpr unsigned long kPidfdGetInfo = _IOWR(0xFF, 11, PidfdInfo);

}  // namespace

std::optional<ExitStatus> Child::try_reap() {
  if (status_) return status_;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = from_wait_status(st);
    return status_;
  }
  if (r < 0 && errno == ECHILD && pidfd_ >= 0) {
    adopted_ = true;  // not ours to reap: see the class comment
    PidfdInfo info{};
    info.mask = kPidfdInfoExit;
    if (::ioctl(pidfd_, kPidfdGetInfo, &info) == 0 && (info.mask & kPidfdInfoExit)) status_ = from_wait_status(info.exit_code);
  }
  return status_;
}

bool Child::exited() const {
  if (pidfd_ < 0) return true;  // an adopted process whose pidfd did not come along: gone
  pollfd p{pidfd_, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP));
}

void Child::signal_group(int sig) {
  if (status_) return;
  // An adopted leader that has exited may have been reaped: its pid and group id could be
  // anyone's by now. (Our own children stay zombies, holding both, until we reap them.)
  if (adopted_ && exited()) return;
  if (::kill(-pid_, sig) != 0) ::kill(pid_, sig);
}

ReadResult read_some(int fd, std::span<uint8_t> buf) {
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n > 0) return {size_t(n), false};
    if (n == 0) return {0, true};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {0, false};
    return {0, true};  // EIO on a pty master: the slave side is gone (the shell exited)
  }
}

ssize_t write_some(int fd, std::span<const uint8_t> bytes) {
  for (;;) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return -1;
  }
}

namespace {

// In a forked child whose work is a function (SpawnOptions::run), in place of execve: never returns.
[[noreturn]] void run_in_child(const std::function<int()>& run, char** envp, pid_t agent) {
  ::close(3);       // the status pipe: its EOF tells the parent the child started
  environ = envp;   // the clean environment, as execve would have given it
  // Dies with the agent (a half-done upload must not be committed for a caller that is gone).
  // Set after setuid(), which clears it; the getppid() check covers an agent already gone.
  ::prctl(PR_SET_PDEATHSIG, SIGHUP);
  if (::getppid() != agent) ::_exit(128 + SIGHUP);
  int code = 1;
  try {
    code = run();
  } catch (...) {  // never unwind into the agent's own frames, which this copy of it still has
  }
  ::_exit(code);
}

// Forks; in the child runs `setup(status_fd)` and execs (or runs `run`). Returns the child and
// reports an exec failure (errno written to the status pipe) as spawn_failed.
template <typename Setup>
Result<std::unique_ptr<Child>> spawn_child(const Prepared& p, bool drop, const std::function<int()>& run, Setup setup) {
  int status[2];
  if (::pipe2(status, O_CLOEXEC) != 0) return make_error("spawn_failed", std::string("pipe: ") + std::strerror(errno));
  std::vector<char*> argv, envp;
  for (const auto& a : p.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : p.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t agent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(status[0]);
    ::close(status[1]);
    return make_error("spawn_failed", std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::close(status[0]);
    setup();
    // Keep the status pipe at fd 3 (close-on-exec) across close_range(3, ...)... by moving it
    // there and closing everything above it instead.
    ::dup3(status[1], 3, O_CLOEXEC);
    ::syscall(SYS_close_range, 4, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s = 1; s < NSIG; ++s) ::signal(s, SIG_DFL);  // an ignored SIGPIPE/SIGINT would survive exec
    if (drop && (::setgroups(p.account.groups.size(), p.account.groups.data()) != 0 || ::setgid(p.account.gid) != 0 ||
                 ::setuid(p.account.uid) != 0)) {
      int e = errno;
      (void)!::write(3, &e, sizeof(e));
      ::_exit(126);
    }
    if (::chdir(p.account.home.c_str()) != 0) (void)!::chdir("/");
    if (run) run_in_child(run, envp.data(), agent);
    ::execve(p.path.c_str(), argv.data(), envp.data());
    int e = errno;
    (void)!::write(3, &e, sizeof(e));
    ::_exit(127);
  }
  ::close(status[1]);
  int err = 0;
  ssize_t n;
  do n = ::read(status[0], &err, sizeof(err));
  while (n < 0 && errno == EINTR);
  ::close(status[0]);
  auto child = std::make_unique<Child>(pid, pidfd_open(pid));
  if (n == sizeof(err)) {
    child->try_reap();
    for (int i = 0; i < 100 && !child->reaped(); ++i) {
      ::usleep(1000);
      child->try_reap();
    }
    return make_error("spawn_failed", "cannot run " + p.path + ": " + std::strerror(err));
  }
  return child;
}

}  // namespace

Result<std::unique_ptr<PtyProcess>> PtyProcess::spawn(const SpawnOptions& o) {
  Prepared p = prepare(o, true);
  int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) {
    if (master >= 0) ::close(master);
    return make_error("spawn_failed", std::string("cannot open a pseudo-terminal: ") + std::strerror(errno));
  }
  char name[128];
  if (::ptsname_r(master, name, sizeof(name)) != 0) {
    ::close(master);
    return make_error("spawn_failed", "ptsname failed");
  }
  winsize ws{o.rows, o.cols, 0, 0};
  ::ioctl(master, TIOCSWINSZ, &ws);
  std::string slave_path = name;
  bool drop = o.account && ::getuid() == 0 && o.account->uid != 0;
  if (o.account && ::getuid() == 0 && o.account->uid != 0) ::chown(slave_path.c_str(), o.account->uid, -1);
  auto child = spawn_child(p, drop, nullptr, [&] {
    ::setsid();  // new session: the pty becomes its controlling terminal
    int slave = ::open(slave_path.c_str(), O_RDWR);
    if (slave < 0) ::_exit(125);
    ::ioctl(slave, TIOCSCTTY, 0);
    ::dup2(slave, 0);
    ::dup2(slave, 1);
    ::dup2(slave, 2);
    if (slave > 2) ::close(slave);
  });
  if (!child) {
    ::close(master);
    return child.error();
  }
  set_nonblocking(master);
  return std::unique_ptr<PtyProcess>(new PtyProcess(master, std::move(child).value()));
}

std::unique_ptr<PtyProcess> PtyProcess::adopt(int master, std::unique_ptr<Child> child) {
  return std::unique_ptr<PtyProcess>(new PtyProcess(master, std::move(child)));
}

PtyProcess::~PtyProcess() {
  child_.reset();  // hang up and reap before the master closes
  if (master_ >= 0) ::close(master_);
}

void PtyProcess::resize(uint16_t cols, uint16_t rows) {
  winsize ws{rows, cols, 0, 0};
  ::ioctl(master_, TIOCSWINSZ, &ws);  // the kernel sends SIGWINCH to the foreground job
}

Status PtyProcess::signal(const std::string& name) {
  auto sig = signal_number(name);
  if (!sig) return make_error("bad_signal", "unsupported signal " + name);
  pid_t fg = ::tcgetpgrp(master_);
  bool keyboard = *sig == SIGINT || *sig == SIGQUIT || *sig == SIGTSTP || *sig == SIGWINCH;
  if (keyboard && fg > 0) ::kill(-fg, *sig);
  else child_->signal_group(*sig);
  return Ok{};
}

Result<std::unique_ptr<ExecProcess>> ExecProcess::spawn(const SpawnOptions& o) {
  if (o.argv.empty() && !o.run) return make_error("spawn_failed", "exec needs a program");
  Prepared p = prepare(o, false);
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return make_error("spawn_failed", "pipe failed");
  if (::pipe2(out, O_CLOEXEC) != 0) return make_error("spawn_failed", "pipe failed");
  if (::pipe2(err, O_CLOEXEC) != 0) return make_error("spawn_failed", "pipe failed");
  bool drop = o.account && ::getuid() == 0 && o.account->uid != 0;
  auto child = spawn_child(p, drop, o.run, [&] {
    ::setsid();  // its own process group, so a timeout's KILL takes its children too
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
  });
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (!child) {
    ::close(in[1]);
    ::close(out[0]);
    ::close(err[0]);
    return child.error();
  }
  for (int fd : {in[1], out[0], err[0]}) set_nonblocking(fd);
  return std::unique_ptr<ExecProcess>(new ExecProcess(in[1], out[0], err[0], std::move(child).value()));
}

ExecProcess::~ExecProcess() {
  child_.reset();
  close_stdin();
  close_stdout();
  close_stderr();
}

void ExecProcess::close_stdin() {
  if (in_ >= 0) ::close(in_);
  in_ = -1;
}
void ExecProcess::close_stdout() {
  if (out_ >= 0) ::close(out_);
  out_ = -1;
}
void ExecProcess::close_stderr() {
  if (err_ >= 0) ::close(err_);
  err_ = -1;
}

Status ExecProcess::signal(const std::string& name) {
  auto sig = signal_number(name);
  if (!sig) return make_error("bad_signal", "unsupported signal " + name);
  child_->signal_group(*sig);
  return Ok{};
}

}  // namespace rx::agent
