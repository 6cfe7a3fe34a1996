#include "hub/fanout/views.h"

#include <algorithm>
#include <ctime>
#include <map>

#include "hub/base/json_text.h"
#include "hub/base/rfc3339.h"

namespace rx::hub {

nlohmann::json terminal_view(const TerminalRecord& t, Relay& relay, const std::string& agent_name) {
  nlohmann::json j{{"id", t.id},         {"name", t.name}, {"kind", t.kind},   {"agent", t.agent_id},
                   {"owner", t.owner_id}, {"cols", t.cols}, {"rows", t.rows},   {"status", relay.status_of(t)},
                   {"created_at", t.created_at}};
  j["exit_code"] = t.exit_code ? nlohmann::json(*t.exit_code) : nlohmann::json(nullptr);
  if (t.kind == "container") j["image"] = t.image;
  if (t.kind == "agent") j["agent_name"] = agent_name;
  if (!t.reason.empty()) j["reason"] = t.reason;
  auto labels = nlohmann::json::parse(t.labels_json, nullptr, false);
  j["labels"] = labels.is_object() ? labels : nlohmann::json::object();
  j["record"] = t.record;
  j["record_input"] = t.record_input;
  int64_t activity = t.created_at;
  if (auto* live = relay.terminal(t.id)) {
    j["output_offset"] = live->output().end();
    j["viewers"] = live->viewer_count();
    if (live->exit_code()) j["exit_code"] = *live->exit_code();
    activity = std::max(activity, live->last_activity());
  }
  j["last_activity_at"] = activity;
  j["gpus"] = relay.gpus().gpus_of(t.id);
  return j;
}

nlohmann::json stats_view(const protocol::Stats& s, int64_t at) {
  nlohmann::json gpus = nlohmann::json::array();
  for (const auto& g : s.gpus)
    gpus.push_back({{"index", g.index}, {"utilization", g.utilization}, {"memory_used", g.memory_used},
                    {"memory_total", g.memory_total}});
  return {{"t", at},
          {"cpu_percent", s.cpu_permille / 10.0},
          {"memory_used", s.memory_used},
          {"memory_total", s.memory_total},
          {"gpus", gpus}};
}

namespace {

constexpr int64_t kReservationHorizon = 7 * 24 * 3600;

// Names of users by id, looked up once per view.
class UserNames {
 public:
  explicit UserNames(Store& store) : store_(store) {}
  std::string operator()(const std::string& id) {
    auto it = names_.find(id);
    if (it != names_.end()) return it->second;
    auto u = store_.user_by_id(id);
    return names_[id] = u && *u ? (*u)->name : id;
  }

