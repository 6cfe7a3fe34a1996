#include "cli/output.h"
#include "cli/targets.h"

#include <algorithm>

namespace rx::cli {

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string suggestion(const std::string& name, const std::vector<std::string>& candidates) {
  auto close = close_names(name, candidates);
  if (close.empty()) return "";
  std::string s = " (did you mean ";
  for (size_t i = 0; i < close.size(); ++i) s += (i ? ", " : "") + close[i];
  return s + "?)";
}

bool labels_match(const nlohmann::json& item, const std::map<std::string, std::string>& want) {
  auto labels = item.find("labels");
  for (const auto& [k, v] : want) {
    if (labels == item.end() || !labels->is_object()) return false;
    auto it = labels->find(k);
    if (it == labels->end() || !it->is_string() || it->get<std::string>() != v) return false;
  }
  return true;
}

}  // namespace

std::vector<std::string> close_names(const std::string& name, const std::vector<std::string>& candidates) {
  std::vector<std::pair<size_t, std::string>> scored;
  size_t limit = std::max<size_t>(1, name.size() / 3);
  for (const auto& c : candidates) {
    if (c.empty()) continue;
    size_t d = c.rfind(name, 0) == 0 ? 0 : edit_distance(name, c);
    if (d <= limit) scored.emplace_back(d, c);
  }
  std::sort(scored.begin(), scored.end());
  scored.erase(std::unique(scored.begin(), scored.end()), scored.end());
  std::vector<std::string> out;
  for (size_t i = 0; i < scored.size() && out.size() < 3; ++i) out.push_back(scored[i].second);
  return out;
}

nlohmann::json find_terminal(HubClient& hub, const std::string& id_or_name) {
  auto list = hub.get("/api/v1/terminals");
  std::vector<std::string> names;
  std::vector<nlohmann::json> by_name;
  for (const auto& t : list.value("terminals", nlohmann::json::array())) {
    if (field(t, "id") == id_or_name) return t;
    if (field(t, "name") == id_or_name) by_name.push_back(t);
    names.push_back(field(t, "name").empty() ? field(t, "id") : field(t, "name"));
  }
  if (by_name.size() == 1) return by_name.front();
  if (by_name.size() > 1) throw Failure("more than one terminal is named '" + id_or_name + "': use its id (rexec ls)");
  throw Failure("no terminal '" + id_or_name + "'" + suggestion(id_or_name, names));
}

std::vector<ExecTarget> select_targets(HubClient& hub, const TargetQuery& q) {
  if (!q.kind.empty() && q.kind != "agent" && q.kind != "container")
    throw Failure("bad --kind '" + q.kind + "': expected agent or container");
  auto agents = hub.get("/api/v1/agents").value("agents", nlohmann::json::array());
  auto terminals = hub.get("/api/v1/terminals").value("terminals", nlohmann::json::array());

  std::vector<ExecTarget> out;
  auto add = [&out](ExecTarget t) {
    for (const auto& o : out)
      if (o.id == t.id) return;
    out.push_back(std::move(t));
  };
  auto container_target = [](const nlohmann::json& t) {
    return ExecTarget{field(t, "id"), field(t, "name").empty() ? field(t, "id") : field(t, "name"), "container"};
  };
  // A container terminal with a shell to run in (a stopped or ended one has no agent).
  auto live = [](const nlohmann::json& t) {
    auto s = field(t, "status");
    return s == "running" || s == "starting" || s == "offline";
  };

  for (const auto& name : q.names) {
    bool found = false;
    for (const auto& a : agents)
      if (field(a, "id") == name || field(a, "name") == name) {
        add({field(a, "id"), field(a, "name"), "agent"});
        found = true;
        break;
      }
    for (const auto& t : terminals) {
      if (found) break;
      if (field(t, "id") != name && field(t, "name") != name) continue;
      if (field(t, "kind") == "container") add(container_target(t));
      else add({field(t, "id"), field(t, "agent_name").empty() ? field(t, "id") : field(t, "agent_name"), "agent"});
      found = true;
    }
    if (!found) {
      std::vector<std::string> names;
      for (const auto& a : agents) names.push_back(field(a, "name"));
      for (const auto& t : terminals) names.push_back(field(t, "name"));
      throw Failure("no machine or terminal '" + name + "'" + suggestion(name, names));
    }
  }
  if (q.all || !q.kind.empty() || !q.labels.empty()) {
    if (q.kind.empty() || q.kind == "agent")
      for (const auto& a : agents)
        if (field(a, "kind") != "container" && labels_match(a, q.labels)) add({field(a, "id"), field(a, "name"), "agent"});
    if (q.kind.empty() || q.kind == "container")
      for (const auto& t : terminals)
        if (field(t, "kind") == "container" && live(t) && labels_match(t, q.labels)) add(container_target(t));
  }
  if (out.empty()) throw Failure("no targets match (see rexec agents and rexec ls)");
  return out;
}

}  // namespace rx::cli
