#include "hub/channel/gpu_leases.h"

#include <algorithm>

#include "hub/base/rfc3339.h"

namespace rx::hub {

bool MachineGpus::has(uint32_t index) const {
  return std::any_of(gpus.begin(), gpus.end(), [&](const HostGpu& g) { return g.index == index; });
}

std::string MachineGpus::index_range() const {
  if (gpus.empty()) return "none";
  std::vector<uint32_t> idx;
  for (const auto& g : gpus) idx.push_back(g.index);
  std::sort(idx.begin(), idx.end());
  if (idx.back() - idx.front() + 1 == idx.size() && idx.size() > 1)
    return std::to_string(idx.front()) + "-" + std::to_string(idx.back());
  std::string out;
  for (auto i : idx) out += (out.empty() ? "" : ", ") + std::to_string(i);
  return out;
}

Status MachineGpus::check(const std::vector<uint32_t>& wanted, const std::string& name) const {
  for (auto g : wanted)
    if (!has(g))
      return make_error("unknown_gpu", "machine " + name + " has no GPU " + std::to_string(g) + " (it has " +
                                           index_range() + ")");
  return Ok{};
}

MachineGpus machine_gpus(const AgentRecord& agent) {
  MachineGpus m;
  auto host = nlohmann::json::parse(agent.host_json, nullptr, false);
  if (host.is_discarded() || !host.is_object()) return m;
  m.lease_required = host.value("gpu_policy", "") == "lease-required";
  auto gpus = host.find("gpus");
  if (gpus == host.end() || !gpus->is_array()) return m;
  for (const auto& g : *gpus) {
    if (!g.is_object() || !g.contains("index") || !g["index"].is_number_unsigned()) continue;
    m.gpus.push_back({g["index"].get<uint32_t>(), g.value("uuid", "")});
  }
  return m;
}

std::map<std::string, std::string> gpu_env(const MachineGpus& machine, const std::vector<uint32_t>& leased) {
  if (leased.empty()) {
    if (!machine.lease_required) return {};
    return {{"CUDA_VISIBLE_DEVICES", ""}, {"NVIDIA_VISIBLE_DEVICES", "void"}};
  }
  std::string indexes, uuids;
  for (auto i : leased) {
    indexes += (indexes.empty() ? "" : ",") + std::to_string(i);
    for (const auto& g : machine.gpus)
      if (g.index == i && !g.uuid.empty()) uuids += (uuids.empty() ? "" : ",") + g.uuid;
  }
  return {{"CUDA_VISIBLE_DEVICES", indexes},
          {"CUDA_DEVICE_ORDER", "PCI_BUS_ID"},
          {"NVIDIA_VISIBLE_DEVICES", uuids.empty() ? indexes : uuids},
          {"REXEC_GPUS", indexes}};
}

Status GpuLeases::load(const std::set<std::string>& live) {
  auto rows = store_.list_leases();
  if (!rows) return rows.error();
  leases_.clear();
  std::set<std::string> stale;
  for (const auto& l : *rows) {
    if (!live.count(l.holder)) {
      stale.insert(l.holder);
      continue;
    }
    leases_[{l.agent_id, l.gpu}] = Live{l, std::nullopt, 0, std::nullopt};
  }
  for (const auto& h : stale) {
    if (auto s = store_.delete_leases_of_holder(h); !s) return s;
  }
  return Ok{};
}

std::string GpuLeases::user_name(const std::string& user_id) {
  auto u = store_.user_by_id(user_id);
  return u && *u ? (*u)->name : user_id;
}

std::variant<std::vector<uint32_t>, GpuRefusal> GpuLeases::choose(const AgentRecord& agent, const std::string& user_id,
                                                                 const std::optional<std::vector<uint32_t>>& wanted,
                                                                 std::optional<uint32_t> count, int64_t now) {
  MachineGpus machine = machine_gpus(agent);
  ReservationFilter f;
  f.agent_id = agent.id;
  f.from = now;
  f.until = now + 1;
  auto active = store_.list_reservations(f);
  if (!active) return GpuRefusal{active.error().code, active.error().message};
  auto reserved_by_other = [&](uint32_t gpu) -> const ReservationRecord* {
    for (const auto& r : *active)
      if (r.user_id != user_id && std::find(r.gpus.begin(), r.gpus.end(), gpu) != r.gpus.end()) return &r;
    return nullptr;
  };
  auto busy = [&](uint32_t gpu) { return leases_.count({agent.id, gpu}) > 0; };

  if (wanted) {
    if (auto s = machine.check(*wanted, agent.name); !s) return GpuRefusal{s.error().code, s.error().message};
    for (auto g : *wanted) {
      if (busy(g)) {
        const LeaseRecord& l = leases_.at({agent.id, g}).record;
        std::string who = user_name(l.user_id);
        return GpuRefusal{"gpu_busy",
                          "GPU " + std::to_string(g) + " is held by " + who + " since " + format_rfc3339(l.since) +
                              " (" + l.holder + ")",
                          {{"gpu", g},
                           {"holder", {{"user", who}, {"user_id", l.user_id}, {"terminal", l.holder}, {"since", l.since}}}}};
      }
      if (const ReservationRecord* r = reserved_by_other(g)) {
        std::string who = user_name(r->user_id);
        return GpuRefusal{"gpu_reserved",
                          "GPU " + std::to_string(g) + " is reserved by " + who + " until " + format_rfc3339(r->until),
                          {{"gpu", g},
                           {"reservation",
                            {{"id", r->id}, {"user", who}, {"user_id", r->user_id}, {"gpus", r->gpus},
                             {"from", format_rfc3339(r->from)}, {"until", format_rfc3339(r->until)}, {"note", r->note}}}}};
      }
    }
    return *wanted;
  }
  std::vector<uint32_t> free;
  for (const auto& g : machine.gpus)
    if (!busy(g.index) && !reserved_by_other(g.index)) free.push_back(g.index);
  std::sort(free.begin(), free.end());
  uint32_t n = count.value_or(0);
  if (free.size() < n)
    return GpuRefusal{"gpu_busy",
                      "only " + std::to_string(free.size()) + " of " + std::to_string(machine.gpus.size()) +
                          " GPUs of " + agent.name + " are free (asked for " + std::to_string(n) + ")",
                      {{"free", free}}};
  free.resize(n);
  return free;
}

Status GpuLeases::acquire(const std::string& agent_id, const std::vector<uint32_t>& gpus, const std::string& holder,
                          const std::string& user_id, int64_t now) {
  if (gpus.empty()) return Ok{};
  std::vector<LeaseRecord> rows;
  for (auto g : gpus) rows.push_back({agent_id, g, holder, user_id, now});
  if (auto s = store_.create_leases(rows); !s) return s;
  for (const auto& r : rows) leases_[{agent_id, r.gpu}] = Live{r, std::nullopt, 0, std::nullopt};
  emit({"lease", agent_id, gpus, user_id, holder, ""});
  return Ok{};
}

void GpuLeases::release_holder(const std::string& holder, const std::string& why) {
  std::map<std::string, GpuEvent> by_agent;
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.record.holder != holder) {
      ++it;
      continue;
    }
    auto& e = by_agent[it->first.first];
    e = GpuEvent{"release", it->first.first, e.gpus, it->second.record.user_id, holder, why};
    e.gpus.push_back(it->first.second);
    it = leases_.erase(it);
  }
  if (by_agent.empty()) return;
  // The map is the truth for this hub; a store that failed here is retried at the next load.
  writes_.write("gpu.release", [holder](Store& store) { return store.delete_leases_of_holder(holder); });
  for (auto& [agent, e] : by_agent) emit(std::move(e));
}

