// Child processes the agent runs for the hub: a login shell (or argv) on a new pseudo-terminal,
// or an exec with separate stdin/stdout/stderr pipes. Each child gets a clean environment (the
// agent's own may hold secrets: nothing is inherited), its own session, default signal
// dispositions, and no file descriptor but 0, 1, 2. A failed exec is reported through a
// close-on-exec pipe as spawn_failed with the reason, not as a mysterious exit 127. Children
// are watched through a pidfd and reaped by pid, never waitpid(-1); a Child that goes out of
// scope hangs up its process group and reaps it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "protocol/error.h"

namespace rx::agent {

// A user to run as (from /etc/passwd, parsed directly: a static binary has no NSS).
struct Account {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home = "/";
  std::string shell = "/bin/sh";
  std::vector<gid_t> groups;  // supplementary, from /etc/group
};

// Looks `name` (or a numeric uid) up in <etc>/passwd and <etc>/group. Errors: unknown_user.
Result<Account> find_account(const std::string& name, const std::string& etc = "/etc");
// The account of the agent's own uid, or a sensible default when /etc/passwd lacks it.
Account current_account(const std::string& etc = "/etc");

struct ExitStatus {
  int32_t code = 0;    // exit status, or 128 + signal number; kExitUnknown when nobody can tell
  std::string signal;  // "KILL", ... when killed by a signal
};
// The exit of a process this agent did not start and whose status the kernel does not keep (an
// adopted shell, see Child, on Linux < 6.15): it ended, with an unknown status.
inline constexpr int32_t kExitUnknown = -1;

// Signal names of the agent link ("INT", "TERM", ...) to numbers; nullopt for unknown names.
std::optional<int> signal_number(const std::string& name);
std::string signal_name(int number);

// A process the agent runs. Usually its own child; after an upgrade through systemd's fd store
// (handover.h) an *adopted* one: started by the predecessor, re-parented to systemd when that
// exited, known to us by the pidfd that came along. waitpid() cannot reap an adopted process (its
// new parent does); its exit shows on the pidfd, and the status comes from PIDFD_GET_INFO
// (PIDFD_INFO_EXIT, Linux >= 6.15) once the new parent has reaped it.
class Child {
 public:
  Child(pid_t pid, int pidfd) : pid_(pid), pidfd_(pidfd) {}
  ~Child();  // hangs the process group up and reaps, unless released
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_; }  // readable when the child has exited
  // Reaps the child if it has exited (an adopted one: reads its status once its parent reaped it).
  std::optional<ExitStatus> try_reap();
  bool reaped() const { return status_.has_value(); }
  bool adopted() const { return adopted_; }  // known after a try_reap()
  bool exited() const;                        // the pidfd says so (reaped or not)
  // Sends a signal to the child's process group.
  void signal_group(int sig);
  // A successor agent owns the process now: the destructor leaves it alone.
  void release() { released_ = true; }
  // The status is already known (a predecessor reaped it): nothing to wait for or signal.
  void mark_exited(ExitStatus status) { status_ = std::move(status); }

 private:
  pid_t pid_;
  int pidfd_;
  std::optional<ExitStatus> status_;
  bool adopted_ = false;
  bool released_ = false;
};

struct SpawnOptions {
  std::vector<std::string> argv;  // empty on a pty: the account's login shell
  std::map<std::string, std::string> env;  // added to the clean base environment
  uint16_t cols = 80;
  uint16_t rows = 24;
  std::optional<Account> account;  // run as this user (the agent must be root); else as the agent
  std::string shell;               // overrides the account's shell
  // Exec only: run this function in the forked child instead of execve(argv), then _exit with
  // what it returns (a file channel, file_op.h). The agent is single-threaded, so the child may
  // run ordinary code. Everything else is as for an exec: the pipes, session, signals, fds, the
  // account, its home as the current directory, the clean environment. Such a child also gets
  // SIGHUP when the agent dies: nobody is left to want its result.
  std::function<int()> run;
};

// Result of a non-blocking read.
struct ReadResult {
  size_t bytes = 0;
  bool eof = false;  // pty: EIO (the slave side is closed); pipe: 0
};
ReadResult read_some(int fd, std::span<uint8_t> buf);
// Writes what it can without blocking; -1 on a broken pipe / closed pty.
ssize_t write_some(int fd, std::span<const uint8_t> bytes);

class PtyProcess {
 public:
  static Result<std::unique_ptr<PtyProcess>> spawn(const SpawnOptions& options);
  // A terminal a predecessor agent started (handover.h); master may be -1 if it did not come along.
  static std::unique_ptr<PtyProcess> adopt(int master, std::unique_ptr<Child> child);
  ~PtyProcess();
  int master() const { return master_; }  // non-blocking, close-on-exec
  Child& child() { return *child_; }
  void resize(uint16_t cols, uint16_t rows);
  // INT, QUIT, TSTP and WINCH go to the terminal's foreground job (as the keyboard would);
  // others to the session. Errors: bad_signal.
  Status signal(const std::string& name);

 private:
  PtyProcess(int master, std::unique_ptr<Child> child) : master_(master), child_(std::move(child)) {}
  int master_;
  std::unique_ptr<Child> child_;
};

class ExecProcess {
 public:
  static Result<std::unique_ptr<ExecProcess>> spawn(const SpawnOptions& options);
  ~ExecProcess();
  int stdin_fd() const { return in_; }  // -1 once closed
  int stdout_fd() const { return out_; }
  int stderr_fd() const { return err_; }
  void close_stdin();
  void close_stdout();
  void close_stderr();
  Child& child() { return *child_; }
  Status signal(const std::string& name);

 private:
  ExecProcess(int in, int out, int err, std::unique_ptr<Child> child)
      : in_(in), out_(out), err_(err), child_(std::move(child)) {}
  int in_, out_, err_;
  std::unique_ptr<Child> child_;
};

}  // namespace rx::agent
