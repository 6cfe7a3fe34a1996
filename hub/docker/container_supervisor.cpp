#include "hub/docker/container_supervisor.h"

#include <map>

#include "hub/base/json_text.h"
#include "protocol/log_line.h"

namespace rx::hub {

ContainerSupervisor::ContainerSupervisor(uv_loop_t* loop, Store& store, Relay& relay, Containers& containers,
                                         uint64_t every_ms)
    : store_(store), relay_(relay), containers_(containers), every_ms_(every_ms), timer_(loop, [this] { sweep(); }) {}

void ContainerSupervisor::start() { sweep(); }

void ContainerSupervisor::stop() {
  stopped_ = true;
  timer_.stop();
}

void ContainerSupervisor::sweep() {
  if (busy_ || stopped_) return;
  busy_ = true;
  // Only this hub's containers: filters={"label":["rexec.hub=ID"]}.
  nlohmann::json filters{{"label", {std::string(kHubLabel) + "=" + containers_.hub_id()}}};
  containers_.docker().request(
      "GET", docker_path({"containers", "json"}, "all=true&filters=" + percent_encode(json_text(filters))), "",
      [this, restarts_before = relay_.restarts()](DockerClient::Reply r) {
        busy_ = false;
        if (!stopped_) timer_.start(every_ms_);
        if (!r.ok()) {
          if (!docker_was_away_) log("warn", "containers.docker_away", {{"reason", r.error}});
          docker_was_away_ = true;
          return;
        }
        if (docker_was_away_) log("info", "containers.docker_back");
        docker_was_away_ = false;
        auto list = nlohmann::json::parse(r.body, nullptr, false);
        if (!list.is_array()) return;
        judge(list, restarts_before);
        if (on_swept_) on_swept_();
      },
      10000);
}

void ContainerSupervisor::judge(const nlohmann::json& list, uint64_t restarts_before) {
  struct Seen {
    std::string id;
    std::string state;
  };
  std::map<std::string, Seen> by_terminal;
  for (const auto& c : list) {
    if (!c.is_object() || !c.contains("Labels") || !c["Labels"].is_object()) continue;
    std::string terminal = c["Labels"].value(kTerminalLabel, "");
    if (!terminal.empty()) by_terminal[terminal] = {c.value("Id", ""), c.value("State", "")};
  }
  auto rows = store_.list_terminals(TerminalFilter{"container", ""});
  if (!rows) return;
  std::map<std::string, const TerminalRecord*> mine;
  for (const auto& t : *rows) mine[t.id] = &t;
  // Containers without a terminal: leftovers of a crash between steps. Remove them.
  for (const auto& [terminal, seen] : by_terminal) {
    if (mine.count(terminal) || (expected_ && expected_(terminal))) continue;
    log("warn", "containers.orphan_removed", {{"terminal", terminal}, {"container", seen.id.substr(0, 12)}});
    containers_.remove(seen.id, [](Status) {});
  }
  // Terminals whose container is gone or stopped: lost, with the reason Docker gives.
  for (const auto& [id, t] : mine) {
    if (t->status == "lost" || t->status == "exited" || t->status == "stopped" || t->container_id.empty() ||
        relay_.deleting(id) || relay_.restarted_since(id, restarts_before))
      continue;
    auto it = by_terminal.find(id);
    if (it == by_terminal.end()) {
      relay_.mark_lost(id, "its container is gone");
      continue;
    }
    if (it->second.state == "running" || it->second.state == "created" || it->second.state == "restarting") continue;
    containers_.docker().request("GET", docker_path({"containers", it->second.id, "json"}), "", [this, id = id, restarts_before](DockerClient::Reply r) {
      // Started again while Docker answered: what it said is about the stopped container.
      if (relay_.restarted_since(id, restarts_before)) return;
      if (auto now = store_.terminal_by_id(id); now && *now && (*now)->status == "stopped") return;  // stopped meanwhile
      auto j = nlohmann::json::parse(r.body, nullptr, false);
      std::string reason = "its container stopped";
      if (r.ok() && j.is_object() && j.contains("State")) {
        const auto& st = j["State"];
        if (st.value("OOMKilled", false)) reason = "its container was OOM-killed (memory limit)";
        else reason = "its container exited with code " + std::to_string(st.value("ExitCode", -1));
      }
      if (!relay_.deleting(id)) relay_.mark_lost(id, reason);
    });
  }
}

}  // namespace rx::hub
