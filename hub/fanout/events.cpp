#include "hub/fanout/events.h"

#include <ctime>

#include "hub/base/guard.h"
#include "hub/base/json_text.h"
#include "hub/fanout/views.h"

namespace rx::hub {

Events::Events(uv_loop_t* loop, Store& store, Relay& relay)
    : store_(store), relay_(relay), timer_(loop, [this] { refresh(); }) {
  relay_.set_stats_listener([this](const std::string& agent, const protocol::Stats& s) { on_stats(agent, s); });
  timer_.start(1000, 1000);
  timer_.unref();
}

void Events::add(EventsSession* session) {
  refresh(false);  // everyone else first learns what changed since the last tick
  sessions_.insert(session);
  nlohmann::json terminals = nlohmann::json::array(), agents = nlohmann::json::array(),
                 stats = nlohmann::json::object();
  for (const auto& [id, e] : terminals_)
    if (session->sees(e.audience)) terminals.push_back(e.view);
  for (const auto& [id, e] : agents_)
    if (session->sees(e.audience)) agents.push_back(e.view);
  for (const auto& [agent, samples] : history_) {
    auto audience = agent_audience_.find(agent);
    if (audience == agent_audience_.end() || !session->sees(audience->second)) continue;
    stats[agent] = nlohmann::json(samples);
  }
  session->send({{"type", "snapshot"}, {"terminals", terminals}, {"agents", agents}, {"stats", stats}});
}

void Events::remove(EventsSession* session) { sessions_.erase(session); }

void Events::on_stats(const std::string& agent_id, const protocol::Stats& stats) {
  auto sample = stats_view(stats, int64_t(std::time(nullptr)));
  auto& h = history_[agent_id];
  h.push_back(sample);
  while (h.size() > kHistory) h.pop_front();
  broadcast(audience_of(agent_id), {{"type", "stats"}, {"agent", agent_id}, {"sample", sample}});
}

Events::Audience Events::audience_of(const std::string& agent_id) {
  auto it = agent_audience_.find(agent_id);
  if (it != agent_audience_.end()) return it->second;
  auto a = store_.agent_by_id(agent_id);
  if (!a || !*a) return {};
  Audience audience{(*a)->owner_id};
  if (auto grants = store_.list_grants(agent_id))
    for (const auto& g : *grants) audience.insert(g.subject_id);
  return agent_audience_[agent_id] = audience;
}

void Events::gpu_event(const nlohmann::json& message, const std::string& agent_id) {
  broadcast(audience_of(agent_id), message);
}

void Events::refresh(bool skip_when_idle) {
  if (sessions_.empty()) {
    // Nobody is watching: forget the views (a page that comes gets a fresh snapshot) and look at
    // the store only once a minute, to drop the stats of agents that are gone.
    terminals_.clear();
    agents_.clear();
    if (skip_when_idle && ++idle_ticks_ % 60 != 0) return;
  }
  uint64_t number = ++reads_;
  if (!thread_ || !skip_when_idle) return apply(read(store_), number);
  if (reading_) return;
  reading_ = true;
  auto rows = std::make_shared<Rows>();
  thread_->run([rows](Store& store) { *rows = read(store); },
               [this, rows, number, alive = alive_] {
                 if (!*alive) return;
                 reading_ = false;
                 apply(*rows, number);
               });
}

Events::Rows Events::read(Store& store) {
  Rows rows;
  if (auto a = store.list_agents()) rows.agents = std::move(*a);
  if (auto t = store.list_terminals(TerminalFilter{})) rows.terminals = std::move(*t);
  if (auto g = store.list_grants("")) rows.grants = std::move(*g);
  return rows;
}

void Events::apply(const Rows& rows, uint64_t number) {
  if (number < applied_) return;  // a newer read was applied meanwhile
  applied_ = number;
  const auto& agents = rows.agents;
  const auto& terminals = rows.terminals;
  const auto& grants = rows.grants;
  if (!agents || !terminals || !grants) return;  // the store failed: next second
  std::map<std::string, Audience> shared;
  for (const auto& g : *grants) shared[g.agent_id].insert(g.subject_id);
  std::map<std::string, std::string> names;
  std::map<std::string, Entry> now_agents;
  agent_audience_.clear();
  for (const auto& a : *agents) {
    if (a.revoked) continue;
    Audience audience = shared[a.id];
    audience.insert(a.owner_id);
    agent_audience_[a.id] = audience;
    names[a.id] = a.name;
    if (a.kind == "host") now_agents[a.id] = {audience, agent_view(a, relay_)};
  }
  std::map<std::string, Entry> now_terminals;
  for (const auto& t : *terminals) {
    auto name = names.find(t.agent_id);
    auto view = terminal_view(t, relay_, name == names.end() ? std::string() : name->second);
    view.erase("output_offset");  // changes with every byte; the page has no use for it here
    now_terminals[t.id] = {{t.owner_id}, std::move(view)};
  }
  auto diff = [this](std::map<std::string, Entry>& was, std::map<std::string, Entry>& now, const char* kind,
                     const char* removed) {
    for (const auto& [id, e] : now) {
      auto it = was.find(id);
      if (it == was.end() || it->second.view != e.view) broadcast(e.audience, {{"type", kind}, {kind, e.view}});
      // Someone got or lost sight of it (a grant made or revoked): for them it is new, or gone.
      if (it != was.end() && it->second.audience != e.audience)
        for (auto* s : sessions_) {
          bool had = s->sees(it->second.audience), has = s->sees(e.audience);
          if (had && !has) s->send({{"type", removed}, {"id", id}});
          if (!had && has && it->second.view == e.view) s->send({{"type", kind}, {kind, e.view}});
        }
    }
    for (const auto& [id, e] : was)
      if (!now.count(id)) broadcast(e.audience, {{"type", removed}, {"id", id}});
    was = std::move(now);
  };
  // A GPU that just got a process breaking its lease: said once, as an event of its own.
  for (const auto& [id, e] : now_agents) {
    auto was = agents_.find(id);
    for (const auto& g : e.view.value("gpus", nlohmann::json::array())) {
      if (!g.value("violation", false)) continue;
      bool before = false;
      if (was != agents_.end())
        for (const auto& old : was->second.view.value("gpus", nlohmann::json::array()))
          if (old.value("index", -1) == g.value("index", -2)) before = old.value("violation", false);
      if (!before)
        broadcast(e.audience, {{"type", "gpu"}, {"event", "violation"}, {"agent", id}, {"gpus", {g["index"]}},
                               {"holder", g["holder"]}, {"processes", g["processes"]}});
    }
  }
  diff(agents_, now_agents, "agent", "agent_removed");
  diff(terminals_, now_terminals, "terminal", "terminal_removed");
  // Stats of agents that are gone (deleted container terminals) are dropped.
  for (auto it = history_.begin(); it != history_.end();)
    it = names.count(it->first) ? std::next(it) : history_.erase(it);
}

void Events::broadcast(const Audience& audience, const nlohmann::json& message) {
  if (sessions_.empty()) return;
  for (auto* s : sessions_)
    if (s->sees(audience)) s->send(message);
}

EventsSession::~EventsSession() {
  if (added_) events_.remove(this);
}

void EventsSession::send(const nlohmann::json& message) {
  if (!conn_ || conn_->closing()) return;
  std::string text = json_text(message);
  if (!queue_.empty() && (queue_.size() >= kMaxQueued || queued_bytes_ + text.size() > kMaxQueuedBytes)) {
    queue_.clear();
    queued_bytes_ = 0;
    conn_->close(4008, "events backlog: the page is not reading; reconnect");
    return;
  }
  std::vector<uint8_t> frame(kFrameHeadroom + text.size());
  std::copy(text.begin(), text.end(), frame.begin() + kFrameHeadroom);
  queued_bytes_ += text.size();
  queue_.push_back(std::move(frame));
  conn_->want_write();
}

void EventsSession::on_open(WsConn& conn) {
  conn_ = &conn;
  added_ = true;
  if (!guarded("events.open", [&] { events_.add(this); })) conn.close(1011, "internal error");
}

void EventsSession::on_message(WsConn& conn, std::span<const uint8_t>, bool) {
  conn.close(1003, "the events feed takes no messages");
}

void EventsSession::on_writable(WsConn& conn) {
  while (!queue_.empty()) {
    size_t size = queue_.front().size() - kFrameHeadroom;  // (sending takes the bytes)
    if (!conn.send(queue_.front(), true)) return;
    queued_bytes_ -= size;
    queue_.pop_front();
    if (!queue_.empty() && conn.choked()) {
      conn.want_write();
      return;
    }
  }
}

void EventsSession::on_close() {
  conn_ = nullptr;
  if (added_) events_.remove(this);
  added_ = false;
}

}  // namespace rx::hub
