#include "agent/gpu_procs.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "agent/process.h"

namespace rx::agent {
namespace {

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

std::optional<uint64_t> to_u64(const std::string& s) {
  if (s.empty() || s.size() > 19 || !std::all_of(s.begin(), s.end(), ::isdigit)) return std::nullopt;
  return std::strtoull(s.c_str(), nullptr, 10);
}

std::string read_small(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string s(8192, '\0');
  in.read(s.data(), std::streamsize(s.size()));
  s.resize(size_t(in.gcount()));
  return s;
}

constexpr uint64_t kMiB = 1024 * 1024;
constexpr int kMaxAncestors = 64;

}  // namespace

std::vector<ComputeApp> parse_compute_apps(const std::string& csv) {
  std::vector<ComputeApp> apps;
  std::istringstream in(csv);
  for (std::string line; std::getline(in, line);) {
    // uuid, pid, name (may hold commas), memory: split at the first two and the last comma.
    auto c1 = line.find(',');
    auto c2 = c1 == std::string::npos ? c1 : line.find(',', c1 + 1);
    auto c3 = line.rfind(',');
    if (c2 == std::string::npos || c3 == c2) continue;
    auto pid = to_u64(trim(std::string_view(line).substr(c1 + 1, c2 - c1 - 1)));
    if (!pid || *pid == 0 || *pid > UINT32_MAX) continue;
    ComputeApp a;
    a.gpu_uuid = trim(std::string_view(line).substr(0, c1));
    if (a.gpu_uuid.empty()) continue;
    a.pid = uint32_t(*pid);
    a.name = trim(std::string_view(line).substr(c2 + 1, c3 - c2 - 1));
    a.memory_used = to_u64(trim(std::string_view(line).substr(c3 + 1))).value_or(0) * kMiB;  // "[N/A]": 0
    apps.push_back(std::move(a));
  }
  return apps;
}

std::optional<uid_t> process_uid(const std::string& proc, uint32_t pid) {
  std::istringstream in(read_small(proc + "/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("Uid:")) continue;
    std::istringstream l(line.substr(4));
    uint64_t real = 0;
    if (l >> real) return uid_t(real);
  }
  return std::nullopt;
}

std::optional<uint32_t> parent_pid(const std::string& proc, uint32_t pid) {
  std::string stat = read_small(proc + "/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');  // "pid (comm) state ppid ..."; comm may hold ") "
  if (close == std::string::npos) return std::nullopt;
  std::istringstream l(stat.substr(close + 1));
  std::string state;
  uint64_t ppid = 0;
  if (!(l >> state >> ppid) || ppid > UINT32_MAX) return std::nullopt;
  return uint32_t(ppid);
}

uint32_t channel_of(const std::string& proc, uint32_t pid, const ChannelPids& channels) {
  for (int i = 0; i < kMaxAncestors && pid > 1; ++i) {
    if (auto it = channels.find(pid); it != channels.end()) return it->second;
    auto parent = parent_pid(proc, pid);
    if (!parent || *parent == pid) break;
    pid = *parent;
  }
  return 0;
}

protocol::GpuProcess describe_process(const ComputeApp& app, const GpuProcessContext& context) {
  protocol::GpuProcess p;
  p.pid = app.pid;
  p.name = app.name.substr(0, kMaxProcessName);
  p.memory_used = app.memory_used;
  if (auto uid = process_uid(context.proc, app.pid)) {
    auto account = find_account(std::to_string(*uid), context.etc);
    p.account = account ? account->name : "#" + std::to_string(*uid);
    if (auto it = context.users_by_account.find(p.account); it != context.users_by_account.end()) p.user = it->second;
    p.channel = channel_of(context.proc, app.pid, context.channels);
  }
  return p;
}

void attach_processes(std::vector<protocol::GpuStats>& gpus, const std::map<std::string, size_t>& index_of_uuid,
                      const std::vector<ComputeApp>& apps, const GpuProcessContext& context) {
  size_t attached = 0;
  for (const auto& app : apps) {
    if (attached == kMaxGpuProcesses) break;
    auto it = index_of_uuid.find(app.gpu_uuid);
    if (it == index_of_uuid.end() || it->second >= gpus.size()) continue;
    gpus[it->second].processes.push_back(describe_process(app, context));
    ++attached;
  }
}

}  // namespace rx::agent
