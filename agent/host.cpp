#include "agent/host.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace rx::agent {
namespace {

std::string read_text(const std::string& path, size_t max = 1 << 20) {
  std::ifstream in(path, std::ios::binary);
  std::string s;
  s.resize(max);
  in.read(s.data(), std::streamsize(max));
  s.resize(size_t(in.gcount()));
  return s;
}

std::string trim(std::string s) {
  size_t a = s.find_first_not_of(" \t\r\n");
  size_t b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

std::optional<uint64_t> to_u64(const std::string& s) {
  std::string t = trim(s);
  if (t.empty() || !std::all_of(t.begin(), t.end(), ::isdigit)) return std::nullopt;
  return std::strtoull(t.c_str(), nullptr, 10);
}

constexpr uint64_t kMiB = 1024 * 1024;

}  // namespace

std::string parse_os_release(const std::string& text) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("PRETTY_NAME=", 0) != 0) continue;
    std::string v = trim(line.substr(12));
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) v = v.substr(1, v.size() - 2);
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] == '\\' && i + 1 < v.size()) ++i;  // shell-style escapes
      out += v[i];
    }
    return out;
  }
  return "";
}

std::optional<CpuTimes> parse_proc_stat(const std::string& text) {
  std::istringstream in(text);
  std::string label;
  if (!(in >> label) || label != "cpu") return std::nullopt;
  // user nice system idle iowait irq softirq steal (guest fields are already in user/nice)
  uint64_t v[8] = {};
  int n = 0;
  for (; n < 8 && (in >> v[n]); ++n) {}
  if (n < 4) return std::nullopt;
  CpuTimes t;
  for (int i = 0; i < n; ++i) t.total += v[i];
  t.busy = t.total - v[3] - (n > 4 ? v[4] : 0);  // idle and iowait are not busy
  return t;
}

MemInfo parse_meminfo(const std::string& text) {
  MemInfo m;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::istringstream l(line);
    std::string key;
    uint64_t kb = 0;
    if (!(l >> key >> kb)) continue;
    if (key == "MemTotal:") m.total = kb * 1024;
    else if (key == "MemAvailable:") m.available = kb * 1024;
  }
  return m;
}

std::optional<protocol::GpuInfo> parse_nvidia_information(const std::string& text) {
  protocol::GpuInfo g;
  bool model = false;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = trim(line.substr(0, colon)), value = trim(line.substr(colon + 1));
    if (key == "Model") {
      g.model = value;
      model = true;
    } else if (key == "GPU UUID") {
      g.uuid = value;
    } else if (key == "Device Minor") {
      if (auto v = to_u64(value)) g.index = uint32_t(*v);
    }
  }
  if (!model) return std::nullopt;
  return g;
}

std::vector<SmiRow> parse_nvidia_smi(const std::string& csv) {
  std::vector<SmiRow> rows;
  std::istringstream in(csv);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> f;
    std::istringstream l(line);
    for (std::string x; std::getline(l, x, ',');) f.push_back(trim(x));
    if (f.size() < 4) continue;
    auto index = to_u64(f[0]);
    if (!index) continue;
    SmiRow r;
    r.index = uint32_t(*index);
    r.uuid = f[1];
    r.name = f[2];
    r.memory_total = to_u64(f[3]).value_or(0) * kMiB;  // "[N/A]" on some boards: 0
    if (f.size() > 4) {
      if (auto u = to_u64(f[4])) r.utilization = uint32_t(std::min<uint64_t>(*u, 100));
    }
    if (f.size() > 5) {
      if (auto m = to_u64(f[5])) r.memory_used = *m * kMiB;
    }
    rows.push_back(r);
  }
  return rows;
}

std::string run_nvidia_smi(const std::string& path, int timeout_ms) {
  return run_nvidia_smi(path, {"--query-gpu=index,uuid,name,memory.total,utilization.gpu,memory.used",
                               "--format=csv,noheader,nounits"}, timeout_ms);
}

std::vector<std::string> compute_apps_args() {
  return {"--query-compute-apps=gpu_uuid,pid,process_name,used_memory", "--format=csv,noheader,nounits"};
}

