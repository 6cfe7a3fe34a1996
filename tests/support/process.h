// Child processes for integration tests: real rexec-hub and rexec-agent binaries, started with
// an explicit environment, their stderr captured to a log file the test can search, stopped by
// signal (SIGKILL included: crash tests). Reaped by pid, never waitpid(-1).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rx::test {

class Process {
 public:
  Process() = default;
  // Starts argv[0] (a path) with exactly `env`; stdout and stderr go to `log_path`; stdin from
  // `stdin_text` when given (secrets are passed this way, never in argv).
  Process(std::vector<std::string> argv, std::map<std::string, std::string> env, std::string log_path,
          std::optional<std::string> stdin_text = std::nullopt);
  ~Process();
  Process(Process&& o) noexcept;
  Process& operator=(Process&& o) noexcept;

  pid_t pid() const { return pid_; }
  bool running();
  void signal(int sig);
  // Waits for exit; the exit status (as from waitpid) or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  void kill_and_wait();  // SIGKILL + reap
  std::string log() const;
  // Waits until the log contains `needle`; returns the log line holding it.
  std::optional<std::string> wait_for_log(const std::string& needle, std::chrono::milliseconds timeout) const;
  const std::string& log_path() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  std::optional<int> status_;
};

// A temporary directory removed with everything in it at destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "rexec-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The environment a test starts hub and agent processes with: a PATH, plus the sanitizer and
// lws-debug settings of the test's own environment, so a sanitizer build's children report too.
std::map<std::string, std::string> child_env();

// Resident memory of a process in KiB (VmRSS of /proc/PID/status); -1 when it is gone.
long rss_kib(pid_t pid);
// CPU seconds (user + system) a process has used so far (/proc/PID/stat fields 14 and 15; 0 if gone).
double cpu_seconds(pid_t pid);
// How many open descriptors of any process here are of files in `dir`: the agent writes an
// upload to an unnamed O_TMPFILE there (no name to see in the directory), which /proc shows as
// "DIR/#INODE (deleted)". 0 is what "nothing is left behind" means for an upload under way.
size_t open_files_in(const std::string& dir);

std::string read_file(const std::string& path);
// The directory of the built binaries (REXEC_BINARY_DIR) joined with `rel`.
std::string binary(const std::string& rel);
// Polls `pred` every 20 ms until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

}  // namespace rx::test
