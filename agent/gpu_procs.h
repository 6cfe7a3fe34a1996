// Who runs what on the GPUs: nvidia-smi's compute processes, each with the local account that
// owns it, the Rexec user that account maps to, and the agent channel whose process tree holds
// it. The hub uses this to flag processes on GPUs their owner holds no lease for. Everything is
// read from a proc root and an etc root (HostPaths), so tests use fixture trees and the real /proc.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "protocol/frame.h"

namespace rx::agent {

// One line of `nvidia-smi --query-compute-apps=gpu_uuid,pid,process_name,used_memory
// --format=csv,noheader,nounits`.
struct ComputeApp {
  std::string gpu_uuid;
  uint32_t pid = 0;
  std::string name;
  uint64_t memory_used = 0;  // bytes; 0 when nvidia-smi says "[N/A]" (e.g. under MIG)
  bool operator==(const ComputeApp&) const = default;
};
// Malformed lines (too few fields, no pid) are skipped. A name may itself hold commas.
std::vector<ComputeApp> parse_compute_apps(const std::string& csv);

// The real uid of a process (<proc>/<pid>/status "Uid:"), nullopt when it is gone.
std::optional<uid_t> process_uid(const std::string& proc, uint32_t pid);
// Its parent (<proc>/<pid>/stat, after the command name, which may hold spaces and parentheses).
std::optional<uint32_t> parent_pid(const std::string& proc, uint32_t pid);

// Channel child pid -> channel id, for the channels alive now.
using ChannelPids = std::map<uint32_t, uint32_t>;
// The channel whose child is `pid` or an ancestor of it; 0 when none (bounded walk: a parent
// chain is short, and a racing /proc must not loop us).
uint32_t channel_of(const std::string& proc, uint32_t pid, const ChannelPids& channels);

struct GpuProcessContext {
  std::string proc = "/proc";
  std::string etc = "/etc";
  std::map<std::string, std::string> users_by_account;  // UserMap::users_by_account()
  ChannelPids channels;
};
// The wire entry for one app: account "#<uid>" when the uid has no name in <etc>/passwd, "" when
// the process is gone.
protocol::GpuProcess describe_process(const ComputeApp& app, const GpuProcessContext& context);

// Adds each app to the GpuStats of its GPU (matched by uuid; `uuid_of_index` from --query-gpu).
// Apps of unknown GPUs are dropped; at most kMaxGpuProcesses in all, names cut to
// kMaxProcessName, so a STATS frame stays far below the frame limit.
inline constexpr size_t kMaxGpuProcesses = 128;
inline constexpr size_t kMaxProcessName = 128;
void attach_processes(std::vector<protocol::GpuStats>& gpus, const std::map<std::string, size_t>& index_of_uuid,
                      const std::vector<ComputeApp>& apps, const GpuProcessContext& context);

}  // namespace rx::agent
