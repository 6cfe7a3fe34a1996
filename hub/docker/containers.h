// Containers: the Docker side of container terminals. A container terminal is a hardened
// container from any local image whose entrypoint is the static rexec-agent, bind-mounted
// read-only; the agent reaches the hub through the hub's unix socket, bind-mounted too, so the
// container needs no network. Its credential is a 0600 file mounted read-only, never an
// environment variable. Every call is asynchronous (DockerClient) and reports Docker's state as
// the API's errors: docker_unavailable (503), image_not_found (400).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hub/docker/docker.h"
#include "protocol/error.h"

namespace rx::hub {

struct ContainerSpec {
  std::string terminal_id;
  std::string image;
  std::string network = "none";  // "none" or "isolated"
  double cpus = 1.0;
  int memory_mb = 512;
  int pids_limit = 256;
  bool pooled = false;  // started ahead by the warm pool (label rexec.pool=1)
};

// Where things are inside the container.
inline constexpr const char* kContainerAgent = "/run/rexec/rexec-agent";
inline constexpr const char* kContainerSocketDir = "/run/rexec/hub";
inline constexpr const char* kContainerCredential = "/run/rexec/credential";
inline constexpr const char* kIsolatedNetwork = "rexec-isolated";
inline constexpr const char* kTerminalLabel = "rexec.terminal";
inline constexpr const char* kHubLabel = "rexec.hub";  // which hub owns it: hubs sharing a Docker host leave each other's alone

// Capabilities a login shell needs back after dropping all (docs/containers.md says why each).
const std::vector<std::string>& container_capabilities();

// The body of POST /containers/create: every hardening setting in one place (tested without Docker).
nlohmann::json container_config(const ContainerSpec& spec, const std::string& hub_id, const std::string& agent_binary,
                                 const std::string& socket_dir, const std::string& credential_file);

class Containers {
 public:
  // `hub_id`: this hub's own label value (stable across restarts, kept in its data directory).
  Containers(uv_loop_t* loop, std::string docker_socket, std::string hub_id, std::string agent_binary, std::string socket_dir);
  const std::string& hub_id() const { return hub_id_; }
  const std::string& agent_binary() const { return agent_binary_; }

  void check_image(const std::string& image, std::function<void(Status)> done);
  // Creates and starts; the container's id. Refused (agent_binary_missing) before any Docker call
  // when the agent binary would not run in it.
  void launch(const ContainerSpec& spec, const std::string& credential_file, std::function<void(Result<std::string>)> done);
  void stop(const std::string& container_id, std::function<void(Status)> done);
  void start(const std::string& container_id, std::function<void(Status)> done);
  // Force-removes (a container already gone counts as removed).
  void remove(const std::string& container_id, std::function<void(Status)> done);
  // The daemon's tagged images: [{"id", "tags", "size", "created"}], newest first.
  void list_images(std::function<void(Result<nlohmann::json>)> done);
  DockerClient& docker() { return docker_; }

 private:
  void ensure_isolated_network(std::function<void(Status)> done);
  DockerClient docker_;
  std::string hub_id_;
  std::string agent_binary_;
  std::string socket_dir_;
};

// A Docker reply as the API's error: docker_unavailable when Docker could not be reached.
Error docker_error(const DockerClient::Reply& reply, const std::string& what);

}  // namespace rx::hub
