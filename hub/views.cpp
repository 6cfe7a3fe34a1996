#include "hub/views.h"

namespace rx::hub {

nlohmann::json terminal_view(const TerminalRecord& t, Relay& relay, const std::string& agent_name) {
  nlohmann::json j{{"id", t.id},         {"name", t.name}, {"kind", t.kind},   {"agent", t.agent_id},
                   {"owner", t.owner_id}, {"cols", t.cols}, {"rows", t.rows},   {"status", relay.status_of(t)},
                   {"created_at", t.created_at}};
  j["exit_code"] = t.exit_code ? nlohmann::json(*t.exit_code) : nlohmann::json(nullptr);
  if (t.kind == "container") j["image"] = t.image;
  if (t.kind == "agent") j["agent_name"] = agent_name;
  if (!t.reason.empty()) j["reason"] = t.reason;
  int64_t activity = t.created_at;
  if (auto* live = relay.terminal(t.id)) {
    j["output_offset"] = live->output().end();
    j["viewers"] = live->viewer_count();
    if (live->exit_code()) j["exit_code"] = *live->exit_code();
    activity = std::max(activity, live->last_activity());
  }
  j["last_activity_at"] = activity;
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

nlohmann::json agent_view(const AgentRecord& a, const Relay& relay) {
  nlohmann::json j{{"id", a.id}, {"name", a.name}, {"online", relay.online(a.id)}, {"owner", a.owner_id}};
  auto host = nlohmann::json::parse(a.host_json, nullptr, false);
  j["host"] = host.is_discarded() || !host.is_object() ? nlohmann::json::object() : host;
  nlohmann::json gpus = nlohmann::json::array();
  for (auto g : j["host"].value("gpus", nlohmann::json::array())) {
    if (!g.is_object()) continue;
    g["name"] = g.value("model", "");
    g["holder"] = nullptr;  // GPU leases are not there yet: every GPU is free
    gpus.push_back(std::move(g));
  }
  j["gpus"] = std::move(gpus);
  auto labels = nlohmann::json::parse(a.labels_json, nullptr, false);
  j["labels"] = labels.is_discarded() || !labels.is_object() ? nlohmann::json::object() : labels;
  j["last_seen_at"] = a.last_seen_at ? nlohmann::json(*a.last_seen_at) : nlohmann::json(nullptr);
  auto s = relay.latest_stats(a.id);
  j["stats"] = s ? stats_view(*s, a.last_seen_at.value_or(0)) : nlohmann::json(nullptr);
  return j;
}

}  // namespace rx::hub
