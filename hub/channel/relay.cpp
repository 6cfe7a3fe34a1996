#include "hub/channel/relay.h"

#include <chrono>
#include <ctime>
#include <set>

#include "hub/base/json_text.h"
#include "hub/base/tokens.h"
#include "hub/channel/frame_errors.h"
#include "protocol/limits.h"
#include "protocol/log_line.h"
#include "protocol/version.h"

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

}  // namespace

Relay::Relay(Store& store, uv_loop_t* loop) : store_(store), writes_(store), fanout_(store, loop, agents_), files_(store, agents_), gpus_(store) {}

void Relay::use(StoreThread* thread) {
  writes_.use(thread);
  gpus_.writes().use(thread);
}
Relay::~Relay() = default;

Status Relay::load() {
  auto rows = store_.list_terminals(TerminalFilter{});
  if (!rows) return rows.error();
  for (const auto& t : *rows) {
    if (t.status != "running" && t.status != "starting") continue;
    make_live(t, t.channel, TerminalStatus::kOffline);
    // A container that never got its shell before the restart still gets it (its env is lost).
    if (t.kind == "container" && t.status == "starting")
      pending_open_[t.id] = pty_open(t.channel, t.cols, t.rows, {});
  }
  // Leases of terminals that ended while the hub was down (and of exec runs) end now.
  std::set<std::string> live;
  for (const auto& [id, t] : channels_) live.insert(id);
  return gpus_.load(live);
}

// ---- agent links ----------------------------------------------------------------------------

Welcome Relay::agent_hello(AgentLink& link, const Hello& hello, const std::optional<std::string>& new_credential) {
  const AgentRecord& agent = link.agent();
  if (AgentLink* old = agents_.link(agent.id); old && old != &link) {
    agent_gone(*old);
    old->close(1008, "replaced by a newer connection of the same agent");
  }
  agents_.put(link);
  // Labels were checked by the session (protocol/labels.h): UTF-8, bounded.
  writes_.write("agent.seen", [id = agent.id, host = json_text(host_json(hello.host)),
                               labels = json_text(nlohmann::json(hello.labels)), at = now()](Store& store) {
    return store.update_agent_seen(id, host, labels, at);
  });
  log("info", "agent.online", {{"agent", agent.id}, {"name", agent.name}, {"version", clean_utf8(hello.agent_version)}});

  Welcome w;
  w.proto = std::min(hello.proto_max, kProtocolVersionMax);
  w.hub_version = kRexecVersion;
  w.agent_id = agent.id;
  w.credential = new_credential;
  for (const auto& c : hello.channels) {
    if (Terminal* t = channels_.on_channel(agent.id, c.channel))
      w.resume.push_back({c.channel, Stream::kOutput, t->output_received()});
  }
  return w;
}

