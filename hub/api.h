// Api: the hub's HTTP surface. Authenticates every request (bearer API token), authorises it
// against the resource's owner, validates JSON bodies field by field, and calls the Relay.
// Also approves WebSocket upgrades: agents (credential or enrollment token) and viewers.
#pragma once

#include <uv.h>

#include <string>

#include "hub/relay.h"
#include "hub/router.h"
#include "hub/server.h"
#include "hub/store.h"

namespace rx::hub {

struct Principal {
  User user;
  std::string scopes;  // "read write admin"
  bool can(std::string_view scope) const;
};

class Api final : public HttpHandler {
 public:
  Api(Store& store, Relay& relay);

  void handle(std::shared_ptr<HttpExchange> exchange) override;
  std::variant<std::unique_ptr<WsSession>, Response> upgrade(Request& request, const std::string& protocol) override;

  // Every route, for docs checks: "GET /api/v1/terminals".
  std::vector<std::string> route_list() const;

 private:
  using Handler = std::function<void(const Principal&, Request&, const std::shared_ptr<HttpExchange>&)>;
  void routes();
  Result<Principal> authenticate(const Request& request);

  void create_enrollment(const Principal&, Request&, const std::shared_ptr<HttpExchange>&);
  void list_agents(const Principal&, Request&, const std::shared_ptr<HttpExchange>&);
  void delete_agent(const Principal&, Request&, const std::shared_ptr<HttpExchange>&);
  void create_terminal(const Principal&, Request&, const std::shared_ptr<HttpExchange>&);
  void list_terminals(const Principal&, Request&, const std::shared_ptr<HttpExchange>&);
  void get_terminal(const Principal&, Request&, const std::shared_ptr<HttpExchange>&);
  void delete_terminal(const Principal&, Request&, const std::shared_ptr<HttpExchange>&);
  void exec(const Principal&, Request&, const std::shared_ptr<HttpExchange>&);

  Result<AgentRecord> find_agent(const Principal& p, const std::string& id_or_name);
  Result<TerminalRecord> find_terminal(const Principal& p, const std::string& id);
  nlohmann::json terminal_json(const TerminalRecord& t);

  Store& store_;
  Relay& relay_;
  Router<Handler> router_;
};

}  // namespace rx::hub
