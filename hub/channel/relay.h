// Relay: the hub's live core, the agent link's one handler. It turns agent-link frames into
// terminal state and API calls into frames, over three tables it owns: the agents online
// (AgentRegistry), the live Terminal of every terminal (ChannelTable) and the exec runs in
// flight (ExecFanout). It decides a terminal's life: created, attached, lost, stopped, restarted,
// deleted, and what the store remembers of it. Everything runs on the hub's one loop thread.
// Data flow: AgentSession (link) -> Relay -> Terminal -> its sinks (viewers).
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hub/channel/agent_registry.h"
#include "hub/channel/channel_table.h"
#include "hub/channel/exec_fanout.h"
#include "hub/channel/file_transfer.h"
#include "hub/channel/gpu_leases.h"
#include "hub/channel/terminal.h"
#include "hub/link/agent_link.h"
#include "hub/store/store.h"
#include "hub/store/write_behind.h"
#include "protocol/codec.h"
#include "protocol/frame.h"

namespace rx::hub {

// Plain counters on the hot path, copied into /metrics when it is read.
struct RelayCounters {
  uint64_t output_bytes = 0;    // agent -> hub (terminal and exec output)
  uint64_t input_bytes = 0;     // viewers -> agents (typed input)
  uint64_t frames_dropped = 0;  // input from read-only viewers, input with the buffer full, frames for unknown channels
};

// What a new terminal's recording keeps (POST /api/v1/terminals "record", "record_input").
struct RecordChoice {
  bool output = true;
  bool input = false;
};

class Relay final : public LinkHandler {
 public:
  Relay(Store& store, uv_loop_t* loop);
  ~Relay();

  // Terminals the store remembers come back as offline, waiting for their agents.
  Status load();

  // --- agent links ---
  // After a valid HELLO: what to answer. Replaces an older link of the same agent.
  protocol::Welcome agent_hello(AgentLink& link, const protocol::Hello& hello,
                                const std::optional<std::string>& new_credential) override;
  // After WELCOME went out: reattach the channels the agent still has, close the rest.
  void agent_ready(AgentLink& link, const protocol::Hello& hello) override;
  void agent_frame(AgentLink& link, const protocol::Frame& frame) override;
  void agent_data(AgentLink& link, const protocol::DataView& data) override;
  void agent_gone(AgentLink& link) override;
  bool online(const std::string& agent_id) const { return agents_.online(agent_id); }
  std::optional<protocol::Stats> latest_stats(const std::string& agent_id) const { return agents_.stats(agent_id); }
  // Told of every STATS sample as it arrives (the dashboard's events feed).
  void set_stats_listener(std::function<void(const std::string& agent_id, const protocol::Stats&)> listener) {
    stats_listener_ = std::move(listener);
  }
  void revoke_agent(const std::string& agent_id);
  // Told of every live Terminal as it is made: created, loaded at start, restarted (a container
  // started again gets a new one). What sinks above the channel layer (the recorder) attach by.
  using LiveListener = std::function<void(Terminal&, const TerminalRecord&)>;
  void set_live_listener(LiveListener listener) { live_listener_ = std::move(listener); }

  // --- terminals ---
  // `id`: the terminal's id when the caller needs it ahead (GPU leases are taken first); empty: new.
  Result<TerminalRecord> create_terminal(const User& owner, const AgentRecord& agent, const std::string& name,
                                         uint16_t cols, uint16_t rows, const std::map<std::string, std::string>& env,
                                         const RunAs& as = {}, const std::string& id = "", RecordChoice record = {});
  // A container terminal: its agent is not there yet (the container is being started); the
  // OPEN goes out when that agent says HELLO.
  // `id`: the terminal's id when the container was made for it ahead (warm pool); empty: new.
  // When that agent is online already (a warm container), the OPEN goes at once.
  Result<TerminalRecord> create_container_terminal(const User& owner, const AgentRecord& agent, const std::string& image,
                                                   const std::string& name, uint16_t cols, uint16_t rows,
                                                   const std::map<std::string, std::string>& env,
                                                   const std::string& id = "", RecordChoice record = {});
  Terminal* terminal(const std::string& id);
  // From the hub's housekeeping (once a second): each terminal looks for viewers that stalled.
  void tick() {
    for (const auto& [id, t] : channels_) t->tick();
  }
  // The terminal on an agent's channel (who runs a process the agent reports), if any.
  std::optional<std::string> terminal_on(const std::string& agent_id, uint32_t channel) const;
  // GPU leases: a terminal's end for good ("exited", "lost", "deleted") or its agent's revocation
  // ends its leases; STATS keep them from idling out.
  GpuLeases& gpus() { return gpus_; }
  const GpuLeases& gpus() const { return gpus_; }
  // The terminal cannot come back (its container is gone, say): viewers are told, the store
  // keeps the reason.
  void mark_lost(const std::string& id, const std::string& reason);
  // Container stop/start: a stopped terminal waits; a started one gets a new shell on a new
  // channel (viewers are closed and attach again; offsets start over).
  void mark_stopped(const std::string& id);
  Status restart_container_terminal(const std::string& id);
  Status delete_terminal(const std::string& id);
  // A container terminal whose container is being removed: its container going away is expected
  // (the supervisor must not call it lost meanwhile). Cleared by delete_terminal, or by hand when
  // the removal failed.
  void set_deleting(const std::string& id, bool on) { on ? (void)deleting_.insert(id) : (void)deleting_.erase(id); }
  bool deleting(const std::string& id) const { return deleting_.count(id) > 0; }
  // A container terminal being started again: until Docker has answered the start, its container
  // still shows the state it stopped in, so it counts as restarted for every sweep. The answer
  // numbers the restart: a sweep that began before it saw the old, stopped container and must not
  // judge the new one by it.
  uint64_t restarts() const { return restarts_; }
  bool restarted_since(const std::string& id, uint64_t mark) const {
    if (start_in_flight_.count(id)) return true;
    auto it = restarted_at_.find(id);
    return it != restarted_at_.end() && it->second > mark;
  }
  void container_starting(const std::string& id) { start_in_flight_.insert(id); }
  // Docker answered the start (either way).
  void container_started(const std::string& id) {
    start_in_flight_.erase(id);
    restarted_at_[id] = ++restarts_;
  }
  // The status to show: the store's, or "offline" while the agent is away.
  std::string status_of(const TerminalRecord& record) const;

