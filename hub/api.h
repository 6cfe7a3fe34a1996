// Api: the hub's HTTP surface. Every request goes through handle(): route match, per-IP limit,
// authentication (bearer API token), per-token limit, the route's access level (read, write,
// admin), then the handler, which authorises against the resource's owner (others' resources
// answer 404, as if they did not exist). Also approves WebSocket upgrades: agents (credential or
// enrollment token) and viewers. Handlers live in api_*.cpp by resource.
#pragma once

#include <uv.h>

#include <chrono>
#include <string>

#include "hub/config.h"
#include "hub/containers.h"
#include "hub/metrics.h"
#include "hub/rate_limit.h"
#include "hub/relay.h"
#include "hub/router.h"
#include "hub/server.h"
#include "hub/store.h"

namespace rx::hub {

struct Principal {
  User user;
  std::string token_id;
  std::string scopes;  // "read write admin"
  std::string ip;
  // Admin scope counts only on an admin user's token.
  bool can(std::string_view scope) const;
  bool is_admin() const { return user.admin && can("admin"); }
  bool sees(const std::string& owner_id) const { return owner_id == user.id || is_admin(); }
};

// What a route asks of its caller.
enum class Access { kPublic, kRead, kWrite, kAdmin };

class Api final : public HttpHandler {
 public:
  Api(Store& store, Relay& relay, const HubConfig& config, Containers& containers);

  void handle(std::shared_ptr<HttpExchange> exchange) override;
  std::variant<std::unique_ptr<WsSession>, Response> upgrade(Request& request, const std::string& protocol) override;

  // Every route, for docs checks: "GET /api/v1/terminals".
  std::vector<std::string> route_list() const;
  // From the hub's housekeeping timer: /healthz reports the loop alive while this keeps coming.
  void tick() { last_tick_ = std::chrono::steady_clock::now(); }
  Metrics& metrics() { return metrics_; }
  void set_warm_pool(class WarmPool* pool) { pool_ = pool; }

 private:
  using Exchange = std::shared_ptr<HttpExchange>;
  using Handler = std::function<void(const Principal&, Request&, const Exchange&)>;
  struct Route {
    Access access;
    Handler handler;
  };
  void routes();
  void describe_metrics();
  Result<Principal> authenticate(const Request& request);
  // Per-IP limit, authentication, per-token limit: the caller, or the answer refusing it.
  std::variant<Principal, Response> admit(const Request& request);
  // A refused credential: counted, logged, audited (actor "anonymous"); the error response.
  Response auth_failed(const Request& request, const Error& error);
  // 429 with Retry-After when `limiter` says no; counts the hit.
  std::optional<Response> limited(RateLimiter& limiter, const std::string& key, const std::string& which);
  void audit(const std::string& actor, const Request& req, const std::string& action, const std::string& target,
             const std::string& detail = "");
  void audit(const Principal& p, const std::string& action, const std::string& target, const std::string& detail = "");

  // api_agents.cpp
  void create_enrollment(const Principal&, Request&, const Exchange&);
  void list_agents(const Principal&, Request&, const Exchange&);
  void delete_agent(const Principal&, Request&, const Exchange&);
  Result<AgentRecord> find_agent(const Principal& p, const std::string& id_or_name);
  std::variant<std::unique_ptr<WsSession>, Response> agent_upgrade(Request& req);
  // api_terminals.cpp
  void create_terminal(const Principal&, Request&, const Exchange&);
  void list_terminals(const Principal&, Request&, const Exchange&);
  void get_terminal(const Principal&, Request&, const Exchange&);
  void delete_terminal(const Principal&, Request&, const Exchange&);
  void exec(const Principal&, Request&, const Exchange&);
  Result<TerminalRecord> find_terminal(const Principal& p, const std::string& id);
  nlohmann::json terminal_json(const TerminalRecord& t);
  std::variant<std::unique_ptr<WsSession>, Response> viewer_upgrade(Request& req, const std::string& id);
  // api_containers.cpp
  void create_container_terminal(const Principal&, const nlohmann::json& body, const Exchange&);
  void delete_container_terminal(const Principal&, const TerminalRecord& t, const Exchange&);
  // The container started: remember it, audit, answer 201 (`note`: " warm" for the pool's).
  void created_container_terminal(const Principal& p, TerminalRecord t, const std::string& container_id,
                                  const std::string& note, const Exchange& ex);
  void stop_terminal(const Principal&, Request&, const Exchange&);
  void start_terminal(const Principal&, Request&, const Exchange&);
  // api_tokens.cpp
  void create_token(const Principal&, Request&, const Exchange&);
  void list_tokens(const Principal&, Request&, const Exchange&);
  void delete_token(const Principal&, Request&, const Exchange&);
  void create_user(const Principal&, Request&, const Exchange&);
  void list_users(const Principal&, Request&, const Exchange&);
  // api_service.cpp
  void list_audit(const Principal&, Request&, const Exchange&);
  void healthz(const Principal&, Request&, const Exchange&);
  void get_metrics(const Principal&, Request&, const Exchange&);

  Store& store_;
  Relay& relay_;
  HubConfig config_;
  Containers& containers_;
  class WarmPool* pool_ = nullptr;
  Router<Route> router_;
  Metrics metrics_;
  RateLimiter ip_requests_;
  RateLimiter token_requests_;
  RateLimiter terminal_creates_;
  std::chrono::steady_clock::time_point last_tick_ = std::chrono::steady_clock::now();
};

}  // namespace rx::hub
