// Events: the dashboard's live feed. Each page holds one WebSocket (GET /api/v1/events,
// subprotocol rexec.events.v1, JSON text messages): first a snapshot of the terminals and agents
// its user may see with the last minutes of STATS per agent, then changes as they happen —
// every STATS sample at once, and terminal/agent changes found by comparing each second's views
// with the last ones sent (so no state change is missed, whichever part of the hub made it).
// A page that stops reading is cut off with a reason (4008) rather than buffered without end —
// past kMaxQueued messages or kMaxQueuedBytes (protocol/SPEC.md, "Bounds") — it reconnects and
// gets a fresh snapshot.
#pragma once

#include <uv.h>

#include <deque>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hub/base/timer.h"
#include "hub/channel/relay.h"
#include "hub/net/server.h"
#include "hub/store/store.h"
#include "hub/store/store_thread.h"

namespace rx::hub {

class EventsSession;

class Events {
 public:
  // Samples kept per agent for the sparklines: 5 minutes at the agent's 5 s.
  static constexpr size_t kHistory = 60;

  Events(uv_loop_t* loop, Store& store, Relay& relay);
  ~Events() {
    *alive_ = false;
    relay_.set_stats_listener(nullptr);
  }
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;

  void add(EventsSession* session);
  void remove(EventsSession* session);
  // From the relay: one STATS sample of an agent.
  void on_stats(const std::string& agent_id, const protocol::Stats& stats);
  // Compares the current views with the last ones sent and tells every session what changed.
  // With nobody watching it only looks at the store once a minute, unless `skip_when_idle` is false.
  // The timer's refresh reads the store on the store thread when there is one (use()), and
  // compares on the loop when the rows come back; a new page's refresh reads at once.
  void refresh(bool skip_when_idle = true);
  void use(StoreThread* thread) { thread_ = thread; }
  // A GPU lease or reservation event of one machine: to everyone who sees the machine.
  void gpu_event(const nlohmann::json& message, const std::string& agent_id);
  size_t session_count() const { return sessions_.size(); }

 private:
  // Who sees a view: its owner and, for a machine, those it is shared with (grants).
  using Audience = std::set<std::string>;
  struct Entry {
    Audience audience;
    nlohmann::json view;
  };
  void broadcast(const Audience& audience, const nlohmann::json& message);
  // The owner and grantees of an agent (container agents: the owner).
  Audience audience_of(const std::string& agent_id);
  // What a refresh reads: every agent, terminal and grant (nullopt: the store failed).
  struct Rows {
    std::optional<std::vector<AgentRecord>> agents;
    std::optional<std::vector<TerminalRecord>> terminals;
    std::optional<std::vector<GrantRecord>> grants;
  };
  static Rows read(Store& store);
  void apply(const Rows& rows, uint64_t number);

  Store& store_;
  Relay& relay_;
  std::set<EventsSession*> sessions_;
  std::map<std::string, Entry> terminals_;  // id -> last view sent
  std::map<std::string, Entry> agents_;     // host agents only, as GET /api/v1/agents lists them
  std::map<std::string, Audience> agent_audience_;  // every agent (container ones too): who sees its stats
  std::map<std::string, std::deque<nlohmann::json>> history_;
  uint64_t idle_ticks_ = 0;
  StoreThread* thread_ = nullptr;
  bool reading_ = false;  // a read is on the store thread: the next tick does not queue another
  // Each read is numbered; rows older than the last applied (a page's refresh overtook them) are dropped.
  uint64_t reads_ = 0, applied_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // false once destroyed
  Timer timer_;
};

class EventsSession final : public WsSession {
 public:
  // A page that lets this many messages, or bytes, queue up is cut off (it reconnects for a
  // snapshot). The first message (the snapshot, however big) is always taken.
  static constexpr size_t kMaxQueued = 4096;
  static constexpr size_t kMaxQueuedBytes = 8 * 1024 * 1024;

  EventsSession(Events& events, std::string user_id, bool admin) : events_(events), user_id_(std::move(user_id)), admin_(admin) {}
  ~EventsSession() override;
  bool sees(const std::set<std::string>& audience) const { return admin_ || audience.count(user_id_) > 0; }
  void send(const nlohmann::json& message);

  void on_open(WsConn& conn) override;
  void on_message(WsConn& conn, std::span<const uint8_t> message, bool binary) override;
  void on_writable(WsConn& conn) override;
  void on_close() override;
  bool pending() const override { return !queue_.empty(); }
  size_t max_message() const override { return 1024; }

 private:
  Events& events_;
  std::string user_id_;
  bool admin_;
  WsConn* conn_ = nullptr;
  bool added_ = false;
  std::deque<std::vector<uint8_t>> queue_;
  size_t queued_bytes_ = 0;
};

}  // namespace rx::hub