  // --- viewers ---
  // Open viewer sockets per (terminal, user), for the per-user cap; ViewerSession counts itself.
  void viewer_opened(const std::string& terminal_id, const std::string& user_id) {
    ++viewer_sockets_[{terminal_id, user_id}];
  }
  void viewer_closed(const std::string& terminal_id, const std::string& user_id) {
    auto it = viewer_sockets_.find({terminal_id, user_id});
    if (it != viewer_sockets_.end() && --it->second <= 0) viewer_sockets_.erase(it);
  }
  int viewer_sockets(const std::string& terminal_id, const std::string& user_id) const {
    auto it = viewer_sockets_.find({terminal_id, user_id});
    return it == viewer_sockets_.end() ? 0 : it->second;
  }
  size_t viewer_count() const;

  Store& store() { return store_; }
  // Bookkeeping writes that must land but must not hold up the loop (write_behind.h).
  WriteBehind& writes() { return writes_; }
  // Where those writes wait when the database is locked (main.cpp makes one; tests may not).
  void use(StoreThread* thread);
  RelayCounters& counters() { return counters_; }
  size_t online_count() const { return agents_.online_count(); }

  // --- exec fan-out ---
  ExecFanout& fanout() { return fanout_; }
  // --- file channels (docs/files.md) ---
  FileTransfers& files() { return files_; }
  // The OPEN of a pty terminal with this environment fits the agent link's limits; else
  // too_large naming the field and the limit.
  static Status pty_open_ok(const std::map<std::string, std::string>& env);

 private:
  void on_terminal_frame(AgentLink& link, Terminal& t, const protocol::Frame& frame);
  // A new pty terminal: a fresh channel on its agent, recorded, live; its OPEN goes now when the
  // agent is online, else when it next says HELLO.
  Result<TerminalRecord> add_terminal(TerminalRecord t, const std::map<std::string, std::string>& env,
                                      const RunAs& as = {});
  static protocol::Open pty_open(uint32_t channel, int cols, int rows, const std::map<std::string, std::string>& env,
                                 const RunAs& as = {});
  void ended(const std::string& id, const std::string& why) { gpus_.release_holder(id, why); }
  // The live Terminal (starting) of `id` on that channel, replacing any earlier one.
  // The live Terminal of `t` on `channel` (new, loaded, or restarted), told to the live listener.
  void make_live(const TerminalRecord& t, uint32_t channel, TerminalStatus status);

  Store& store_;
  WriteBehind writes_;
  AgentRegistry agents_;
  ChannelTable channels_;
  ExecFanout fanout_;
  FileTransfers files_;
  std::map<std::pair<std::string, std::string>, int> viewer_sockets_;
  std::map<std::string, protocol::Open> pending_open_;  // terminal id -> OPEN waiting for its agent
  std::set<std::string> deleting_;
  uint64_t restarts_ = 0;
  std::map<std::string, uint64_t> restarted_at_;  // terminal id -> number of its latest restart
  std::set<std::string> start_in_flight_;          // restarted, Docker's start not answered yet
  RelayCounters counters_;
  std::function<void(const std::string&, const protocol::Stats&)> stats_listener_;
  LiveListener live_listener_;
  GpuLeases gpus_;
};

}  // namespace rx::hub
