// Running the real rexec binary from tests: its own HOME (so its own config file), the hub and
// token in REXEC_HUB / REXEC_TOKEN unless a test logs in, stdout and stderr kept apart.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/hub_fixture.h"
#include "tests/support/process.h"

namespace rx::test {

struct CliResult {
  int status = -1;  // exit status; -1 when it did not finish in time (it was killed)
  std::string out;
  std::string err;
};

class Cli {
 public:
  // `token` empty: no REXEC_TOKEN (the test logs in, or checks what happens without one).
  Cli(const HubFixture& hub, std::string token);
  Cli(std::string hub_url, std::string token);
  friend class CliChild;
  std::map<std::string, std::string>& env() { return env_; }
  const std::string& home() const { return home_.path(); }
  // Runs `rexec ARGS...`, stdin from `input`, and waits for it.
  CliResult run(const std::vector<std::string>& args, const std::string& input = "",
                std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;
  // Runs it with stderr on a pseudo-terminal (stdin and stdout on /dev/null): what it drew there
  // comes back as `err` (progress bars are drawn only on a terminal).
  CliResult run_on_tty(const std::vector<std::string>& args,
                       std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;

 private:
  TempDir home_{"rexec-cli-home"};
  std::map<std::string, std::string> env_;
};

// A running rexec whose stdout a test reads as it comes (exec streaming, mcp).
class CliChild {
 public:
  CliChild(const Cli& cli, const std::vector<std::string>& args);
  ~CliChild();
  CliChild(const CliChild&) = delete;
  CliChild& operator=(const CliChild&) = delete;
  pid_t pid() const { return pid_; }
  // One line of stdout (without the newline), nullopt at EOF or timeout.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  bool write(const std::string& bytes);  // to its stdin
  void close_stdin();
  // Exit status after the child ends (stdout is drained into `rest`); nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout, std::string* rest = nullptr);
  std::string err() const;  // its stderr so far (a file)

 private:
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
  std::string buf_;
  std::string err_path_;
  std::optional<int> status_;
};

}  // namespace rx::test
