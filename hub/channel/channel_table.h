// ChannelTable: the live Terminal of every terminal, found by its id or by the (agent, channel)
// it runs on. One insert and one erase keep both keys in step; a lookup that misses returns null
// and never adds an entry.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>

#include "hub/channel/terminal.h"

namespace rx::hub {

class ChannelTable {
 public:
  using Map = std::map<std::string, std::unique_ptr<Terminal>>;

  // Adds `t`, replacing (and destroying) an earlier Terminal of the same id and its channel key.
  Terminal& insert(std::unique_ptr<Terminal> t) {
    erase(t->id());
    by_channel_[{t->agent_id(), t->channel()}] = t->id();
    auto& slot = terminals_[t->id()];
    slot = std::move(t);
    return *slot;
  }
  // Removes the terminal and its channel key (its destructor tells its viewers); false: no such.
  bool erase(const std::string& id) {
    auto it = terminals_.find(id);
    if (it == terminals_.end()) return false;
    by_channel_.erase({it->second->agent_id(), it->second->channel()});
    terminals_.erase(it);
    return true;
  }
  Terminal* find(const std::string& id) const {
    auto it = terminals_.find(id);
    return it == terminals_.end() ? nullptr : it->second.get();
  }
  Terminal* on_channel(const std::string& agent_id, uint32_t channel) const {
    auto it = by_channel_.find({agent_id, channel});
    return it == by_channel_.end() ? nullptr : find(it->second);
  }
  size_t size() const { return terminals_.size(); }
  Map::const_iterator begin() const { return terminals_.begin(); }
  Map::const_iterator end() const { return terminals_.end(); }

 private:
  Map terminals_;
  std::map<std::pair<std::string, uint32_t>, std::string> by_channel_;  // (agent, channel) -> id
};

}  // namespace rx::hub
