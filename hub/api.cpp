#include "hub/api.h"

#include <ctime>

#include "hub/agent_session.h"
#include "hub/log.h"
#include "hub/tokens.h"
#include "hub/viewer_session.h"

namespace rx::hub {
namespace {

int64_t now() { return int64_t(std::time(nullptr)); }

Error bad_field(const std::string& field, const std::string& why) {
  return make_error("bad_field", field + ": " + why);
}

// Typed getters for JSON bodies: a wrong type names the field.
Result<std::optional<std::string>> opt_string(const nlohmann::json& j, const std::string& field, size_t max = 256) {
  if (!j.contains(field) || j[field].is_null()) return std::optional<std::string>();
  if (!j[field].is_string()) return bad_field(field, "must be a string");
  auto s = j[field].get<std::string>();
  if (s.size() > max) return bad_field(field, "longer than " + std::to_string(max) + " characters");
  return std::optional<std::string>(s);
}

Result<std::optional<int64_t>> opt_int(const nlohmann::json& j, const std::string& field, int64_t min, int64_t max) {
  if (!j.contains(field) || j[field].is_null()) return std::optional<int64_t>();
  if (!j[field].is_number_integer()) return bad_field(field, "must be an integer");
  auto v = j[field].get<int64_t>();
  if (v < min || v > max) return bad_field(field, "must be between " + std::to_string(min) + " and " + std::to_string(max));
  return std::optional<int64_t>(v);
}

Result<std::map<std::string, std::string>> opt_env(const nlohmann::json& j) {
  std::map<std::string, std::string> env;
  if (!j.contains("env") || j["env"].is_null()) return env;
  if (!j["env"].is_object()) return bad_field("env", "must be an object of strings");
  for (const auto& [k, v] : j["env"].items()) {
    if (!v.is_string()) return bad_field("env." + k, "must be a string");
    if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos)
      return bad_field("env." + k, "is not a valid variable name");
    env[k] = v.get<std::string>();
  }
  return env;
}

}  // namespace