 private:
  Store& store_;
  std::map<std::string, std::string> names_;
};

// Whose a GPU process is, as a Rexec user id ("" = nobody known): the terminal it runs under
// (the agent traced it to a channel), else the Rexec user the agent's --user-map names for its
// local account, else the one user whose grant maps to that account.
std::string process_owner(const protocol::GpuProcess& proc, const AgentRecord& a, Relay& relay,
                          const std::vector<GrantRecord>& grants, std::string* terminal) {
  Store& store = relay.store();
  if (proc.channel != 0)
    if (auto t = relay.terminal_on(a.id, proc.channel)) {
      *terminal = *t;
      if (auto rec = store.terminal_by_id(*t); rec && *rec) return (*rec)->owner_id;
    }
  if (!proc.user.empty())
    if (auto u = store.user_by_name(proc.user); u && *u) return (*u)->id;
  std::string owner;
  for (const auto& g : grants) {
    if (g.unix_user.empty() || g.unix_user != proc.account) continue;
    if (!owner.empty()) return "";  // two people on one account: cannot tell
    owner = g.subject_id;
  }
  return owner;
}

nlohmann::json reservation_view(const ReservationRecord& r, UserNames& names) {
  return {{"id", r.id},          {"user", names(r.user_id)}, {"user_id", r.user_id},
          {"gpus", r.gpus},      {"from", format_rfc3339(r.from)}, {"until", format_rfc3339(r.until)},
          {"note", r.note}};
}

nlohmann::json gpus_view(const AgentRecord& a, Relay& relay, const nlohmann::json& host,
                         const std::optional<protocol::Stats>& stats) {
  Store& store = relay.store();
  UserNames names(store);
  int64_t now = int64_t(std::time(nullptr));
  MachineGpus machine = machine_gpus(a);
  std::vector<GrantRecord> grants;
  if (auto g = store.list_grants(a.id)) grants = std::move(*g);
  std::vector<ReservationRecord> reservations;
  ReservationFilter f;
  f.agent_id = a.id;
  f.from = now;
  f.until = now + kReservationHorizon;
  if (auto r = store.list_reservations(f)) reservations = std::move(*r);

  nlohmann::json out = nlohmann::json::array();
  for (auto g : host.value("gpus", nlohmann::json::array())) {
    if (!g.is_object() || !g.contains("index") || !g["index"].is_number_unsigned()) continue;
    auto index = g["index"].get<uint32_t>();
    g["name"] = g.value("model", "");
    g["mem"] = g.value("memory_total", uint64_t(0));
    const protocol::GpuStats* use = nullptr;
    if (stats)
      for (const auto& s : stats->gpus)
        if (s.index == index) use = &s;
    g["utilization"] = use ? nlohmann::json(use->utilization) : nlohmann::json();
    g["memory_used"] = use ? nlohmann::json(use->memory_used) : nlohmann::json();
    if (use && use->memory_total) g["memory_total"] = use->memory_total;

    auto lease = relay.gpus().lease(a.id, index);
    g["holder"] = lease ? nlohmann::json{{"user", names(lease->user_id)},
                                         {"user_id", lease->user_id},
                                         {"terminal", lease->holder},
                                         {"since", lease->since}}
                        : nlohmann::json();
    auto idle = relay.gpus().idle_since(a.id, index);
    g["idle_since"] = idle && (!use || use->utilization == 0) ? nlohmann::json(*idle) : nlohmann::json();

    bool violation = false;
    nlohmann::json procs = nlohmann::json::array();
    if (use)
      for (const auto& p : use->processes) {
        std::string terminal;
        std::string owner = process_owner(p, a, relay, grants, &terminal);
        // On a leased GPU only the holder's processes belong; on a free GPU of a lease-required
        // machine none do. A process nobody can be named for counts against the lease.
        bool bad = lease ? owner != lease->user_id : machine.lease_required;
        violation = violation || bad;
        procs.push_back({{"pid", p.pid},
                         {"name", clean_utf8(p.name)},
                         {"memory_used", p.memory_used},
                         {"account", clean_utf8(p.account)},
                         {"user", owner.empty() ? nlohmann::json() : nlohmann::json(names(owner))},
                         {"terminal", terminal.empty() ? nlohmann::json() : nlohmann::json(terminal)},
                         {"violation", bad}});
      }
    g["processes"] = std::move(procs);
    g["violation"] = violation;

    nlohmann::json booked = nlohmann::json::array();
    g["reserved_now"] = nullptr;
    for (const auto& r : reservations) {
      if (std::find(r.gpus.begin(), r.gpus.end(), index) == r.gpus.end()) continue;
      booked.push_back(reservation_view(r, names));
      if (r.from <= now && now < r.until) g["reserved_now"] = booked.back();
    }
    g["reservations"] = std::move(booked);
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace

nlohmann::json agent_view(const AgentRecord& a, Relay& relay) {
  nlohmann::json j{{"id", a.id}, {"name", a.name}, {"online", relay.online(a.id)}, {"owner", a.owner_id}};
  auto host = nlohmann::json::parse(a.host_json, nullptr, false);
  j["host"] = host.is_discarded() || !host.is_object() ? nlohmann::json::object() : host;
  auto s = relay.latest_stats(a.id);
  j["gpus"] = gpus_view(a, relay, j["host"], s);
  j["gpu_policy"] = j["host"].value("gpu_policy", "open");
  auto labels = nlohmann::json::parse(a.labels_json, nullptr, false);
  j["labels"] = labels.is_discarded() || !labels.is_object() ? nlohmann::json::object() : labels;
  j["last_seen_at"] = a.last_seen_at ? nlohmann::json(*a.last_seen_at) : nlohmann::json(nullptr);
  j["stats"] = s ? stats_view(*s, a.last_seen_at.value_or(0)) : nlohmann::json(nullptr);
  return j;
}

}  // namespace rx::hub
