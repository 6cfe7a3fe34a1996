#include "tests/support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace rx::test {

Process::Process(std::vector<std::string> argv, std::map<std::string, std::string> env, std::string log_path,
                 std::optional<std::string> stdin_text)
    : log_path_(std::move(log_path)) {
  int in_pipe[2] = {-1, -1};
  if (stdin_text && ::pipe2(in_pipe, O_CLOEXEC) != 0) return;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (auto& e : env_strings) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  // A test or bench that crashes never runs this object's destructor: its hub, agents and
  // peers would live on, holding ports and CPU. The kernel kills them when their parent dies,
  // but PDEATHSIG fires when the forking *thread* ends, so only children of the main thread
  // (helper threads end long before the test does) get it.
  bool from_main_thread = ::gettid() == ::getpid();
  pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    if (from_main_thread) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
    }
    int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(log, 1);
    ::dup2(log, 2);
    if (stdin_text) ::dup2(in_pipe[0], 0);
    else {
      int devnull = ::open("/dev/null", O_RDONLY);
      ::dup2(devnull, 0);
    }
    ::setpgid(0, 0);  // its own process group: signals to the test do not reach it
    ::execve(cargv[0], cargv.data(), cenv.data());
    std::fprintf(stderr, "exec %s: %s\n", cargv[0], std::strerror(errno));
    ::_exit(127);
  }
  if (stdin_text) {
    ::close(in_pipe[0]);
    (void)!::write(in_pipe[1], stdin_text->data(), stdin_text->size());
    ::close(in_pipe[1]);
  }
}

Process::~Process() {
  if (pid_ > 0 && !status_) kill_and_wait();
}

Process::Process(Process&& o) noexcept : pid_(o.pid_), log_path_(std::move(o.log_path_)), status_(o.status_) {
  o.pid_ = -1;
}

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    if (pid_ > 0 && !status_) kill_and_wait();
    pid_ = o.pid_;
    log_path_ = std::move(o.log_path_);
    status_ = o.status_;
    o.pid_ = -1;
  }
  return *this;
}

bool Process::running() {
  if (pid_ <= 0 || status_) return false;
  int st = 0;
  if (::waitpid(pid_, &st, WNOHANG) == pid_) {
    status_ = st;
    return false;
  }
  return true;
}

void Process::signal(int sig) {
  if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!running()) return status_;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::nullopt;
}

void Process::kill_and_wait() {
  if (pid_ <= 0 || status_) return;
  ::kill(pid_, SIGKILL);
  int st = 0;
  ::waitpid(pid_, &st, 0);
  status_ = st;
}

std::string Process::log() const { return read_file(log_path_); }

std::optional<std::string> Process::wait_for_log(const std::string& needle, std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    std::istringstream in(log());
    for (std::string line; std::getline(in, line);)
      if (line.find(needle) != std::string::npos) return line;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < deadline);
  return std::nullopt;
}

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  path_ = ::mkdtemp(tmpl.data()) ? tmpl : "";
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

std::map<std::string, std::string> child_env() {
  std::map<std::string, std::string> env{{"PATH", "/usr/bin:/bin"}};
  for (const char* pass : {"REXEC_LWS_DEBUG", "ASAN_OPTIONS", "UBSAN_OPTIONS"})
    if (const char* v = std::getenv(pass)) env[pass] = v;
  return env;
}

long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 > stat.size()) return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::string f;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; fields >> f; ++i) {
    if (i == 14) utime = std::stoull(f);
    if (i == 15) {
      stime = std::stoull(f);
      break;
    }
  }
  return double(utime + stime) / double(sysconf(_SC_CLK_TCK));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string binary(const std::string& rel) { return std::string(REXEC_BINARY_DIR) + "/" + rel; }

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < deadline);
  return pred();
}

}  // namespace rx::test

namespace rx::test {

size_t open_files_in(const std::string& dir) {
  size_t n = 0;
  std::error_code ec;
  for (const auto& proc : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string pid = proc.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code gone;  // a process may end while it is looked at
    for (const auto& fd : std::filesystem::directory_iterator(proc.path() / "fd", gone)) {
      char target[4096];
      ssize_t len = ::readlink(fd.path().c_str(), target, sizeof target);
      if (len > 0 && std::string(target, size_t(len)).rfind(dir + "/", 0) == 0) ++n;
    }
  }
  return n;
}

}  // namespace rx::test