std::string run_nvidia_smi(const std::string& path, const std::vector<std::string>& args, int timeout_ms) {
  if (path.empty() || ::access(path.c_str(), X_OK) != 0) return "";
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return "";
  // Built before fork: the child only calls async-signal-safe functions.
  std::vector<const char*> argv{path.c_str()};
  for (const auto& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(devnull, 2);
    const char* envp[] = {"PATH=/usr/bin:/bin", "LANG=C", nullptr};
    ::execve(path.c_str(), const_cast<char**>(argv.data()), const_cast<char**>(envp));
    ::_exit(127);
  }
  ::close(out[1]);
  std::string text;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{out[0], POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, int(left.count())) <= 0) {
      ::kill(pid, SIGKILL);  // hung driver: give up, never block the agent for long
      text.clear();
      break;
    }
    ssize_t n = ::read(out[0], buf, sizeof(buf));
    if (n <= 0) break;
    text.append(buf, size_t(n));
    if (text.size() > 1 << 20) break;
  }
  ::close(out[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? text : "";
}

protocol::HostInfo collect_host_info(const HostPaths& paths) {
  protocol::HostInfo h;
  h.hostname = trim(read_text(paths.proc + "/sys/kernel/hostname", 256));
  if (h.hostname.empty()) {
    char name[256] = {};
    ::gethostname(name, sizeof(name) - 1);
    h.hostname = name;
  }
  h.os = parse_os_release(read_text(paths.etc + "/os-release", 65536));
  if (h.os.empty()) h.os = parse_os_release(read_text("/usr/lib/os-release", 65536));
  utsname u{};
  if (::uname(&u) == 0) {
    h.kernel = u.release;
    h.arch = u.machine;
  }
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  h.cpus = cpus > 0 ? uint32_t(cpus) : 0;
  h.memory_total = parse_meminfo(read_text(paths.proc + "/meminfo", 65536)).total;

  std::error_code ec;
  std::vector<std::filesystem::path> dirs;
  for (const auto& e : std::filesystem::directory_iterator(paths.proc + "/driver/nvidia/gpus", ec)) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  for (const auto& d : dirs)
    if (auto g = parse_nvidia_information(read_text((d / "information").string(), 65536))) h.gpus.push_back(*g);
  // nvidia-smi knows memory sizes, which the /proc files do not.
  for (const auto& row : parse_nvidia_smi(run_nvidia_smi(paths.nvidia_smi))) {
    auto it = std::find_if(h.gpus.begin(), h.gpus.end(),
                           [&](const auto& g) { return g.uuid == row.uuid || (g.uuid.empty() && g.index == row.index); });
    if (it == h.gpus.end()) {
      h.gpus.push_back({row.index, row.uuid, row.name, row.memory_total});
    } else {
      it->memory_total = row.memory_total;
      if (it->model.empty()) it->model = row.name;
    }
  }
  std::sort(h.gpus.begin(), h.gpus.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
  return h;
}

std::optional<CgroupUsage> read_cgroup(const std::string& root) {
  auto number = [](const std::string& text) -> std::optional<uint64_t> {
    std::string t = trim(text);
    if (t.empty() || t == "max" || !std::isdigit(static_cast<unsigned char>(t[0]))) return std::nullopt;
    return std::strtoull(t.c_str(), nullptr, 10);
  };
  CgroupUsage u;
  std::string stat = read_text(root + "/cpu.stat", 4096);
  if (auto pos = stat.find("usage_usec "); pos != std::string::npos) {  // v2
    u.cpu_ns = std::strtoull(stat.c_str() + pos + 11, nullptr, 10) * 1000;
    u.memory_used = number(read_text(root + "/memory.current", 64)).value_or(0);
    u.memory_limit = number(read_text(root + "/memory.max", 64)).value_or(0);
    std::string max = read_text(root + "/cpu.max", 64);  // "QUOTA PERIOD" or "max PERIOD"
    auto quota = number(max);
    auto sp = max.find(' ');
    uint64_t period = sp == std::string::npos ? 0 : std::strtoull(max.c_str() + sp + 1, nullptr, 10);
    if (quota && period) u.cpus = double(*quota) / double(period);
    return u;
  }
  auto usage = number(read_text(root + "/cpuacct/cpuacct.usage", 64));  // v1
  if (!usage) return std::nullopt;
  u.cpu_ns = *usage;
  u.memory_used = number(read_text(root + "/memory/memory.usage_in_bytes", 64)).value_or(0);
  u.memory_limit = number(read_text(root + "/memory/memory.limit_in_bytes", 64)).value_or(0);
  auto quota = number(read_text(root + "/cpu/cpu.cfs_quota_us", 64));  // "-1": none
  auto period = number(read_text(root + "/cpu/cpu.cfs_period_us", 64));
  if (quota && period && *period) u.cpus = double(*quota) / double(*period);
  return u;
}

StatsSampler::StatsSampler(HostPaths paths, std::map<std::string, std::string> users_by_account)
    : paths_(std::move(paths)), users_by_account_(std::move(users_by_account)) {
  std::optional<CgroupUsage> cg;
  if (!paths_.cgroup.empty()) cg = read_cgroup(paths_.cgroup);
  (void)cpu_permille(now_ns(), cg);
}

uint64_t StatsSampler::now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

protocol::Stats StatsSampler::sample(const ChannelPids& channels) { return sample_at(now_ns(), channels); }

uint32_t StatsSampler::cpu_permille(uint64_t now, const std::optional<CgroupUsage>& cg) {
  uint32_t permille = 0;
  if (cg) {
    double cpus = cg->cpus > 0 ? cg->cpus : double(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
    if (last_ && now > last_->second) {
      uint64_t used = cg->cpu_ns >= last_->first ? cg->cpu_ns - last_->first : 0;
      permille = uint32_t(std::min(1000.0, double(used) * 1000.0 / (double(now - last_->second) * cpus)));
    }
    last_ = std::make_pair(cg->cpu_ns, now);
  } else if (auto t = parse_proc_stat(read_text(paths_.proc + "/stat", 1 << 16))) {
    if (last_ && t->total > last_->second) {
      uint64_t busy = t->busy >= last_->first ? t->busy - last_->first : 0;
      permille = uint32_t(std::min<uint64_t>(1000, busy * 1000 / (t->total - last_->second)));
    }
    last_ = std::make_pair(t->busy, t->total);
  }
  return permille;
}

protocol::Stats StatsSampler::sample_at(uint64_t now, const ChannelPids& channels) {
  protocol::Stats s;
  auto m = parse_meminfo(read_text(paths_.proc + "/meminfo", 65536));
  s.memory_total = m.total;
  s.memory_used = m.total > m.available ? m.total - m.available : 0;
  std::optional<CgroupUsage> cg;
  if (!paths_.cgroup.empty()) cg = read_cgroup(paths_.cgroup);
  s.cpu_permille = cpu_permille(now, cg);
  if (cg) {
    s.memory_used = cg->memory_used;
    // v1 says "no limit" with a huge number: the host's memory is the real ceiling.
    if (cg->memory_limit && cg->memory_limit < s.memory_total) s.memory_total = cg->memory_limit;
  }
  std::map<std::string, size_t> index_of_uuid;  // compute apps name their GPU by uuid only
  for (const auto& row : parse_nvidia_smi(run_nvidia_smi(paths_.nvidia_smi))) {
    if (!row.uuid.empty()) index_of_uuid[row.uuid] = s.gpus.size();
    s.gpus.push_back({row.index, row.utilization.value_or(0), row.memory_used.value_or(0), row.memory_total});
  }
  if (!s.gpus.empty()) {
    auto apps = parse_compute_apps(run_nvidia_smi(paths_.nvidia_smi, compute_apps_args()));
    attach_processes(s.gpus, index_of_uuid, apps, {paths_.proc, paths_.etc, users_by_account_, channels});
  }
  return s;
}

}  // namespace rx::agent
