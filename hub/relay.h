// Relay: the hub's live core. It knows which agents are online (one AgentSession each), the live
// Terminal of every terminal, and the exec runs in flight; it turns agent-link frames into
// terminal state and API calls into frames. Everything runs on the hub's one loop thread.
// Dependency order: AgentSession -> Relay -> Terminal -> viewers.
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

#include "hub/gpu_leases.h"
#include "hub/store.h"
#include "hub/terminal.h"
#include "protocol/codec.h"
#include "protocol/frame.h"

namespace rx::hub {

class HttpExchange;

// An agent's live link, as the relay sees it (AgentSession implements it).
class AgentLink : public AgentPort {
 public:
  virtual const AgentRecord& agent() const = 0;
  virtual void close(uint16_t code, const std::string& reason) = 0;
};

// Whom a shell or command on an agent is for (OPEN's user and account fields): the Rexec user's
// name, which the agent's --user-map may map to a local account, and the local account the hub
// asks for (a grant's unix_user; "" = the agent's default).
struct RunAs {
  std::string user;
  std::string account;
};

struct ExecRequest {
  std::vector<std::string> targets;
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
  int timeout_s = 30;  // per target, from its start
  // At most this many targets run at once (0: all); the rest wait their turn, in order.
  int parallel = 0;
  std::string user_id;  // whose: output kept is capped per user too
  // Streamed (Accept: application/x-ndjson): each chunk goes to the client as it arrives and
  // nothing is kept; else one JSON answer when every target finished.
  bool stream = false;
  // Per target agent id: more environment (leased GPUs) and whom it runs as.
  std::map<std::string, std::map<std::string, std::string>> target_env;
  std::map<std::string, RunAs> target_as;
  // Told when the command on a target agent finished or failed (its GPU leases end then).
  std::function<void(const std::string& agent_id)> on_target_done;
};

// Exec output the hub keeps (the rest is counted in the *_truncated fields, docs/api.md): per
// stream of one target, per request, and per user across their requests in flight. A fan-out to
// 256 targets costs at most kExecRequestCap of memory, a user's parallel fan-outs kExecUserCap.
inline constexpr size_t kExecStreamCap = 1024 * 1024;
inline constexpr size_t kExecRequestCap = 8 * 1024 * 1024;
inline constexpr size_t kExecUserCap = 16 * 1024 * 1024;
// A streamed exec stops ACKing its agents' output while more than this is queued for its client,
// and ACKs again when the client has taken it all: a slow reader holds back the commands (their
// pipes fill), never the hub's memory. Per request, plus at most one credit window per stream
// of each target in flight.
inline constexpr size_t kExecStreamBacklog = 256 * 1024;

// Plain counters on the hot path, copied into /metrics when it is read.
struct RelayCounters {
  uint64_t output_bytes = 0;    // agent -> hub (terminal and exec output)
  uint64_t input_bytes = 0;     // viewers -> agents (typed input)
  uint64_t frames_dropped = 0;  // input from read-only viewers, input with the buffer full, frames for unknown channels
};

class Relay {
 public:
  Relay(Store& store, uv_loop_t* loop);
  ~Relay();

  // Terminals the store remembers come back as offline, waiting for their agents.
  Status load();

  // --- agent links ---
  // After a valid HELLO: what to answer. Replaces an older link of the same agent.
  protocol::Welcome agent_hello(AgentLink& link, const protocol::Hello& hello,
                                const std::optional<std::string>& new_credential);
  // After WELCOME went out: reattach the channels the agent still has, close the rest.
  void agent_ready(AgentLink& link, const protocol::Hello& hello);
  void agent_frame(AgentLink& link, const protocol::Frame& frame);
  void agent_data(AgentLink& link, const protocol::DataView& data);
  void agent_gone(AgentLink& link);
  bool online(const std::string& agent_id) const { return online_.count(agent_id) > 0; }
  std::optional<protocol::Stats> latest_stats(const std::string& agent_id) const;
  // Told of every STATS sample as it arrives (the dashboard's events feed).
  void set_stats_listener(std::function<void(const std::string& agent_id, const protocol::Stats&)> listener) {
    stats_listener_ = std::move(listener);
  }
  void revoke_agent(const std::string& agent_id);