void GpuLeases::release_agent(const std::string& agent_id, const std::string& why) {
  std::set<std::string> holders;
  for (const auto& [key, l] : leases_)
    if (key.first == agent_id) holders.insert(l.record.holder);
  for (const auto& h : holders) release_holder(h, why);
  writes_.write("gpu.release", [agent_id](Store& store) { return store.delete_leases_of_agent(agent_id); });
}

std::optional<LeaseRecord> GpuLeases::lease(const std::string& agent_id, uint32_t gpu) const {
  auto it = leases_.find({agent_id, gpu});
  if (it == leases_.end()) return std::nullopt;
  return it->second.record;
}

std::vector<uint32_t> GpuLeases::gpus_of(const std::string& holder) const {
  std::vector<uint32_t> out;
  for (const auto& [key, l] : leases_)
    if (l.record.holder == holder) out.push_back(key.second);
  return out;
}

std::optional<int64_t> GpuLeases::idle_since(const std::string& agent_id, uint32_t gpu) const {
  auto it = leases_.find({agent_id, gpu});
  if (it == leases_.end()) return std::nullopt;
  return it->second.idle_from;
}

void GpuLeases::on_stats(const std::string& agent_id, const protocol::Stats& stats, int64_t now) {
  for (const auto& g : stats.gpus) {
    auto it = leases_.find({agent_id, g.index});
    if (it == leases_.end()) continue;
    Live& l = it->second;
    l.sampled_at = now;
    if (g.utilization > 0) {
      l.idle_from.reset();
      l.warned_at.reset();
    } else if (!l.idle_from) {
      l.idle_from = now;
    }
  }
}

void GpuLeases::tick(int64_t now) {
  if (idle_after_ <= 0) return;
  // Per holder: a terminal holding two GPUs is idle only when both are.
  std::map<std::string, std::vector<Live*>> by_holder;
  for (auto& [key, l] : leases_) by_holder[l.record.holder].push_back(&l);
  for (auto& [holder, lives] : by_holder) {
    int64_t idle_from = 0;
    bool idle = true;
    for (auto* l : lives) {
      if (!l->idle_from || now - l->sampled_at > kSampleStale) idle = false;
      else idle_from = std::max(idle_from, *l->idle_from);
    }
    if (!idle || now - idle_from < idle_after_) continue;
    const LeaseRecord& r = lives.front()->record;
    std::vector<uint32_t> gpus;
    for (auto* l : lives) gpus.push_back(l->record.gpu);
    if (!lives.front()->warned_at) {
      for (auto* l : lives) l->warned_at = now;
      emit({"idle_warning", r.agent_id, gpus, r.user_id, holder, "idle since " + format_rfc3339(idle_from)});
    } else if (now - *lives.front()->warned_at >= idle_grace_) {
      release_holder(holder, "idle");
    }
  }
}

}  // namespace rx::hub
