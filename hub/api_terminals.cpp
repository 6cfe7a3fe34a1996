// Terminals: create, list, get, delete, attach (the viewer upgrade), and exec fan-out.
#include <cerrno>
#include <cstdlib>

#include "hub/api.h"
#include "hub/json_fields.h"
#include "hub/log.h"
#include "hub/viewer_session.h"

namespace rx::hub {

Result<TerminalRecord> Api::find_terminal(const Principal& p, const std::string& id) {
  auto t = store_.terminal_by_id(id);
  if (!t) return t.error();
  if (!*t || !p.sees((*t)->owner_id)) return make_error("not_found", "no terminal \"" + id + "\"");
  return **t;
}

nlohmann::json Api::terminal_json(const TerminalRecord& t) {
  nlohmann::json j{{"id", t.id}, {"name", t.name}, {"kind", t.kind}, {"agent", t.agent_id}, {"owner", t.owner_id},
                   {"cols", t.cols}, {"rows", t.rows}, {"status", relay_.status_of(t)}, {"created_at", t.created_at}};
  j["exit_code"] = t.exit_code ? nlohmann::json(*t.exit_code) : nlohmann::json(nullptr);
  if (t.kind == "container") j["image"] = t.image;
  if (!t.reason.empty()) j["reason"] = t.reason;
  if (auto* live = relay_.terminal(t.id)) {
    j["output_offset"] = live->output().end();
    j["viewers"] = live->viewer_count();
    if (live->exit_code()) j["exit_code"] = *live->exit_code();
  }
  return j;
}

void Api::create_terminal(const Principal& p, Request& req, const Exchange& ex) {
  auto body = parse_json_object(req.body);
  if (!body) return ex->reply(error_response(body.error()));
  auto kind = opt_string(*body, "kind");
  if (!kind) return ex->reply(error_response(kind.error()));
  if (!*kind) return ex->reply(error_response(bad_field("kind", "is required (\"agent\" or \"container\")")));
  if (**kind == "container") return create_container_terminal(p, *body, ex);
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
  // Counted only for a valid request: a typo should not cost one of the ten.
  if (auto r = limited(terminal_creates_, p.token_id, "terminal_create")) return ex->reply(std::move(*r));
  auto t = relay_.create_terminal(p.user, *agent, name->value_or(""), uint16_t(cols->value_or(80)),
                                  uint16_t(rows->value_or(24)), *env);
  if (!t) return ex->reply(error_response(t.error()));
  audit(p, "terminal.create", t->id, "agent=" + agent->id);
  log("info", "terminal.create", {{"terminal", t->id}, {"agent", agent->id}, {"user", p.user.id}});
  ex->reply(json_response(201, terminal_json(*t)));
}

void Api::list_terminals(const Principal& p, Request&, const Exchange& ex) {
  auto all = store_.list_terminals();
  if (!all) return ex->reply(error_response(all.error()));
  nlohmann::json out = nlohmann::json::array();
  for (const auto& t : *all)
    if (p.sees(t.owner_id)) out.push_back(terminal_json(t));
  ex->reply(json_response(200, {{"terminals", out}}));
}

void Api::get_terminal(const Principal& p, Request& req, const Exchange& ex) {
  auto t = find_terminal(p, req.params["id"]);
  if (!t) return ex->reply(error_response(t.error()));
  ex->reply(json_response(200, terminal_json(*t)));
}

void Api::delete_terminal(const Principal& p, Request& req, const Exchange& ex) {
  auto t = find_terminal(p, req.params["id"]);
  if (!t) return ex->reply(error_response(t.error()));
  if (t->kind == "container") return delete_container_terminal(p, *t, ex);
  if (auto s = relay_.delete_terminal(t->id); !s) return ex->reply(error_response(s.error()));
  audit(p, "terminal.delete", t->id);
  ex->reply(json_response(200, {{"id", t->id}, {"deleted", true}}));
}

void Api::exec(const Principal& p, Request& req, const Exchange& ex) {
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
  for (const auto& a : agents) audit(p, "exec", a.id, r.argv[0]);
  relay_.exec(std::move(agents), r, ex);
}

std::variant<std::unique_ptr<WsSession>, Response> Api::viewer_upgrade(Request& req, const std::string& id) {
  auto admitted = admit(req);
  if (auto* refusal = std::get_if<Response>(&admitted)) return std::move(*refusal);
  auto* principal = &std::get<Principal>(admitted);
  if (!principal->can("read")) return error_response(make_error("forbidden", "this token lacks the read scope"));
  auto t = find_terminal(*principal, id);
  if (!t) return error_response(t.error());
  Terminal* live = relay_.terminal(t->id);
  if (!live) return error_response(make_error("not_found", "terminal " + t->id + " has no live session (it " + t->status + ")"));
  if (relay_.viewer_sockets(t->id, principal->user.id) >= config_.viewers_per_terminal) {
    metrics_.add("rexec_rate_limited_total", {{"limit", "viewers_per_terminal"}});
    auto r = error_response(make_error("rate_limited", "you already have " + std::to_string(config_.viewers_per_terminal) +
                                                           " viewers on this terminal; close one first"));
    r.headers.push_back({"Retry-After", "5"});
    return r;
  }
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
  audit(*principal, "terminal.attach", t->id, read_only ? "read-only" : "control");
  return std::unique_ptr<WsSession>(new ViewerSession(relay_, live->id(), read_only, since, principal->user.id, req.peer));
}

}  // namespace rx::hub