  // --- terminals ---
  // `id`: the terminal's id when the caller needs it ahead (GPU leases are taken first); empty: new.
  Result<TerminalRecord> create_terminal(const User& owner, const AgentRecord& agent, const std::string& name,
                                         uint16_t cols, uint16_t rows, const std::map<std::string, std::string>& env,
                                         const RunAs& as = {}, const std::string& id = "");
  // A container terminal: its agent is not there yet (the container is being started); the
  // OPEN goes out when that agent says HELLO.
  // `id`: the terminal's id when the container was made for it ahead (warm pool); empty: new.
  // When that agent is online already (a warm container), the OPEN goes at once.
  Result<TerminalRecord> create_container_terminal(const User& owner, const AgentRecord& agent, const std::string& image,
                                                   const std::string& name, uint16_t cols, uint16_t rows,
                                                   const std::map<std::string, std::string>& env,
                                                   const std::string& id = "");
  Terminal* terminal(const std::string& id);
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
  RelayCounters& counters() { return counters_; }
  size_t online_count() const { return online_.size(); }

  // --- exec fan-out ---
  // Replies on `exchange` when every target finished or timed out; or, streamed, starts
  // the stream at once and finishes it after the last target. A client that goes away cancels
  // the run: every target still running is killed. The request must be within the frame limits
  // (exec_open_ok).
  void exec(std::vector<AgentRecord> targets, const ExecRequest& request,
            std::shared_ptr<HttpExchange> exchange);
  // The OPEN of a pty terminal or an exec with these fields fits the agent link's limits; else
  // too_large naming the field and the limit.
  static Status pty_open_ok(const std::map<std::string, std::string>& env);
  static Status exec_open_ok(const ExecRequest& request);

 private:
  struct ExecTarget;
  struct ExecRun;
  void on_terminal_frame(AgentLink& link, Terminal& t, const protocol::Frame& frame);
  void on_exec_frame(AgentLink& link, ExecTarget& target, const protocol::Frame& frame);
  void on_exec_data(AgentLink& link, ExecTarget& target, const protocol::DataView& data);
  // Sends the OPEN of one target; false when it cannot run (the target is done, with its error).
  bool open_exec_target(ExecTarget& target);
  // Opens waiting targets while fewer than the run's `parallel` run (refused ones end at once).
  void start_exec_targets(ExecRun& run);
  void finish_exec_target(ExecTarget& target);
  // Kills a running target's process group on its agent and closes its channel (timeout, cancel).
  void kill_exec_target(ExecTarget& target, const std::string& why);
  void cancel_exec(ExecRun& run);
  // Streamed runs: one line to the client (holding ACKs back when it is behind), and the ACKs
  // held back, once it has caught up.
  void emit(ExecRun& run, const std::string& line);
  void ack_exec(ExecTarget& target);
  void resume_exec(ExecRun& run);
  // A target's result without its output (the stream's last line of it; the plain answer adds
  // stdout and stderr).
  static nlohmann::json exec_result(const ExecTarget& target);
  // A new pty terminal: a fresh channel on its agent, recorded, live; its OPEN goes now when the
  // agent is online, else when it next says HELLO.
  Result<TerminalRecord> add_terminal(TerminalRecord t, const std::map<std::string, std::string>& env,
                                      const RunAs& as = {});
  static protocol::Open pty_open(uint32_t channel, int cols, int rows, const std::map<std::string, std::string>& env,
                                 const RunAs& as = {});
  void ended(const std::string& id, const std::string& why) { gpus_.release_holder(id, why); }
  // The live Terminal (starting) of `id` on that channel, replacing any earlier one.
  void make_live(const std::string& id, const std::string& agent_id, uint32_t channel);
  void maybe_reply(ExecRun& run);

  Store& store_;
  uv_loop_t* loop_;
  std::map<std::string, AgentLink*> online_;
  std::map<std::string, protocol::Stats> stats_;
  std::map<std::string, std::unique_ptr<Terminal>> terminals_;
  std::map<std::pair<std::string, uint32_t>, std::string> by_channel_;  // (agent, channel) -> terminal id
  std::map<std::pair<std::string, uint32_t>, ExecTarget*> exec_targets_;
  // Shared: a client's exchange calls back into its run through a weak_ptr (on_gone, on_drain),
  // and may outlive it.
  std::vector<std::shared_ptr<ExecRun>> exec_runs_;
  std::map<std::string, size_t> exec_kept_by_user_;  // output bytes kept by each user's runs in flight
  std::map<std::pair<std::string, std::string>, int> viewer_sockets_;
  std::map<std::string, protocol::Open> pending_open_;
  std::set<std::string> deleting_;  // terminal id -> OPEN waiting for its agent
  uint64_t restarts_ = 0;
  std::map<std::string, uint64_t> restarted_at_;  // terminal id -> number of its latest restart
  std::set<std::string> start_in_flight_;          // restarted, Docker's start not answered yet
  RelayCounters counters_;
  std::function<void(const std::string&, const protocol::Stats&)> stats_listener_;
  GpuLeases gpus_;
};

}  // namespace rx::hub
