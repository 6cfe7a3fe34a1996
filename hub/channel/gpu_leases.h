// GpuLeases: who holds which GPU of which machine. A lease belongs to a terminal (or one exec
// run) and a user; it is in the store, so it survives a hub restart, and ends with its holder
// (exit, delete, agent revoked), when given back, or when idle too long (idle release). This
// class decides what a request may have (busy GPUs, other people's reservations), keeps the
// store and its own map in step, and tells a listener of every lease and release so the API can
// audit them and the events feed can show them. Everything runs on the hub's loop thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <variant>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hub/store/store.h"
#include "hub/store/write_behind.h"
#include "protocol/frame.h"

namespace rx::hub {

// The GPUs an agent reported in its last HELLO (AgentRecord::host_json) and its policy.
struct HostGpu {
  uint32_t index = 0;
  std::string uuid;
};
struct MachineGpus {
  std::vector<HostGpu> gpus;
  bool lease_required = false;  // gpu_policy "lease-required": no lease, no GPU
  bool has(uint32_t index) const;
  std::string index_range() const;  // "0-3", "0, 2", or "none"
  // unknown_gpu naming the first of `wanted` the machine `name` lacks, and what it has; Ok if none.
  Status check(const std::vector<uint32_t>& wanted, const std::string& name) const;
};
MachineGpus machine_gpus(const AgentRecord& agent);

// The environment of a process on `machine` holding `leased` (docs/gpu.md): CUDA_VISIBLE_DEVICES
// by nvidia-smi index (with CUDA_DEVICE_ORDER=PCI_BUS_ID so CUDA counts the same way),
// NVIDIA_VISIBLE_DEVICES by UUID, REXEC_GPUS. Without a lease on a lease-required machine: no
// GPU visible. Otherwise nothing.
std::map<std::string, std::string> gpu_env(const MachineGpus& machine, const std::vector<uint32_t>& leased);

// A request refused: the API's error code (gpu_busy, gpu_reserved: 409; unknown_gpu: 400), a
// message naming whom, and the details as JSON ("holder" or "reservation").
struct GpuRefusal {
  std::string code;
  std::string message;
  nlohmann::json detail = nlohmann::json::object();
};

// What happened, for the audit log and the events feed. event: lease, release, idle_warning.
struct GpuEvent {
  std::string event;
  std::string agent_id;
  std::vector<uint32_t> gpus;
  std::string user_id;
  std::string holder;
  std::string why;  // release: "exited", "deleted", "revoked", "returned", "idle", "restart"
};

class GpuLeases {
 public:
  explicit GpuLeases(Store& store) : store_(store), writes_(store) {}
  // Ending a lease is bookkeeping: it must reach the store, but not hold up the loop.
  WriteBehind& writes() { return writes_; }

  // Leases the store has, except those whose holder is not in `live` (ended while the hub was down;
  // exec runs never outlive the hub): those are deleted.
  Status load(const std::set<std::string>& live);
  // Idle release: a lease whose GPUs all stayed at 0 % for `after` seconds is warned, then
  // released `grace` seconds later unless one got busy. after = 0: never.
  void configure_idle(int64_t after, int64_t grace) {
    idle_after_ = after;
    idle_grace_ = grace;
  }
  void set_listener(std::function<void(const GpuEvent&)> listener) { listener_ = std::move(listener); }

  // The GPUs `user_id` may lease now: the ones `wanted`, or `count` free ones (lowest first).
  // Refused when one is held (gpu_busy), inside another user's reservation (gpu_reserved), not on
  // the machine (unknown_gpu), or when fewer than `count` are free (gpu_busy).
  std::variant<std::vector<uint32_t>, GpuRefusal> choose(const AgentRecord& agent, const std::string& user_id,
                                                         const std::optional<std::vector<uint32_t>>& wanted,
                                                         std::optional<uint32_t> count, int64_t now);
  // Takes the GPUs for `holder` (all or nothing; gpu_busy if one was taken meanwhile).
  Status acquire(const std::string& agent_id, const std::vector<uint32_t>& gpus, const std::string& holder,
                 const std::string& user_id, int64_t now);
  // Ends the leases of a holder (or a machine's); quiet when there are none.
  void release_holder(const std::string& holder, const std::string& why);
  void release_agent(const std::string& agent_id, const std::string& why);

  std::optional<LeaseRecord> lease(const std::string& agent_id, uint32_t gpu) const;
  std::vector<uint32_t> gpus_of(const std::string& holder) const;
  // Since when a leased GPU has been at 0 % in every sample, if it has.
  std::optional<int64_t> idle_since(const std::string& agent_id, uint32_t gpu) const;

  // From the agent's STATS: a GPU at 0 % starts (or goes on with) its idle time, above 0 % ends it.
  void on_stats(const std::string& agent_id, const protocol::Stats& stats, int64_t now);
  // Once a second: warns and releases idle leases.
  void tick(int64_t now);

 private:
  // Idle is what the samples say, never an absence of them: the clock starts at the first 0 %
  // sample, a busy sample stops it, and it stands still while no samples come (agent offline,
  // nvidia-smi failing).
  struct Live {
    LeaseRecord record;
    std::optional<int64_t> idle_from;  // first of an unbroken run of 0 % samples
    int64_t sampled_at = 0;            // the latest sample of its GPU
    std::optional<int64_t> warned_at;  // idle warning sent
  };
  static constexpr int64_t kSampleStale = 30;  // seconds without a sample: idle time stops counting
  void emit(GpuEvent e) {
    if (listener_) listener_(e);
  }
  std::string user_name(const std::string& user_id);

  Store& store_;
  WriteBehind writes_;
  std::map<std::pair<std::string, uint32_t>, Live> leases_;  // (agent, gpu)
  int64_t idle_after_ = 0;
  int64_t idle_grace_ = 600;
  std::function<void(const GpuEvent&)> listener_;
};

}  // namespace rx::hub
