#include "hub/docker/warm_pool.h"

#include "hub/base/tokens.h"
#include "hub/docker/container_agent.h"
#include "hub/docker/image_ref.h"
#include "protocol/log_line.h"

namespace rx::hub {

Result<std::map<std::string, int>> parse_warm_pool(const std::string& spec) {
  std::map<std::string, int> out;
  size_t pos = 0;
  while (pos < spec.size()) {
    auto comma = spec.find(',', pos);
    std::string part = spec.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? spec.size() : comma + 1;
    if (part.empty()) continue;
    auto eq = part.rfind('=');
    int n = eq == std::string::npos ? -1 : std::atoi(part.c_str() + eq + 1);
    if (eq == 0 || eq == std::string::npos || n < 0 || n > 100 || part.find_first_not_of("0123456789", eq + 1) != std::string::npos)
      return make_error("bad_config", "warm-pool: \"" + part + "\" is not IMAGE=COUNT (0..100)");
    if (auto s = check_image_ref(part.substr(0, eq), "warm-pool"); !s) return make_error("bad_config", s.error().message);
    out[part.substr(0, eq)] = n;
  }
  return out;
}

WarmPool::WarmPool(Store& store, Relay& relay, Containers& containers, std::string data_dir, std::string owner_id,
                   std::map<std::string, int> sizes)
    : store_(store),
      relay_(relay),
      containers_(containers),
      data_dir_(std::move(data_dir)),
      owner_id_(std::move(owner_id)),
      sizes_(std::move(sizes)) {}

void WarmPool::fill() {
  for (const auto& [image, want] : sizes_) {
    int have = int(warm_[image].size()) + starting_[image];
    for (int i = have; i < want; ++i) start_one(image);
  }
}

void WarmPool::start_one(const std::string& image) {
  auto made = create_container_agent(store_, data_dir_, owner_id_, "warm-");
  if (!made) return log("warn", "pool.failed", {{"reason", made.error().message}});
  ContainerSpec spec;
  spec.terminal_id = new_id("t_");
  spec.image = image;
  spec.pooled = true;
  terminal_ids_.insert(spec.terminal_id);
  ++starting_[image];
  containers_.launch(spec, made->credential_file, [this, spec, agent = made->agent](Result<std::string> id) {
    --starting_[spec.image];
    if (!id) {
      terminal_ids_.erase(spec.terminal_id);
      discard_container_agent(store_, data_dir_, agent.id);
      log("warn", "pool.start_failed", {{"image", spec.image}, {"reason", id.error().message}});
      return;  // not retried at once: Docker may be away; the next take() or fill() tries again
    }
    warm_[spec.image].push_back({spec.terminal_id, agent.id, *id, spec.image});
    log("info", "pool.started", {{"image", spec.image}, {"container", id->substr(0, 12)}});
  });
}

std::optional<WarmContainer> WarmPool::take(const std::string& image) {
  auto it = warm_.find(image);
  if (it == warm_.end()) return std::nullopt;
  for (auto w = it->second.begin(); w != it->second.end(); ++w) {
    if (!relay_.online(w->agent_id)) continue;  // not said HELLO yet
    WarmContainer taken = *w;
    it->second.erase(w);
    terminal_ids_.erase(taken.terminal_id);
    fill();
    return taken;
  }
  return std::nullopt;
}

}  // namespace rx::hub
