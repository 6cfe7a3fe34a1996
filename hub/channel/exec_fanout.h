// ExecFanout: one command run on many agents at once (POST /api/v1/exec, docs/api.md "Exec").
// Each target gets an exec channel on its agent; output is kept (capped) for one answer, or
// handed on line by line as it arrives (streamed), and each target ends with a result. The run
// talks to whoever asked through ExecClient, so nothing here knows HTTP: the API adapts its
// exchange (hub/api/exec_stream.h), a test can use a plain object. Loop thread only.
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hub/channel/agent_registry.h"
#include "hub/channel/exec_lines.h"
#include "hub/link/agent_link.h"
#include "hub/store/store.h"
#include "protocol/credit_window.h"
#include "protocol/error.h"

namespace rx::hub {

class Timer;

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

// Who asked for a run, as the run sees it.
class ExecClient {
 public:
  virtual ~ExecClient() = default;
  // Streamed runs: one line (a chunk or a target's result, with its '\n'). The write may find
  // the client gone or drain at once: the client then calls cancel() or resume() re-entrantly.
  virtual void line(const std::string& line) = 0;
  virtual size_t backlog() const = 0;  // bytes written and not yet taken by the client
  virtual bool gone() const = 0;
  // Every target is done. Plain runs: {"results":[...]} (docs/api.md); streamed: null (every
  // line is out already).
  virtual void done(nlohmann::json answer) = 0;
};

class ExecFanout {
 public:
  struct Run;
  // A run as its client holds it: it may outlive the run (a stream still draining).
  using Handle = std::weak_ptr<Run>;

  ExecFanout(Store& store, uv_loop_t* loop, AgentRegistry& agents);
  ~ExecFanout();

  // Lists the targets of a run (`targets[i]` is the agent of request.targets[i]); none starts
  // before start(), so the client can hook cancel/resume to the handle first. The request must
  // be within the frame limits (open_ok).
  Handle add(std::vector<AgentRecord> targets, const ExecRequest& request, std::shared_ptr<ExecClient> client);
  // Opens the first `parallel` targets (or all); the rest open as earlier ones end.
  void start(const Handle& run);
  // The client went away: every target still running is killed, none of the waiting starts.
  void cancel(const Handle& run);
  // The client has taken what was queued: ACKs held back go out.
  void resume(const Handle& run);

  // An exec channel's DATA or frame; false when (agent, channel) is no exec channel.
  bool on_data(AgentLink& link, const protocol::DataView& data);
  bool on_frame(AgentLink& link, uint32_t channel, const protocol::Frame& frame);
  // The agent's link went down: its running targets end with agent_offline.
  void agent_gone(const std::string& agent_id);

  // The OPEN of an exec with these fields fits the agent link's limits; else too_large naming
  // the field and the limit.
  static Status open_ok(const ExecRequest& request);

 private:
  struct Target;
  void on_target_data(AgentLink& link, Target& target, const protocol::DataView& data);
  void on_target_frame(Target& target, const protocol::Frame& frame);
  bool open_target(Target& target);
  void start_targets(Run& run);
  void finish_target(Target& target);
  void kill_target(Target& target, const std::string& why);
  void cancel_run(Run& run);
  void emit(Run& run, const std::string& line);
  void ack(Target& target);
  void resume_run(Run& run);
  void maybe_reply(Run& run);
  static nlohmann::json result(const Target& target);

  Store& store_;
  uv_loop_t* loop_;
  AgentRegistry& agents_;
  std::map<std::pair<std::string, uint32_t>, Target*> targets_;  // (agent, channel) -> running target
  // Shared: a client's handle is a weak_ptr, and may outlive the run.
  std::vector<std::shared_ptr<Run>> runs_;
  std::map<std::string, size_t> kept_by_user_;  // output bytes kept by each user's runs in flight
};

}  // namespace rx::hub