bool Principal::can(std::string_view scope) const {
  if (user.admin && scopes.find("admin") != std::string::npos) return true;
  size_t pos = 0;
  std::string_view s(scopes);
  while (pos <= s.size()) {
    auto end = s.find(' ', pos);
    if (s.substr(pos, end - pos) == scope) return true;
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return false;
}

Api::Api(Store& store, Relay& relay) : store_(store), relay_(relay) { routes(); }

void Api::routes() {
  auto bind = [this](auto method) {
    return [this, method](const Principal& p, Request& r, const std::shared_ptr<HttpExchange>& ex) {
      (this->*method)(p, r, ex);
    };
  };
  router_.add("POST", "/api/v1/agent-enrollments", bind(&Api::create_enrollment));
  router_.add("GET", "/api/v1/agents", bind(&Api::list_agents));
  router_.add("DELETE", "/api/v1/agents/{id}", bind(&Api::delete_agent));
  router_.add("POST", "/api/v1/terminals", bind(&Api::create_terminal));
  router_.add("GET", "/api/v1/terminals", bind(&Api::list_terminals));
  router_.add("GET", "/api/v1/terminals/{id}", bind(&Api::get_terminal));
  router_.add("DELETE", "/api/v1/terminals/{id}", bind(&Api::delete_terminal));
  router_.add("POST", "/api/v1/exec", bind(&Api::exec));
}

std::vector<std::string> Api::route_list() const {
  std::vector<std::string> out{"GET /healthz", "GET /api/v1/agent/connect", "GET /api/v1/terminals/{id}/attach"};
  for (const auto& r : router_.routes()) out.push_back(r.method + " " + r.pattern);
  return out;
}

Result<Principal> Api::authenticate(const Request& request) {
  auto token = request.bearer();
  if (!token) return make_error("unauthorized", "missing bearer token (Authorization: Bearer <token>)");
  if (!looks_like(TokenKind::kApi, *token)) return make_error("unauthorized", "not an API token");
  auto rec = store_.token_by_hash(token_hash(*token));
  if (!rec) return rec.error();
  if (!*rec || (*rec)->revoked) return make_error("unauthorized", "unknown or revoked token");
  if ((*rec)->expires_at && *(*rec)->expires_at <= now()) return make_error("unauthorized", "token expired");
  auto user = store_.user_by_id((*rec)->user_id);
  if (!user) return user.error();
  if (!*user) return make_error("unauthorized", "the token's user no longer exists");
  return Principal{**user, (*rec)->scopes};
}

void Api::handle(std::shared_ptr<HttpExchange> ex) {
  Request& req = ex->request;
  if (req.path == "/healthz" && req.method == "GET") {
    ex->reply(json_response(200, {{"ok", true}}));
    return;
  }
  auto match = router_.match(req);
  if (!match.handler) {
    auto r = error_response(match.error);
    if (!match.allow.empty()) r.headers.push_back({"Allow", match.allow});
    ex->reply(std::move(r));
    return;
  }
  auto principal = authenticate(req);
  if (!principal) {
    log("info", "auth.failed", {{"path", req.path}, {"peer", req.peer}, {"reason", principal.error().message}});
    ex->reply(error_response(principal.error()));
    return;
  }
  bool writes = req.method != "GET";
  if (!principal->can(writes ? "write" : "read")) {
    ex->reply(error_response(make_error("forbidden", std::string("this token lacks the ") + (writes ? "write" : "read") + " scope")));
    return;
  }
  (*match.handler)(*principal, req, ex);
}

// ---- agents ---------------------------------------------------------------------------------

void Api::create_enrollment(const Principal& p, Request& req, const std::shared_ptr<HttpExchange>& ex) {
  nlohmann::json body = nlohmann::json::object();
  if (!req.body.empty()) {
    auto parsed = parse_json_object(req.body);
    if (!parsed) return ex->reply(error_response(parsed.error()));
    body = *parsed;
  }
  auto expires_in = opt_int(body, "expires_in", 60, 7 * 24 * 3600);
  if (!expires_in) return ex->reply(error_response(expires_in.error()));
  auto uses = opt_int(body, "uses", 1, 1000);
  if (!uses) return ex->reply(error_response(uses.error()));
  std::string token = new_token(TokenKind::kEnrollment);
  int64_t expires_at = now() + expires_in->value_or(900);
  if (auto s = store_.create_enrollment(p.user.id, token_hash(token), expires_at, int(uses->value_or(1))); !s)
    return ex->reply(error_response(s.error()));
  (void)store_.audit(p.user.id, "enrollment.create", "", "uses=" + std::to_string(uses->value_or(1)));
  ex->reply(json_response(201, {{"token", token}, {"expires_at", expires_at}, {"uses", uses->value_or(1)}}));
}

Result<AgentRecord> Api::find_agent(const Principal& p, const std::string& id_or_name) {
  auto agents = store_.list_agents();
  if (!agents) return agents.error();
  for (const auto& a : *agents) {
    if (a.revoked || (a.id != id_or_name && a.name != id_or_name)) continue;
    if (a.owner_id != p.user.id && !p.user.admin) continue;  // others' agents do not exist for you
    return a;
  }
  return make_error("not_found", "no agent \"" + id_or_name + "\"");
}

void Api::list_agents(const Principal& p, Request&, const std::shared_ptr<HttpExchange>& ex) {
  auto agents = store_.list_agents();
  if (!agents) return ex->reply(error_response(agents.error()));
  nlohmann::json out = nlohmann::json::array();
  for (const auto& a : *agents) {
    if (a.revoked || (a.owner_id != p.user.id && !p.user.admin)) continue;
    nlohmann::json j{{"id", a.id}, {"name", a.name}, {"online", relay_.online(a.id)}, {"owner", a.owner_id}};
    auto host = nlohmann::json::parse(a.host_json, nullptr, false);
    j["host"] = host.is_discarded() ? nlohmann::json::object() : host;
    j["gpus"] = j["host"].value("gpus", nlohmann::json::array());
    j["last_seen_at"] = a.last_seen_at ? nlohmann::json(*a.last_seen_at) : nlohmann::json(nullptr);
    if (auto s = relay_.latest_stats(a.id)) {
      nlohmann::json gpus = nlohmann::json::array();
      for (const auto& g : s->gpus)
        gpus.push_back({{"index", g.index}, {"utilization", g.utilization}, {"memory_used", g.memory_used},
                        {"memory_total", g.memory_total}});
      j["stats"] = {{"cpu_percent", s->cpu_permille / 10.0}, {"memory_used", s->memory_used},
                    {"memory_total", s->memory_total}, {"gpus", gpus}};
    } else {
      j["stats"] = nullptr;
    }
    out.push_back(std::move(j));
  }
  ex->reply(json_response(200, {{"agents", out}}));
}

void Api::delete_agent(const Principal& p, Request& req, const std::shared_ptr<HttpExchange>& ex) {
  auto a = find_agent(p, req.params["id"]);
  if (!a) return ex->reply(error_response(a.error()));
  if (auto s = store_.revoke_agent(a->id); !s) return ex->reply(error_response(s.error()));
  relay_.revoke_agent(a->id);
  (void)store_.audit(p.user.id, "agent.revoke", a->id, "");
  ex->reply(json_response(200, {{"id", a->id}, {"revoked", true}}));
}

// ---- terminals ------------------------------------------------------------------------------

Result<TerminalRecord> Api::find_terminal(const Principal& p, const std::string& id) {
  auto t = store_.terminal_by_id(id);
  if (!t) return t.error();
  if (!*t || ((*t)->owner_id != p.user.id && !p.user.admin)) return make_error("not_found", "no terminal \"" + id + "\"");
  return **t;
}

nlohmann::json Api::terminal_json(const TerminalRecord& t) {
  nlohmann::json j{{"id", t.id}, {"name", t.name}, {"kind", t.kind}, {"agent", t.agent_id}, {"owner", t.owner_id},
                   {"cols", t.cols}, {"rows", t.rows}, {"status", relay_.status_of(t)}, {"created_at", t.created_at}};
  j["exit_code"] = t.exit_code ? nlohmann::json(*t.exit_code) : nlohmann::json(nullptr);
  if (auto* live = relay_.terminal(t.id)) {
    j["output_offset"] = live->output().end();
    j["viewers"] = live->viewer_count();
    if (live->exit_code()) j["exit_code"] = *live->exit_code();
  }
  return j;
}

void Api::create_terminal(const Principal& p, Request& req, const std::shared_ptr<HttpExchange>& ex) {
  auto body = parse_json_object(req.body);
  if (!body) return ex->reply(error_response(body.error()));
  auto kind = opt_string(*body, "kind");
  if (!kind) return ex->reply(error_response(kind.error()));
  if (!*kind) return ex->reply(error_response(bad_field("kind", "is required (\"agent\" or \"container\")")));
  if (**kind == "container")
    return ex->reply(error_response(make_error("bad_field", "kind: container terminals are not available on this hub yet")));
  if (**kind != "agent") return ex->reply(error_response(bad_field("kind", "must be \"agent\" or \"container\"")));
  auto agent_ref = opt_string(*body, "agent");
  if (!agent_ref) return ex->reply(error_response(agent_ref.error()));
  if (!*agent_ref) return ex->reply(error_response(bad_field("agent", "is required for kind agent (id or name)")));
  auto name = opt_string(*body, "name", 128);
  auto cols = opt_int(*body, "cols", 1, 1000);
  auto rows = opt_int(*body, "rows", 1, 1000);
  auto env = opt_env(*body);
  for (const Error* e : {name ? nullptr : &name.error(), cols ? nullptr : &cols.error(), rows ? nullptr : &rows.error(),
                         env ? nullptr : &env.error()})
    if (e) return ex->reply(error_response(*e));
  auto agent = find_agent(p, **agent_ref);
  if (!agent) return ex->reply(error_response(make_error("not_found", agent.error().message)));
  auto t = relay_.create_terminal(p.user, *agent, name->value_or(""), uint16_t(cols->value_or(80)),
                                  uint16_t(rows->value_or(24)), *env);
  if (!t) return ex->reply(error_response(t.error()));
  (void)store_.audit(p.user.id, "terminal.create", t->id, "agent=" + agent->id);
  log("info", "terminal.create", {{"terminal", t->id}, {"agent", agent->id}, {"user", p.user.id}});
  ex->reply(json_response(201, terminal_json(*t)));
}

void Api::list_terminals(const Principal& p, Request&, const std::shared_ptr<HttpExchange>& ex) {
  auto all = store_.list_terminals();
  if (!all) return ex->reply(error_response(all.error()));
  nlohmann::json out = nlohmann::json::array();
  for (const auto& t : *all)
    if (t.owner_id == p.user.id || p.user.admin) out.push_back(terminal_json(t));
  ex->reply(json_response(200, {{"terminals", out}}));
}

void Api::get_terminal(const Principal& p, Request& req, const std::shared_ptr<HttpExchange>& ex) {
  auto t = find_terminal(p, req.params["id"]);
  if (!t) return ex->reply(error_response(t.error()));
  ex->reply(json_response(200, terminal_json(*t)));
}

void Api::delete_terminal(const Principal& p, Request& req, const std::shared_ptr<HttpExchange>& ex) {
  auto t = find_terminal(p, req.params["id"]);
  if (!t) return ex->reply(error_response(t.error()));
  if (auto s = relay_.delete_terminal(t->id); !s) return ex->reply(error_response(s.error()));
  (void)store_.audit(p.user.id, "terminal.delete", t->id, "");
  ex->reply(json_response(200, {{"id", t->id}, {"deleted", true}}));
}

void Api::exec(const Principal& p, Request& req, const std::shared_ptr<HttpExchange>& ex) {
  auto body = parse_json_object(req.body);
  if (!body) return ex->reply(error_response(body.error()));
  ExecRequest r;
  const auto& j = *body;
  if (!j.contains("targets") || !j["targets"].is_array() || j["targets"].empty() || j["targets"].size() > 256)
    return ex->reply(error_response(bad_field("targets", "must be a non-empty array of up to 256 agent ids or names")));
  if (!j.contains("argv") || !j["argv"].is_array() || j["argv"].empty() || j["argv"].size() > 1024)
    return ex->reply(error_response(bad_field("argv", "must be a non-empty array of strings (the program and its arguments)")));
  for (const auto& t : j["targets"]) {
    if (!t.is_string()) return ex->reply(error_response(bad_field("targets", "every target must be a string")));
    r.targets.push_back(t.get<std::string>());
  }
  for (const auto& a : j["argv"]) {
    if (!a.is_string()) return ex->reply(error_response(bad_field("argv", "every element must be a string")));
    r.argv.push_back(a.get<std::string>());
  }
  auto timeout = opt_int(j, "timeout_s", 1, 3600);
  if (!timeout) return ex->reply(error_response(timeout.error()));
  r.timeout_s = int(timeout->value_or(30));
  auto env = opt_env(j);
  if (!env) return ex->reply(error_response(env.error()));
  r.env = *env;
  std::vector<AgentRecord> agents;
  for (const auto& t : r.targets) {
    auto a = find_agent(p, t);
    if (!a) {
      // A terminal id targets the agent it runs on.
      auto term = find_terminal(p, t);
      if (!term) return ex->reply(error_response(make_error("not_found", "no agent or terminal \"" + t + "\"")));
      auto owner_agent = store_.agent_by_id(term->agent_id);
      if (!owner_agent || !*owner_agent) return ex->reply(error_response(make_error("not_found", "no agent for " + t)));
      agents.push_back(**owner_agent);
      continue;
    }
    agents.push_back(*a);
  }
  relay_.exec(p.user, std::move(agents), r, ex);
}

// ---- WebSocket upgrades -----------------------------------------------------------------------

std::variant<std::unique_ptr<WsSession>, Response> Api::upgrade(Request& req, const std::string& protocol) {
  if (req.path == "/api/v1/agent/connect") {
    if (protocol != "rexec.agent.v1")
      return error_response(make_error("bad_request", "the agent link needs subprotocol rexec.agent.v1"));
    auto token = req.bearer();
    if (!token) return error_response(make_error("unauthorized", "missing agent credential or enrollment token"));
    if (looks_like(TokenKind::kAgentCredential, *token)) {
      auto a = store_.agent_by_credential(token_hash(*token));
      if (!a) return error_response(a.error());
      if (!*a) return error_response(make_error("unauthorized", "unknown agent credential"));
      if ((*a)->revoked) return error_response(make_error("unauthorized", "agent credential revoked"));
      return std::unique_ptr<WsSession>(new AgentSession(relay_, **a, std::nullopt));
    }
    if (looks_like(TokenKind::kEnrollment, *token)) {
      auto owner = store_.consume_enrollment(token_hash(*token), now());
      if (!owner) {
        log("info", "agent.enroll_refused", {{"peer", req.peer}, {"reason", owner.error().code}});
        return error_response(make_error("unauthorized", owner.error().message));
      }
      std::string credential = new_token(TokenKind::kAgentCredential);
      std::string name = req.header("x-rexec-agent-name").value_or("");
      if (name.empty() || name.size() > 128) name = "agent-" + new_id("").substr(0, 6);
      auto a = store_.create_agent(*owner, name, token_hash(credential));
      if (!a) return error_response(a.error());
      (void)store_.audit(*owner, "agent.enroll", a->id, "name=" + name);
      log("info", "agent.enrolled", {{"agent", a->id}, {"name", name}});
      return std::unique_ptr<WsSession>(new AgentSession(relay_, *a, credential));
    }
    return error_response(make_error("unauthorized", "not an agent credential or enrollment token"));
  }

  static const std::string kPrefix = "/api/v1/terminals/", kSuffix = "/attach";
  if (req.path.size() > kPrefix.size() + kSuffix.size() && req.path.starts_with(kPrefix) && req.path.ends_with(kSuffix)) {
    if (protocol != "rexec.term.v1")
      return error_response(make_error("bad_request", "attaching needs subprotocol rexec.term.v1"));
    std::string id = req.path.substr(kPrefix.size(), req.path.size() - kPrefix.size() - kSuffix.size());
    auto principal = authenticate(req);
    if (!principal) return error_response(principal.error());
    if (!principal->can("read")) return error_response(make_error("forbidden", "this token lacks the read scope"));
    auto t = find_terminal(*principal, id);
    if (!t) return error_response(t.error());
    Terminal* live = relay_.terminal(t->id);
    if (!live) return error_response(make_error("not_found", "terminal " + t->id + " has no live session (it " + t->status + ")"));
    std::optional<uint64_t> since;
    if (auto s = req.query.find("since"); s != req.query.end()) {
      char* end = nullptr;
      errno = 0;
      unsigned long long v = std::strtoull(s->second.c_str(), &end, 10);
      if (s->second.empty() || *end != '\0' || errno == ERANGE || s->second[0] == '-')
        return error_response(make_error("bad_request", "since must be a byte offset (a non-negative integer)"));
      since = v;
    }
    bool read_only = !principal->can("write");
    (void)store_.audit(principal->user.id, "terminal.attach", t->id, read_only ? "read-only" : "control");
    return std::unique_ptr<WsSession>(new ViewerSession(relay_, live->id(), read_only, since, principal->user.id));
  }
  return error_response(make_error("not_found", "no WebSocket endpoint at " + req.path));
}

}  // namespace rx::hub
