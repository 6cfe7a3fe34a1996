// A container terminal's own agent: an agent record of kind "container" and its credential in a
// 0600 file under DATA/containers/<agent id>/ (mounted read-only into the container, never put
// in its environment). Made for each cold create and for each warm-pool container; discarded
// (revoked, file removed) when its container fails to start or its terminal is deleted.
#pragma once

#include <string>

#include "hub/store/store.h"

namespace rx::hub {

struct ContainerAgent {
  AgentRecord agent;
  std::string credential_file;
};

std::string container_agent_dir(const std::string& data_dir, const std::string& agent_id);
Result<ContainerAgent> create_container_agent(Store& store, const std::string& data_dir, const std::string& owner_id,
                                              const std::string& name_prefix);
void discard_container_agent(Store& store, const std::string& data_dir, const std::string& agent_id);

}  // namespace rx::hub
