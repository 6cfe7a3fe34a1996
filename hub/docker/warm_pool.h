// WarmPool: containers started ahead of need, so opening a card does not wait for `docker
// create` + `start` + the agent's HELLO. Per image (config warm-pool = IMAGE=N,...), N containers
// run the agent with default limits and no network, each already online with its own credential
// and an id for the terminal it will become. take() hands one over (the caller makes the
// terminal on it) and a replacement starts. Pool containers carry rexec.pool=1; after a hub
// restart they are orphans to the supervisor and get replaced.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "hub/channel/relay.h"
#include "hub/docker/containers.h"
#include "hub/store/store.h"

namespace rx::hub {

struct WarmContainer {
  std::string terminal_id;  // the id its terminal will have (the container's name and label)
  std::string agent_id;
  std::string container_id;
  std::string image;
};

// "rexec/debian:12=2,rexec/busybox:latest=1" -> {image: count}; errors name the bad part.
Result<std::map<std::string, int>> parse_warm_pool(const std::string& spec);

class WarmPool {
 public:
  WarmPool(Store& store, Relay& relay, Containers& containers, std::string data_dir, std::string owner_id,
           std::map<std::string, int> sizes);
  void fill();  // starts what is missing; call at start and after each take()
  // A ready container of `image` (its agent online), or nullopt.
  std::optional<WarmContainer> take(const std::string& image);
  bool holds(const std::string& terminal_id) const { return terminal_ids_.count(terminal_id) > 0; }

 private:
  void start_one(const std::string& image);
  Store& store_;
  Relay& relay_;
  Containers& containers_;
  std::string data_dir_;
  std::string owner_id_;
  std::map<std::string, int> sizes_;
  std::map<std::string, std::vector<WarmContainer>> warm_;  // started, by image
  std::map<std::string, int> starting_;
  std::set<std::string> terminal_ids_;  // every id the pool holds or is starting
};

}  // namespace rx::hub