void Relay::agent_ready(AgentLink& link, const Hello& hello) {
  const std::string& agent_id = link.agent().id;
  std::set<uint32_t> alive;
  for (const auto& c : hello.channels) {
    alive.insert(c.channel);
    Terminal* t = channels_.on_channel(agent_id, c.channel);
    if (!t) {
      link.send(Close{c.channel, "the hub no longer has this terminal"});
      continue;
    }
    t->attach_agent(&link, c.input_received);
  }
  // Terminals the hub expected on this agent that it no longer has: the agent restarted.
  std::vector<std::string> lost;
  for (const auto& [id, t] : channels_) {
    if (t->agent_id() != agent_id || alive.count(t->channel()) || t->status() == TerminalStatus::kExited || t->status() == TerminalStatus::kLost)
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
  if (!agents_.remove(link)) return;
  for (const auto& [id, t] : channels_)
    if (t->agent_id() == agent_id) t->detach_agent();
  fanout_.agent_gone(agent_id);
  files_.agent_gone(agent_id);
  log("info", "agent.offline", {{"agent", agent_id}});
}

size_t Relay::viewer_count() const {
  size_t n = 0;
  for (const auto& [id, t] : channels_) n += t->viewer_count();
  return n;
}

void Relay::revoke_agent(const std::string& agent_id) {
  gpus_.release_agent(agent_id, "revoked");
  AgentLink* link = agents_.link(agent_id);
  if (!link) return;
  agent_gone(*link);
  link->close(1008, "revoked");
}

void Relay::agent_data(AgentLink& link, const DataView& d) {
  counters_.output_bytes += d.bytes.size();
  if (Terminal* t = channels_.on_channel(link.agent().id, d.channel)) {
    if (d.stream == Stream::kOutput) t->on_data(d.offset, d.bytes);
    return;
  }
  if (fanout_.on_data(link, d)) return;
  if (files_.on_data(link, d)) return;
  ++counters_.frames_dropped;
  link.send(ErrorFrame{d.channel, "unknown_channel", "channel " + std::to_string(d.channel) + " is not open"});
}

void Relay::agent_frame(AgentLink& link, const Frame& frame) {
  if (auto* d = std::get_if<Data>(&frame)) return agent_data(link, DataView{d->channel, d->stream, d->offset, d->bytes});
  uint32_t ch = frame_channel(frame);
  if (auto* s = std::get_if<Stats>(&frame)) {
    if (ch != 0) return;
    agents_.set_stats(link.agent().id, *s);
    gpus_.on_stats(link.agent().id, *s, now());
    if (stats_listener_) stats_listener_(link.agent().id, *s);
    return;
  }
  if (std::holds_alternative<Unknown>(frame)) return;  // a newer agent's frame: ignore
  if (Terminal* t = channels_.on_channel(link.agent().id, ch)) {
    on_terminal_frame(link, *t, frame);
    return;
  }
  if (fanout_.on_frame(link, ch, frame)) return;
  if (files_.on_frame(link, ch, frame)) return;
  if (std::holds_alternative<Close>(frame) || std::holds_alternative<ErrorFrame>(frame)) return;  // after a delete
  ++counters_.frames_dropped;
  link.send(ErrorFrame{ch, "unknown_channel", "channel " + std::to_string(ch) + " is not open"});
}

void Relay::on_terminal_frame(AgentLink& link, Terminal& t, const Frame& frame) {
  if (auto* a = std::get_if<Ack>(&frame)) {
    if (a->stream == Stream::kInput) t.on_input_ack(a->offset);
  } else if (std::holds_alternative<Opened>(frame)) {
    t.attach_agent(&link, 0);
    writes_.terminal_status(t.id(), "running", std::nullopt);
  } else if (auto* e = std::get_if<Exit>(&frame)) {
    if (t.exit_code()) return;  // repeated after a reconnect
    t.on_exit(e->code, e->signal);
    writes_.terminal_status(t.id(), "exited", e->code);
    writes_.audit(audit_entry("agent:" + link.agent().id, "terminal.exit", t.id(), "code=" + std::to_string(e->code)));
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
                                              const std::string& id, RecordChoice record) {
  if (!online(agent.id)) return make_error("agent_offline", "agent " + agent.name + " is not connected");
  TerminalRecord t;
  t.id = id;
  t.owner_id = owner.id;
  t.kind = "agent";
  t.agent_id = agent.id;
  t.record = record.output;
  t.record_input = record.input;
  t.name = name.empty() ? agent.name : name;
  t.cols = cols;
  t.rows = rows;
  return add_terminal(std::move(t), env, as);
}

Result<TerminalRecord> Relay::create_container_terminal(const User& owner, const AgentRecord& agent,
                                                        const std::string& image, const std::string& name, uint16_t cols,
                                                        uint16_t rows, const std::map<std::string, std::string>& env,
                                                        const std::string& id, RecordChoice record) {
  TerminalRecord t;
  t.id = id;
  t.owner_id = owner.id;
  t.kind = "container";
  t.agent_id = agent.id;
  t.record = record.output;
  t.record_input = record.input;
  t.name = name.empty() ? image : name;
  t.cols = cols;
  t.rows = rows;
  t.image = image;
  return add_terminal(std::move(t), env);
}

Status Relay::pty_open_ok(const std::map<std::string, std::string>& env) {
  return as_request_error(check_limits(pty_open(1, 80, 24, env)), "env");
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
  make_live(t, t.channel, TerminalStatus::kStarting);
  Open open = pty_open(t.channel, t.cols, t.rows, env, as);
  if (AgentLink* link = agents_.link(t.agent_id)) link->send(open);
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
  if (Terminal* t = channels_.on_channel(agent_id, channel)) return t->id();
  return std::nullopt;
}

void Relay::make_live(const TerminalRecord& t, uint32_t channel, TerminalStatus status) {
  auto term = std::make_unique<Terminal>(t.id, t.agent_id, channel, kDefaultWindow);
  term->set_status(status);
  term->set_size(uint16_t(t.cols), uint16_t(t.rows));
  Terminal& live = *term;
  channels_.insert(std::move(term));
  if (live_listener_) live_listener_(live, t);
}

void Relay::mark_lost(const std::string& id, const std::string& reason) {
  if (Terminal* t = channels_.find(id)) t->set_status(TerminalStatus::kLost);
  pending_open_.erase(id);
  writes_.terminal_status(id, "lost", std::nullopt, reason);
  log("warn", "terminal.lost", {{"terminal", id}, {"reason", reason}});
  ended(id, "lost");
}

void Relay::mark_stopped(const std::string& id) {
  if (Terminal* t = channels_.find(id)) t->set_status(TerminalStatus::kStopped);
  pending_open_.erase(id);
  writes_.terminal_status(id, "stopped", std::nullopt);
}

Status Relay::restart_container_terminal(const std::string& id) {
  auto rec = store_.terminal_by_id(id);
  if (!rec) return rec.error();
  if (!*rec) return make_error("not_found", "no terminal " + id);
  const TerminalRecord& t = **rec;
  auto channel = store_.next_channel(t.agent_id);
  if (!channel) return channel.error();
  if (Terminal* live = channels_.find(id)) live->drop_viewers("terminal restarted: attach again");
  make_live(t, *channel, TerminalStatus::kStarting);
  // The restarted container's agent asks for it when it says HELLO (the old link may not have
  // noticed its end yet).
  pending_open_[id] = pty_open(*channel, t.cols, t.rows, {});
  if (auto s = store_.update_terminal_channel(id, *channel); !s) return s;
  return store_.update_terminal_status(id, "starting", std::nullopt);
}

Terminal* Relay::terminal(const std::string& id) {
  return channels_.find(id);
}

Status Relay::delete_terminal(const std::string& id) {
  deleting_.erase(id);
  restarted_at_.erase(id);
  start_in_flight_.erase(id);
  auto rec = store_.terminal_by_id(id);
  if (!rec) return rec.error();
  if (!*rec) return make_error("not_found", "no terminal " + id);
  if (AgentLink* link = agents_.link((*rec)->agent_id)) link->send(Close{(*rec)->channel, "terminal deleted"});
  pending_open_.erase(id);
  channels_.erase(id);  // viewers are told by the Terminal's destructor
  ended(id, "deleted");
  return store_.delete_terminal(id);
}

std::string Relay::status_of(const TerminalRecord& record) const {
  if (const Terminal* t = channels_.find(record.id)) return to_string(t->status());
  return record.status;
}

}  // namespace rx::hub
