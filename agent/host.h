// What the agent tells the hub about its machine: HostInfo once per connection (HELLO) and Stats
// every 5 s. CPU load is the busy share of all CPUs between two samples of /proc/stat (not the
// load average, which counts waiting processes, not CPU time). NVIDIA GPUs come from the driver's
// /proc files and, when present, nvidia-smi. Every path is relative to a root that tests point
// at fixture files; the parsers are exposed so tests can feed them text directly.
// In a container (the hub's container terminals) /proc/stat and /proc/meminfo are the host's, so
// the agent is told its cgroup mount instead and reports the container's own CPU time (as a share
// of its CPU quota) and memory (against its limit), cgroup v2 or v1.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/gpu_procs.h"
#include "protocol/frame.h"

namespace rx::agent {

struct HostPaths {
  std::string proc = "/proc";
  std::string etc = "/etc";
  std::string nvidia_smi;  // path to nvidia-smi; empty: do not run it
  std::string cgroup;      // a cgroup mount to report CPU and memory of instead of the host's; empty: host
};

// A cgroup's own usage (v2: cpu.stat, memory.current, memory.max, cpu.max; v1: the cpuacct,
// memory and cpu controllers' files). Limits are 0 when there is none.
struct CgroupUsage {
  uint64_t cpu_ns = 0;
  uint64_t memory_used = 0;
  uint64_t memory_limit = 0;
  double cpus = 0;  // CPU quota in CPUs (quota / period)
};
std::optional<CgroupUsage> read_cgroup(const std::string& root);

protocol::HostInfo collect_host_info(const HostPaths& paths);

class StatsSampler {
 public:
  // Takes a first CPU reading at once, so the first sample already has an interval behind it
  // (else every sparkline would start with a false 0%).
  // `users_by_account`: the reverse of --user-map, naming the Rexec user of a GPU process.
  explicit StatsSampler(HostPaths paths, std::map<std::string, std::string> users_by_account = {});
  // `channels`: the live channels' child pids, to tell which channel a GPU process belongs to.
  protocol::Stats sample(const ChannelPids& channels = {});
  // `now_ns`: a monotonic time (cgroup CPU time is measured against wall time between samples).
  protocol::Stats sample_at(uint64_t now_ns, const ChannelPids& channels = {});

 private:
  static uint64_t now_ns();
  // CPU use since the last reading, per mille (0 without one), and the reading kept for the next.
  uint32_t cpu_permille(uint64_t now_ns, const std::optional<CgroupUsage>& cgroup);
  HostPaths paths_;
  std::map<std::string, std::string> users_by_account_;
  std::optional<std::pair<uint64_t, uint64_t>> last_;  // (busy, total) jiffies, or (cgroup cpu ns, time ns)
};

// --- parsers (pure) ---
std::string parse_os_release(const std::string& text);  // PRETTY_NAME, unquoted
struct CpuTimes {
  uint64_t busy = 0;
  uint64_t total = 0;
};
std::optional<CpuTimes> parse_proc_stat(const std::string& text);  // the aggregate "cpu" line
struct MemInfo {
  uint64_t total = 0;
  uint64_t available = 0;
};
MemInfo parse_meminfo(const std::string& text);
// /proc/driver/nvidia/gpus/*/information
std::optional<protocol::GpuInfo> parse_nvidia_information(const std::string& text);
// nvidia-smi --query-gpu=index,uuid,name,memory.total,utilization.gpu,memory.used --format=csv,noheader,nounits
struct SmiRow {
  uint32_t index = 0;
  std::string uuid;
  std::string name;
  uint64_t memory_total = 0;
  std::optional<uint32_t> utilization;
  std::optional<uint64_t> memory_used;
};
std::vector<SmiRow> parse_nvidia_smi(const std::string& csv);
// Runs nvidia-smi (argv, no shell) with a timeout; empty on any failure. Without `args`: the
// --query-gpu of parse_nvidia_smi.
std::string run_nvidia_smi(const std::string& path, int timeout_ms = 3000);
std::string run_nvidia_smi(const std::string& path, const std::vector<std::string>& args, int timeout_ms = 3000);
// The arguments of the compute-apps query (gpu_procs.h parses its output).
std::vector<std::string> compute_apps_args();

}  // namespace rx::agent
