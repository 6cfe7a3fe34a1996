#include "hub/relay.h"

#include <chrono>
#include <ctime>
#include <set>

#include "hub/exec_stream.h"
#include "hub/json_text.h"
#include "protocol/log_line.h"
#include "hub/server.h"
#include "hub/timer.h"
#include "hub/tokens.h"
#include "protocol/base64.h"
#include "protocol/limits.h"
#include "protocol/version.h"
#include "protocol/viewer.h"

namespace rx::hub {

using namespace protocol;

namespace {
int64_t now() { return int64_t(std::time(nullptr)); }

// What an agent says about its host, as stored and shown: every string made valid UTF-8 here,
// where it enters (a hostname or os-release in another encoding must not break the API).
nlohmann::json host_json(const HostInfo& h) {
  nlohmann::json gpus = nlohmann::json::array();
  for (const auto& g : h.gpus)
    gpus.push_back({{"index", g.index}, {"uuid", clean_utf8(g.uuid)}, {"model", clean_utf8(g.model)},
                    {"memory_total", g.memory_total}});
  return {{"hostname", clean_utf8(h.hostname)}, {"os", clean_utf8(h.os)},     {"kernel", clean_utf8(h.kernel)},
          {"arch", clean_utf8(h.arch)},         {"cpus", h.cpus},               {"memory_total", h.memory_total},
          {"gpus", gpus},                       {"gpu_policy", h.gpu_policy == "lease-required" ? "lease-required" : "open"}};
}

// An agent's ERROR as the hub's error (exec results, terminal reasons): valid UTF-8.
Error agent_error(const ErrorFrame& e) { return make_error(clean_utf8(e.code), clean_utf8(e.message)); }

// The OPEN's check as the API's error: too_large, naming the field (`fields` when it is the
// frame as a whole) and the limit.
Status as_request_error(Status s, const std::string& fields) {
  if (s) return s;
  std::string message = s.error().message;
  if (message.starts_with("OPEN.")) message = message.substr(5);
  else if (message.starts_with("OPEN: ")) message = fields + ": together " + message.substr(6);
  return make_error("too_large", message + " (one OPEN frame of the agent link)");
}

// Exec output as JSON: text when it is UTF-8, else base64 (the response says which).
void put_output(nlohmann::json& out, const std::string& name, const std::string& bytes, uint64_t total) {
  if (viewer::valid_utf8(bytes)) {
    out[name] = bytes;
  } else {
    out[name] = base64_encode(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
    out[name + "_encoding"] = "base64";
  }
  if (total > bytes.size()) out[name + "_truncated"] = total - bytes.size();
}
}  // namespace

struct Relay::ExecTarget {
  ExecRun* run = nullptr;
  std::string target;
  std::string agent_id;
  std::string agent_name;  // for the agent_offline message of a target that waited its turn
  uint32_t channel = 0;  // 0 until its OPEN went out
  std::string out, err;  // kept for the plain answer (nothing when streamed)
  uint64_t out_total = 0, err_total = 0;
  ReceiveCursor out_cursor{kDefaultWindow}, err_cursor{kDefaultWindow};
  Utf8Carry out_carry, err_carry;  // streamed: a character split across DATA frames
  std::optional<int32_t> exit_code;
  std::string signal;
  std::optional<Error> error;
  bool started = false;  // its OPEN went out (or it was refused): no longer waiting its turn
  bool done = false;
  std::unique_ptr<Timer> timeout;  // from its OPEN: the per-target timeout_s
  // Hub-measured: from the OPEN (or the refusal) to the end.
  std::chrono::steady_clock::time_point opened = std::chrono::steady_clock::now(), ended = opened;
};

struct Relay::ExecRun {
  std::shared_ptr<HttpExchange> exchange;
  std::string user_id;
  bool streaming = false;
  bool held = false;       // streamed: ACKs held back while the client is behind
  bool cancelled = false;  // the client went away
  bool opening = true;     // exec() is still adding targets: the run cannot be complete yet
  bool starting = false;   // inside start_exec_targets (a send may finish a target re-entrantly)
  size_t kept = 0;  // output bytes kept over all targets
  ExecRequest request;  // what every target runs (the waiting ones open from it later)
  bool fits = true;     // the request fits an OPEN frame
  size_t running = 0;   // started and not done
  std::vector<std::unique_ptr<ExecTarget>> targets;
  bool replied = false;
};

Relay::Relay(Store& store, uv_loop_t* loop) : store_(store), loop_(loop), gpus_(store) {}
Relay::~Relay() = default;

Status Relay::load() {
  auto rows = store_.list_terminals();
  if (!rows) return rows.error();
  for (const auto& t : *rows) {
    if (t.status != "running" && t.status != "starting") continue;
    terminals_[t.id] = std::make_unique<Terminal>(t.id, t.agent_id, t.channel, kDefaultWindow);
    by_channel_[{t.agent_id, t.channel}] = t.id;
    // A container that never got its shell before the restart still gets it (its env is lost).
    if (t.kind == "container" && t.status == "starting")
      pending_open_[t.id] = pty_open(t.channel, t.cols, t.rows, {});
  }
  // Leases of terminals that ended while the hub was down (and of exec runs) end now.
  std::set<std::string> live;
  for (const auto& [id, t] : terminals_) live.insert(id);
  return gpus_.load(live);
}

// ---- agent links ----------------------------------------------------------------------------

Welcome Relay::agent_hello(AgentLink& link, const Hello& hello, const std::optional<std::string>& new_credential) {
  const AgentRecord& agent = link.agent();
  if (auto it = online_.find(agent.id); it != online_.end() && it->second != &link) {
    AgentLink* old = it->second;
    agent_gone(*old);
    old->close(1008, "replaced by a newer connection of the same agent");
  }
  online_[agent.id] = &link;
  // Labels were checked by the session (protocol/labels.h): UTF-8, bounded.
  (void)store_.update_agent_seen(agent.id, json_text(host_json(hello.host)), json_text(nlohmann::json(hello.labels)),
                                 now());
  log("info", "agent.online", {{"agent", agent.id}, {"name", agent.name}, {"version", clean_utf8(hello.agent_version)}});

  Welcome w;
  w.proto = std::min(hello.proto_max, kProtocolVersionMax);
  w.hub_version = kRexecVersion;
  w.agent_id = agent.id;
  w.credential = new_credential;
  for (const auto& c : hello.channels) {
    auto it = by_channel_.find({agent.id, c.channel});
    if (it == by_channel_.end()) continue;
    w.resume.push_back({c.channel, Stream::kOutput, terminals_[it->second]->output_received()});
  }
  return w;
}

void Relay::agent_ready(AgentLink& link, const Hello& hello) {
  const std::string& agent_id = link.agent().id;
  std::set<uint32_t> alive;
  for (const auto& c : hello.channels) {
    alive.insert(c.channel);
    auto it = by_channel_.find({agent_id, c.channel});
    if (it == by_channel_.end()) {
      link.send(Close{c.channel, "the hub no longer has this terminal"});
      continue;
    }
    terminals_[it->second]->attach_agent(&link, c.input_received);
  }
  // Terminals the hub expected on this agent that it no longer has: the agent restarted.
  std::vector<std::string> lost;
  for (auto& [id, t] : terminals_) {
    if (t->agent_id() != agent_id || alive.count(t->channel()) || t->status() == "exited" || t->status() == "lost")
      continue;
    if (auto p = pending_open_.find(id); p != pending_open_.end()) {  // a new container's first HELLO
      link.send(p->second);
      pending_open_.erase(p);
      continue;
    }
    lost.push_back(id);
  }
  for (const auto& id : lost) mark_lost(id, "its agent restarted: the shell ended with the agent's old process");
}

void Relay::agent_gone(AgentLink& link) {
  const std::string& agent_id = link.agent().id;
  auto it = online_.find(agent_id);
  if (it == online_.end() || it->second != &link) return;
  online_.erase(it);
  for (auto& [id, t] : terminals_)
    if (t->agent_id() == agent_id) t->detach_agent();
  // Exec runs on this agent cannot finish now.
  for (auto& [key, target] : exec_targets_) {
    if (key.first != agent_id || target->done) continue;
    target->error = make_error("agent_offline", "the agent disconnected before the command finished");
  }
  std::vector<ExecTarget*> failed;
  for (auto& [key, target] : exec_targets_)
    if (key.first == agent_id && target->error) failed.push_back(target);
  for (auto* t : failed) finish_exec_target(*t);
  log("info", "agent.offline", {{"agent", agent_id}});
}

size_t Relay::viewer_count() const {
  size_t n = 0;
  for (const auto& [id, t] : terminals_) n += t->viewer_count();
  return n;
}

std::optional<Stats> Relay::latest_stats(const std::string& agent_id) const {
  auto it = stats_.find(agent_id);
  if (it == stats_.end()) return std::nullopt;
  return it->second;
}

void Relay::revoke_agent(const std::string& agent_id) {
  gpus_.release_agent(agent_id, "revoked");
  auto it = online_.find(agent_id);
  if (it == online_.end()) return;
  AgentLink* link = it->second;
  agent_gone(*link);
  link->close(1008, "revoked");
}

void Relay::agent_data(AgentLink& link, const DataView& d) {
  counters_.output_bytes += d.bytes.size();
  if (auto it = by_channel_.find({link.agent().id, d.channel}); it != by_channel_.end()) {
    if (d.stream == Stream::kOutput) terminals_[it->second]->on_data(d.offset, d.bytes);
    return;
  }
  if (auto it = exec_targets_.find({link.agent().id, d.channel}); it != exec_targets_.end()) {
    on_exec_data(link, *it->second, d);
    return;
  }
  ++counters_.frames_dropped;
  link.send(ErrorFrame{d.channel, "unknown_channel", "channel " + std::to_string(d.channel) + " is not open"});
}

void Relay::agent_frame(AgentLink& link, const Frame& frame) {
  if (auto* d = std::get_if<Data>(&frame)) return agent_data(link, DataView{d->channel, d->stream, d->offset, d->bytes});
  uint32_t ch = frame_channel(frame);
  if (auto* s = std::get_if<Stats>(&frame)) {
    if (ch != 0) return;
    stats_[link.agent().id] = *s;
    gpus_.on_stats(link.agent().id, *s, now());
    if (stats_listener_) stats_listener_(link.agent().id, *s);
    return;
  }
  if (std::holds_alternative<Unknown>(frame)) return;  // a newer agent's frame: ignore
  if (auto it = by_channel_.find({link.agent().id, ch}); it != by_channel_.end()) {
    on_terminal_frame(link, *terminals_[it->second], frame);
    return;
  }
  if (auto it = exec_targets_.find({link.agent().id, ch}); it != exec_targets_.end()) {
    on_exec_frame(link, *it->second, frame);
    return;
  }
  if (std::holds_alternative<Close>(frame) || std::holds_alternative<ErrorFrame>(frame)) return;  // after a delete
  ++counters_.frames_dropped;
  link.send(ErrorFrame{ch, "unknown_channel", "channel " + std::to_string(ch) + " is not open"});
}

void Relay::on_terminal_frame(AgentLink& link, Terminal& t, const Frame& frame) {
  if (auto* a = std::get_if<Ack>(&frame)) {
    if (a->stream == Stream::kInput) t.on_input_ack(a->offset);
  } else if (std::holds_alternative<Opened>(frame)) {
    t.attach_agent(&link, 0);
    (void)store_.update_terminal_status(t.id(), "running", std::nullopt);
  } else if (auto* e = std::get_if<Exit>(&frame)) {
    if (t.exit_code()) return;  // repeated after a reconnect
    t.on_exit(e->code, e->signal);
    (void)store_.update_terminal_status(t.id(), "exited", e->code);
    (void)store_.audit(audit_entry("agent:" + link.agent().id, "terminal.exit", t.id(), "code=" + std::to_string(e->code)));
    ended(t.id(), "exited");
  } else if (auto* err = std::get_if<ErrorFrame>(&frame)) {
    auto e = agent_error(*err);
    log("warn", "terminal.error", {{"terminal", t.id()}, {"code", e.code}, {"message", e.message}});
    // The shell never started: it failed, or the agent refused the account it was to run as.
    if (e.code == "spawn_failed" || e.code == "root_not_allowed" || e.code == "unknown_account" ||
        e.code == "account_not_allowed")
      mark_lost(t.id(), "the shell could not start: " + e.message);
  }
  // CLOSE from the agent: the channel is gone there; the terminal keeps its output for viewers.
}

// ---- terminals ------------------------------------------------------------------------------

Result<TerminalRecord> Relay::create_terminal(const User& owner, const AgentRecord& agent, const std::string& name,
                                              uint16_t cols, uint16_t rows,
                                              const std::map<std::string, std::string>& env, const RunAs& as,
                                              const std::string& id) {
  if (!online(agent.id)) return make_error("agent_offline", "agent " + agent.name + " is not connected");
  TerminalRecord t;
  t.id = id;
  t.owner_id = owner.id;
  t.kind = "agent";
  t.agent_id = agent.id;
  t.name = name.empty() ? agent.name : name;
  t.cols = cols;
  t.rows = rows;
  return add_terminal(std::move(t), env, as);
}

Result<TerminalRecord> Relay::create_container_terminal(const User& owner, const AgentRecord& agent,
                                                        const std::string& image, const std::string& name, uint16_t cols,
                                                        uint16_t rows, const std::map<std::string, std::string>& env,
                                                        const std::string& id) {
  TerminalRecord t;
  t.id = id;
  t.owner_id = owner.id;
  t.kind = "container";
  t.agent_id = agent.id;
  t.name = name.empty() ? image : name;
  t.cols = cols;
  t.rows = rows;
  t.image = image;
  return add_terminal(std::move(t), env);
}

Status Relay::pty_open_ok(const std::map<std::string, std::string>& env) {
  return as_request_error(check_limits(pty_open(1, 80, 24, env)), "env");
}

Status Relay::exec_open_ok(const ExecRequest& r) {
  return as_request_error(check_limits(Open{1, ChannelKind::kExec, r.argv, r.env, 80, 24, kDefaultWindow}), "argv and env");
}

Result<TerminalRecord> Relay::add_terminal(TerminalRecord t, const std::map<std::string, std::string>& env,
                                           const RunAs& as) {
  // First: a frame the agent would refuse must not be made (it would drop the agent's whole link).
  if (auto s = pty_open_ok(env); !s) return s.error();
  auto channel = store_.next_channel(t.agent_id);
  if (!channel) return channel.error();
  if (t.id.empty()) t.id = new_id("t_");
  t.channel = *channel;
  t.status = "starting";
  t.created_at = now();
  if (auto s = store_.create_terminal(t); !s) return s.error();
  make_live(t.id, t.agent_id, t.channel);
  Open open = pty_open(t.channel, t.cols, t.rows, env, as);
  if (auto link = online_.find(t.agent_id); link != online_.end()) link->second->send(open);
  else pending_open_[t.id] = open;
  return t;
}

Open Relay::pty_open(uint32_t channel, int cols, int rows, const std::map<std::string, std::string>& env,
                     const RunAs& as) {
  Open o{channel, ChannelKind::kPty, {}, env, uint16_t(cols), uint16_t(rows), kDefaultWindow};
  o.user = as.user;
  o.account = as.account;
  return o;
}

std::optional<std::string> Relay::terminal_on(const std::string& agent_id, uint32_t channel) const {
  auto it = by_channel_.find({agent_id, channel});
  if (it == by_channel_.end()) return std::nullopt;
  return it->second;
}

void Relay::make_live(const std::string& id, const std::string& agent_id, uint32_t channel) {
  auto term = std::make_unique<Terminal>(id, agent_id, channel, kDefaultWindow);
  term->set_status("starting");
  by_channel_[{agent_id, channel}] = id;
  terminals_[id] = std::move(term);
}

void Relay::mark_lost(const std::string& id, const std::string& reason) {
  if (auto it = terminals_.find(id); it != terminals_.end()) it->second->set_status("lost");
  pending_open_.erase(id);
  (void)store_.update_terminal_status(id, "lost", std::nullopt);
  (void)store_.update_terminal_reason(id, reason);
  log("warn", "terminal.lost", {{"terminal", id}, {"reason", reason}});
  ended(id, "lost");
}

void Relay::mark_stopped(const std::string& id) {
  if (auto it = terminals_.find(id); it != terminals_.end()) it->second->set_status("stopped");
  pending_open_.erase(id);
  (void)store_.update_terminal_status(id, "stopped", std::nullopt);
}

Status Relay::restart_container_terminal(const std::string& id) {
  auto rec = store_.terminal_by_id(id);
  if (!rec) return rec.error();
  if (!*rec) return make_error("not_found", "no terminal " + id);
  const TerminalRecord& t = **rec;
  auto channel = store_.next_channel(t.agent_id);
  if (!channel) return channel.error();
  if (auto it = terminals_.find(id); it != terminals_.end()) it->second->drop_viewers("terminal restarted: attach again");
  by_channel_.erase({t.agent_id, t.channel});
  make_live(id, t.agent_id, *channel);
  // The restarted container's agent asks for it when it says HELLO (the old link may not have
  // noticed its end yet).
  pending_open_[id] = pty_open(*channel, t.cols, t.rows, {});
  if (auto s = store_.update_terminal_channel(id, *channel); !s) return s;
  return store_.update_terminal_status(id, "starting", std::nullopt);
}

Terminal* Relay::terminal(const std::string& id) {
  auto it = terminals_.find(id);
  return it == terminals_.end() ? nullptr : it->second.get();
}

Status Relay::delete_terminal(const std::string& id) {
  deleting_.erase(id);
  restarted_at_.erase(id);
  start_in_flight_.erase(id);
  auto rec = store_.terminal_by_id(id);
  if (!rec) return rec.error();
  if (!*rec) return make_error("not_found", "no terminal " + id);
  if (auto link = online_.find((*rec)->agent_id); link != online_.end())
    link->second->send(Close{(*rec)->channel, "terminal deleted"});
  by_channel_.erase({(*rec)->agent_id, (*rec)->channel});
  pending_open_.erase(id);
  terminals_.erase(id);  // viewers are told by the Terminal's destructor
  ended(id, "deleted");
  return store_.delete_terminal(id);
}

std::string Relay::status_of(const TerminalRecord& record) const {
  if (auto it = terminals_.find(record.id); it != terminals_.end()) return it->second->status();
  return record.status;
}

// ---- exec -----------------------------------------------------------------------------------

void Relay::exec(std::vector<AgentRecord> targets, const ExecRequest& request,
                 std::shared_ptr<HttpExchange> exchange) {
  std::erase_if(exec_runs_, [](const auto& r) { return r->replied; });
  auto run = std::make_shared<ExecRun>();
  run->exchange = std::move(exchange);
  run->user_id = request.user_id;
  run->streaming = request.stream;
  run->request = request;
  run->fits = exec_open_ok(request).ok();
  ExecRun* r = run.get();
  exec_runs_.push_back(run);
  // The exchange may outlive the run (a stream still draining): it holds only a weak reference.
  std::weak_ptr<ExecRun> weak = run;
  run->exchange->on_gone = [this, weak] {
    if (auto live = weak.lock()) cancel_exec(*live);
  };
  if (r->streaming) {
    run->exchange->on_drain = [this, weak] {
      if (auto live = weak.lock()) resume_exec(*live);
    };
    Response head;
    head.content_type = std::string(kNdjson);
    r->exchange->start_stream(std::move(head));
  }
  // Every target is listed before any opens: a cancel meanwhile must see them all, and the
  // answer keeps the request's order.
  for (size_t i = 0; i < targets.size(); ++i) {
    auto target = std::make_unique<ExecTarget>();
    target->run = r;
    target->target = request.targets[i];
    target->agent_id = targets[i].id;
    target->agent_name = targets[i].name;
    r->targets.push_back(std::move(target));
  }
  start_exec_targets(*r);
  r->opening = false;
  maybe_reply(*r);
}

void Relay::start_exec_targets(ExecRun& run) {
  if (run.starting) return;  // the loop below is already at it, and re-checks the count
  run.starting = true;
  size_t limit = run.request.parallel > 0 ? size_t(run.request.parallel) : run.targets.size();
  for (auto& target : run.targets) {
    if (run.running >= limit) break;
    ExecTarget& t = *target;
    if (t.started) continue;
    t.started = true;
    if (open_exec_target(t)) continue;
    // Refused at once: what was taken for it ends now, and a stream says so now.
    if (run.request.on_target_done) run.request.on_target_done(t.agent_id);
    emit(run, json_text(exec_result(t)) + "\n");
  }
  run.starting = false;
}

bool Relay::open_exec_target(ExecTarget& t) {
  ExecRun& run = *t.run;
  const ExecRequest& request = run.request;
  auto link = online_.find(t.agent_id);
  if (run.cancelled) t.error = make_error("cancelled", "the client went away");
  else if (!run.fits) t.error = exec_open_ok(request).error();
  else if (link == online_.end()) t.error = make_error("agent_offline", "agent " + t.agent_name + " is not connected");
  else if (auto ch = store_.next_channel(t.agent_id); !ch) t.error = ch.error();
  else t.channel = *ch;
  t.opened = t.ended = std::chrono::steady_clock::now();
  if (t.error) {
    t.done = true;
    return false;
  }
  ++run.running;
  exec_targets_[{t.agent_id, t.channel}] = &t;
  Open open{t.channel, ChannelKind::kExec, request.argv, request.env, 80, 24, kDefaultWindow};
  if (auto e = request.target_env.find(t.agent_id); e != request.target_env.end())
    for (const auto& [k, v] : e->second) open.env[k] = v;
  if (auto a = request.target_as.find(t.agent_id); a != request.target_as.end()) {
    open.user = a->second.user;
    open.account = a->second.account;
  }
  // Made before the send: a send that closes the link finishes the target, which stops it.
  t.timeout = std::make_unique<Timer>(loop_, [this, &t] {
    if (t.done) return;
    t.error = make_error("timeout", "the command did not finish within the timeout");
    kill_exec_target(t, "exec timed out");
    finish_exec_target(t);
  });
  t.timeout->start(uint64_t(request.timeout_s) * 1000);
  AgentLink* l = link->second;  // a send that closes the link erases its entry in online_
  l->send(open);
  if (!t.done) l->send(Data{t.channel, Stream::kInput, 0, {}});  // no stdin: close it at once
  return true;
}

void Relay::on_exec_data(AgentLink& link, ExecTarget& t, const DataView& d) {
  if (d.stream == Stream::kInput) return;
  bool is_err = d.stream == Stream::kStderr;
  auto& cursor = is_err ? t.err_cursor : t.out_cursor;
  auto& buf = is_err ? t.err : t.out;
  auto& total = is_err ? t.err_total : t.out_total;
  auto accept = cursor.on_data(d.offset, d.bytes.size());
  cursor.on_consumed(cursor.received());
  if (accept.skip < d.bytes.size()) {
    size_t n = d.bytes.size() - accept.skip;
    const char* bytes = reinterpret_cast<const char*>(d.bytes.data() + accept.skip);
    total += n;
    if (t.run->streaming) {
      // Out now; nothing kept. The write may find the client gone and cancel this very target.
      std::string text = (is_err ? t.err_carry : t.out_carry).take(std::string_view(bytes, n));
      if (!text.empty()) emit(*t.run, chunk_line(t.target, t.agent_id, is_err, text));
      if (t.done) return;
    } else {
      // Kept: what fits under every cap (stream, request, user); the rest is only counted.
      size_t& user_kept = exec_kept_by_user_[t.run->user_id];
      size_t room = std::min({kExecStreamCap - std::min(kExecStreamCap, buf.size()),
                              kExecRequestCap - std::min(kExecRequestCap, t.run->kept),
                              kExecUserCap - std::min(kExecUserCap, user_kept)});
      size_t keep = std::min(n, room);
      buf.append(bytes, keep);
      t.run->kept += keep;
      user_kept += keep;
    }
  }
  // Plain: nobody waits on exec output, ACKed as it arrives. Streamed: not while the client is
  // behind (resume_exec ACKs it all once it caught up), so the agent stops reading the command.
  if (t.run->held) return;
  if (auto ack = cursor.take_ack(true)) link.send(Ack{t.channel, d.stream, *ack});
}

void Relay::on_exec_frame(AgentLink&, ExecTarget& t, const Frame& frame) {
  if (auto* e = std::get_if<Exit>(&frame)) {
    t.exit_code = e->code;
    t.signal = e->signal;
  } else if (auto* err = std::get_if<ErrorFrame>(&frame)) {
    t.error = agent_error(*err);
  } else if (std::holds_alternative<Close>(frame)) {
    finish_exec_target(t);  // CLOSE follows the last DATA and EXIT: the run is complete
  }
}

void Relay::finish_exec_target(ExecTarget& t) {
  if (t.done) return;
  bool was_running = t.started;  // else it was still waiting its turn (a cancel ends it too)
  t.done = true;
  t.started = true;
  t.ended = std::chrono::steady_clock::now();
  if (t.timeout) t.timeout->stop();
  if (was_running) {
    --t.run->running;
    exec_targets_.erase({t.agent_id, t.channel});
  } else {
    t.opened = t.ended;  // it never ran
  }
  if (t.run->streaming) {
    // An output that ended inside a character: those bytes go as they are (base64).
    for (bool is_err : {false, true})
      if (auto rest = (is_err ? t.err_carry : t.out_carry).rest(); !rest.empty())
        emit(*t.run, chunk_line(t.target, t.agent_id, is_err, rest));
    emit(*t.run, json_text(exec_result(t)) + "\n");
  }
  if (t.run->request.on_target_done) t.run->request.on_target_done(t.agent_id);
  if (!t.run->cancelled) start_exec_targets(*t.run);  // the next waiting target takes its place
  maybe_reply(*t.run);
}

void Relay::kill_exec_target(ExecTarget& t, const std::string& why) {
  auto link = online_.find(t.agent_id);
  if (t.done || t.channel == 0 || link == online_.end()) return;
  AgentLink* l = link->second;
  l->send(Signal{t.channel, "KILL"});
  l->send(Close{t.channel, why});
}

void Relay::cancel_exec(ExecRun& run) {
  if (run.replied || run.cancelled) return;
  run.cancelled = true;
  size_t running = 0;
  for (auto& t : run.targets) {
    if (t->done) continue;
    ++running;
    t->error = make_error("cancelled", "the client went away");
    kill_exec_target(*t, "exec cancelled");
    finish_exec_target(*t);
  }
  log("info", "exec.cancelled", {{"user", run.user_id}, {"running", std::to_string(running)}});
}

void Relay::emit(ExecRun& run, const std::string& line) {
  if (!run.streaming || run.exchange->gone()) return;
  run.exchange->write(line);  // may drain at once (on_drain) or find the client gone (on_gone)
  if (run.exchange->backlog() > kExecStreamBacklog) run.held = true;
}

void Relay::ack_exec(ExecTarget& t) {
  auto link = online_.find(t.agent_id);
  if (t.done || link == online_.end()) return;
  for (Stream s : {Stream::kOutput, Stream::kStderr})
    if (auto ack = (s == Stream::kStderr ? t.err_cursor : t.out_cursor).take_ack(true))
      link->second->send(Ack{t.channel, s, *ack});
}

void Relay::resume_exec(ExecRun& run) {
  if (!run.held) return;
  run.held = false;
  for (auto& t : run.targets) ack_exec(*t);
}

nlohmann::json Relay::exec_result(const ExecTarget& t) {
  nlohmann::json r{{"target", t.target}, {"agent", t.agent_id}};
  r["exit_code"] = t.exit_code ? nlohmann::json(*t.exit_code) : nlohmann::json(nullptr);
  if (!t.signal.empty()) r["signal"] = t.signal;
  if (t.error) r["error"] = {{"code", t.error->code}, {"error", t.error->message}};
  r["duration_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(t.ended - t.opened).count();
  if (t.run->streaming) {
    r["stdout_bytes"] = t.out_total;
    r["stderr_bytes"] = t.err_total;
  }
  return r;
}

void Relay::maybe_reply(ExecRun& run) {
  if (run.replied || run.opening) return;
  for (const auto& t : run.targets)
    if (!t->done) return;
  run.replied = true;  // the run itself is freed by the next exec() (never from its own callbacks)
  if (run.streaming) return run.exchange->finish();  // every result line is out already
  nlohmann::json results = nlohmann::json::array();
  for (const auto& t : run.targets) {
    nlohmann::json r = exec_result(*t);
    put_output(r, "stdout", t->out, t->out_total);
    put_output(r, "stderr", t->err, t->err_total);
    results.push_back(std::move(r));
  }
  // The output is in the response now: the user's share of the cap is free again.
  if (auto it = exec_kept_by_user_.find(run.user_id); it != exec_kept_by_user_.end()) {
    it->second -= std::min(it->second, run.kept);
    if (it->second == 0) exec_kept_by_user_.erase(it);
  }
  run.exchange->reply(json_response(200, {{"results", results}}));
  // Its kept output is not needed any more (the response holds it); only the shell of the run waits.
  for (auto& t : run.targets) {
    std::string().swap(t->out);
    std::string().swap(t->err);
  }
}

}  // namespace rx::hub
