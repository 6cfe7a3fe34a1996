// ContainerSupervisor: keeps the store and Docker in agreement about container terminals. At
// start and every few seconds it lists the containers labelled rexec.terminal and
//  - removes a container whose terminal no longer exists (left by a crash between steps),
//  - marks a terminal lost, with the reason, when its container is gone or stopped (OOM-killed,
//    exited with a code, removed by someone else).
// Docker being away is not an error here: the next sweep tries again.
#pragma once

#include <uv.h>

#include "hub/base/timer.h"
#include "hub/channel/relay.h"
#include "hub/docker/containers.h"
#include "hub/store/store.h"

namespace rx::hub {

class ContainerSupervisor {
 public:
  ContainerSupervisor(uv_loop_t* loop, Store& store, Relay& relay, Containers& containers, uint64_t every_ms = 3000);
  // Terminal ids whose containers exist without a row on purpose (the warm pool's).
  void set_expected(std::function<bool(const std::string&)> expected) { expected_ = std::move(expected); }
  // Told after each sweep that judged Docker's list (rexec_container_sweeps_total): what a test
  // waits for to know a sweep saw a state, instead of sleeping.
  void set_on_swept(std::function<void()> on_swept) { on_swept_ = std::move(on_swept); }
  void start();
  void stop();  // the hub is stopping: no more sweeps

 private:
  void sweep();
  void judge(const nlohmann::json& containers, uint64_t restarts_before);
  Store& store_;
  Relay& relay_;
  Containers& containers_;
  uint64_t every_ms_;
  bool busy_ = false;
  bool stopped_ = false;
  bool docker_was_away_ = false;
  Timer timer_;
  std::function<bool(const std::string&)> expected_;
  std::function<void()> on_swept_;
};

}  // namespace rx::hub
