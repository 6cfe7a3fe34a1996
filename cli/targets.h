// Finding what a command names: a terminal by id or name (with close names suggested on a miss),
// and the targets of an exec fan-out (ids, names, --all, --kind, --label).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/hub_client.h"

namespace rx::cli {

// The terminal `id_or_name` names among the caller's; a Failure suggesting close names if none.
nlohmann::json find_terminal(HubClient& hub, const std::string& id_or_name);

// Up to three names within a small edit distance of `name` (or that it is a prefix of).
std::vector<std::string> close_names(const std::string& name, const std::vector<std::string>& candidates);

struct ExecTarget {
  std::string id;    // what the hub is given: an agent id, or a container terminal's id
  std::string name;  // what the user sees in prefixes and summaries
  std::string kind;  // "agent" or "container"
};

struct TargetQuery {
  std::vector<std::string> names;  // ids or names of machines or terminals
  bool all = false;
  std::string kind;                               // "", "agent" or "container"
  std::map<std::string, std::string> labels;      // every one must match
};

// Machines from GET /agents, container terminals from GET /terminals (their own agents are the
// hub's and not listed). Named targets must exist; --all/--kind/--label select among the rest.
// A Failure when nothing matches.
std::vector<ExecTarget> select_targets(HubClient& hub, const TargetQuery& query);

}  // namespace rx::cli
