#include "hub/docker/container_agent.h"

#include <filesystem>
#include <system_error>

#include "hub/base/secret_file.h"
#include "hub/base/tokens.h"

namespace rx::hub {

std::string container_agent_dir(const std::string& data_dir, const std::string& agent_id) {
  return data_dir + "/containers/" + agent_id;
}

Result<ContainerAgent> create_container_agent(Store& store, const std::string& data_dir, const std::string& owner_id,
                                              const std::string& name_prefix) {
  std::string credential = new_token(TokenKind::kAgentCredential);
  auto agent = store.create_agent(owner_id, name_prefix + new_id("").substr(0, 8), token_hash(credential), "container");
  if (!agent) return agent.error();
  std::string dir = container_agent_dir(data_dir, agent->id);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  if (auto w = write_secret_file(dir + "/credential", credential); !w) return w.error();
  return ContainerAgent{*agent, dir + "/credential"};
}

void discard_container_agent(Store& store, const std::string& data_dir, const std::string& agent_id) {
  (void)store.revoke_agent(agent_id);
  std::error_code ec;
  std::filesystem::remove_all(container_agent_dir(data_dir, agent_id), ec);
}

}  // namespace rx::hub
