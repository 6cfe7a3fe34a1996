#include "hub/docker/containers.h"

#include "hub/docker/agent_binary.h"

#include <algorithm>
#include <cmath>

#include "hub/base/json_text.h"

namespace rx::hub {

const std::vector<std::string>& container_capabilities() {
  static const std::vector<std::string> caps{"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID"};
  return caps;
}

nlohmann::json container_config(const ContainerSpec& spec, const std::string& hub_id, const std::string& agent_binary,
                                 const std::string& socket_dir, const std::string& credential_file) {
  using nlohmann::json;
  int64_t memory = int64_t(spec.memory_mb) * 1024 * 1024;
  json host{
      {"Binds",
       {agent_binary + ":" + kContainerAgent + ":ro", socket_dir + ":" + kContainerSocketDir + ":ro",
        credential_file + ":" + kContainerCredential + ":ro"}},
      {"CapDrop", {"ALL"}},
      {"CapAdd", container_capabilities()},
      {"SecurityOpt", {"no-new-privileges"}},  // and Docker's default seccomp profile (not replaced)
      {"PidsLimit", spec.pids_limit},
      {"Memory", memory},
      {"MemorySwap", memory},  // swap equal to memory: no swap on top
      {"NanoCpus", int64_t(std::llround(spec.cpus * 1e9))},
      {"Init", true},
      {"Tmpfs", {{"/tmp", "rw,nosuid,nodev,size=64m"}}},
      {"NetworkMode", spec.network == "isolated" ? kIsolatedNetwork : "none"},
      {"RestartPolicy", {{"Name", "no"}}},
  };
  return json{
      {"Image", spec.image},
      {"Entrypoint",
       {kContainerAgent, "--hub", std::string("unix:") + kContainerSocketDir + "/hub.sock", "--credential-file",
        kContainerCredential, "--name", spec.terminal_id, "--stats-cgroup", "/sys/fs/cgroup"}},
      {"Cmd", json::array()},
      {"Env", json::array()},  // nothing secret here, ever
      {"Labels", spec.pooled ? json{{kTerminalLabel, spec.terminal_id}, {kHubLabel, hub_id}, {"rexec.pool", "1"}}
                             : json{{kTerminalLabel, spec.terminal_id}, {kHubLabel, hub_id}}},
      {"Tty", false},
      {"HostConfig", host},
  };
}

Error docker_error(const DockerClient::Reply& r, const std::string& what) {
  if (r.status == 0) return make_error("docker_unavailable", "Docker is not reachable: " + r.error);
  return make_error("docker_error", what + ": " + r.error);
}

Containers::Containers(uv_loop_t* loop, std::string docker_socket, std::string hub_id, std::string agent_binary,
                       std::string socket_dir)
    : docker_(loop, std::move(docker_socket)),
      hub_id_(std::move(hub_id)),
      agent_binary_(std::move(agent_binary)),
      socket_dir_(std::move(socket_dir)) {}

void Containers::check_image(const std::string& image, std::function<void(Status)> done) {
  docker_.request("GET", docker_path({"images", image, "json"}), "", [image, done = std::move(done)](DockerClient::Reply r) {
    if (r.ok()) return done(Ok{});
    if (r.status == 404) return done(make_error("image_not_found", "no local image \"" + image + "\" (see make images)"));
    done(docker_error(r, "inspecting image " + image));
  }, 5000);
}

void Containers::ensure_isolated_network(std::function<void(Status)> done) {
  // A bridge with inter-container traffic off; 409 means it is there already.
  nlohmann::json body{{"Name", kIsolatedNetwork},
                      {"Driver", "bridge"},
                      {"CheckDuplicate", true},
                      {"Labels", {{"rexec.network", "isolated"}}},
                      {"Options", {{"com.docker.network.bridge.enable_icc", "false"}}}};
  docker_.request("POST", docker_path({"networks", "create"}), json_text(body), [done = std::move(done)](DockerClient::Reply r) {
    if (r.ok() || r.status == 409) return done(Ok{});
    done(docker_error(r, "creating network rexec-isolated"));
  });
}

void Containers::launch(const ContainerSpec& spec, const std::string& credential_file,
                        std::function<void(Result<std::string>)> done) {
  if (auto usable = check_agent_binary(agent_binary_); !usable) return done(usable.error());
  auto create = [this, spec, credential_file, done]() {
    auto body = json_text(container_config(spec, hub_id_, agent_binary_, socket_dir_, credential_file));
    docker_.request("POST", docker_path({"containers", "create"}, "name=" + percent_encode("rexec-" + spec.terminal_id)), body, [this, done](DockerClient::Reply r) {
      if (!r.ok()) return done(docker_error(r, "creating the container"));
      auto j = nlohmann::json::parse(r.body, nullptr, false);
      std::string id = j.is_object() ? j.value("Id", "") : "";
      if (id.empty()) return done(make_error("docker_error", "Docker created a container without an id"));
      docker_.request("POST", docker_path({"containers", id, "start"}), "", [this, id, done](DockerClient::Reply s) {
        if (s.ok() || s.status == 304) return done(id);
        Error e = docker_error(s, "starting the container");
        remove(id, [](Status) {});  // do not leave a created-but-dead container behind
        done(e);
      });
    });
  };
  if (spec.network != "isolated") return create();
  ensure_isolated_network([create, done](Status s) {
    if (!s) return done(s.error());
    create();
  });
}

void Containers::stop(const std::string& container_id, std::function<void(Status)> done) {
  // SIGTERM, then SIGKILL after 5 s; 304 = already stopped.
  docker_.request("POST", docker_path({"containers", container_id, "stop"}, "t=5"), "", [done = std::move(done)](DockerClient::Reply r) {
    if (r.ok() || r.status == 304) return done(Ok{});
    done(docker_error(r, "stopping the container"));
  }, 20000);
}

void Containers::start(const std::string& container_id, std::function<void(Status)> done) {
  docker_.request("POST", docker_path({"containers", container_id, "start"}), "", [done = std::move(done)](DockerClient::Reply r) {
    if (r.ok() || r.status == 304) return done(Ok{});
    done(docker_error(r, "starting the container"));
  });
}

void Containers::remove(const std::string& container_id, std::function<void(Status)> done) {
  docker_.request("DELETE", docker_path({"containers", container_id}, "force=true&v=true"), "", [done = std::move(done)](DockerClient::Reply r) {
    if (r.ok() || r.status == 404) return done(Ok{});
    done(docker_error(r, "removing the container"));
  });
}

void Containers::list_images(std::function<void(Result<nlohmann::json>)> done) {
  docker_.request("GET", docker_path({"images", "json"}), "", [done = std::move(done)](DockerClient::Reply r) {
    if (!r.ok()) return done(docker_error(r, "cannot list images"));
    auto all = nlohmann::json::parse(r.body, nullptr, false);
    if (!all.is_array()) return done(make_error("docker_error", "Docker answered the image list with something else"));
    nlohmann::json out = nlohmann::json::array();
    for (const auto& img : all) {
      nlohmann::json tags = nlohmann::json::array();
      if (img.contains("RepoTags") && img["RepoTags"].is_array())
        for (const auto& t : img["RepoTags"])
          if (t.is_string() && t.get<std::string>() != "<none>:<none>") tags.push_back(t);
      if (tags.empty()) continue;  // untagged layers are nothing to start a terminal from
      out.push_back({{"id", img.value("Id", "")}, {"tags", tags}, {"size", img.value("Size", int64_t(0))},
                     {"created", img.value("Created", int64_t(0))}});
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a["created"] > b["created"]; });
    done(std::move(out));
  });
}

}  // namespace rx::hub
