// AgentRegistry: which agents are online (their one live link each) and the last STATS sample
// each sent. The relay and the exec fan-out look agents up here; nothing else is kept.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "hub/link/agent_link.h"
#include "protocol/frame.h"

namespace rx::hub {

class AgentRegistry {
 public:
  // The agent's live link, or null while it is away.
  AgentLink* link(const std::string& agent_id) const {
    auto it = online_.find(agent_id);
    return it == online_.end() ? nullptr : it->second;
  }
  bool online(const std::string& agent_id) const { return online_.count(agent_id) > 0; }
  size_t online_count() const { return online_.size(); }
  // Registers `link` as its agent's; returns the older link it replaces (null: none, or itself).
  AgentLink* put(AgentLink& link) {
    AgentLink*& slot = online_[link.agent().id];
    AgentLink* old = slot == &link ? nullptr : slot;
    slot = &link;
    return old;
  }
  // Unregisters `link`; false when it was not its agent's live link (replaced already).
  bool remove(AgentLink& link) {
    auto it = online_.find(link.agent().id);
    if (it == online_.end() || it->second != &link) return false;
    online_.erase(it);
    return true;
  }

  void set_stats(const std::string& agent_id, const protocol::Stats& s) { stats_[agent_id] = s; }
  std::optional<protocol::Stats> stats(const std::string& agent_id) const {
    auto it = stats_.find(agent_id);
    if (it == stats_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::map<std::string, AgentLink*> online_;
  std::map<std::string, protocol::Stats> stats_;
};

}  // namespace rx::hub
