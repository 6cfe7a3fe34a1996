// Agents: enrollment tokens, the agent list, revocation, and the agent link's upgrade.
#include <ctime>

#include "hub/api/api.h"
#include "hub/api/json_fields.h"
#include "hub/base/json_text.h"
#include "hub/base/tokens.h"
#include "hub/fanout/views.h"
#include "hub/link/agent_session.h"
#include "protocol/log_line.h"

namespace rx::hub {
namespace {
int64_t now() { return int64_t(std::time(nullptr)); }
}  // namespace

Reply Api::create_enrollment(const Principal& p, Request& req) {
  auto body = optional_body(req.body);
  if (!body) return body.error();
  auto expires_in = opt_int(*body, "expires_in", 60, 7 * 24 * 3600);
  if (!expires_in) return expires_in.error();
  auto uses = opt_int(*body, "uses", 1, 100000);
  if (!uses) return uses.error();
  std::string token = new_token(TokenKind::kEnrollment);
  int64_t expires_at = now() + expires_in->value_or(900);
  if (auto s = store_.create_enrollment(p.user.id, token_hash(token), expires_at, int(uses->value_or(1))); !s)
    return s.error();
  audit(p, "enrollment.create", "", "uses=" + std::to_string(uses->value_or(1)));
  // The one line "Add machine" shows. The token goes in on stdin (printf is a shell builtin, so it
  // is in no process's argv), the hub's URL as an argument.
  std::string base = public_base(req);
  std::string install = "curl -fsSL " + base + "/install-agent.sh -o rexec-install.sh && printf '%s\\n' '" + token +
                        "' | sudo sh rexec-install.sh --hub " + base + " --enroll-token-file -";
  return json_response(201, {{"token", token}, {"expires_at", expires_at}, {"uses", uses->value_or(1)},
                                {"install_command", install}});
}

Machine Api::machine_of(const Principal& p, const AgentRecord& a,
                        const std::map<std::string, GrantRecord>& grants) const {
  Machine m{a, MachineAccess::kNone, "", ""};
  if (a.owner_id == p.user.id) {
    m.access = MachineAccess::kOwner;
    m.access_name = "owner";
  } else if (p.is_admin()) {
    m.access = MachineAccess::kOwner;
    m.access_name = "admin";
  }
  if (auto g = grants.find(a.id); g != grants.end()) {
    m.unix_user = g->second.unix_user;
    if (m.access == MachineAccess::kNone) {
      m.access = g->second.role == "use" ? MachineAccess::kUse : MachineAccess::kView;
      m.access_name = g->second.role;
    }
  }
  return m;
}

Result<std::map<std::string, GrantRecord>> Api::grants_by_agent(const Principal& p) {
  auto grants = store_.grants_of_user(p.user.id);
  if (!grants) return grants.error();
  std::map<std::string, GrantRecord> out;
  for (auto& g : *grants) out[g.agent_id] = std::move(g);
  return out;
}

Result<Machine> Api::find_machine(const Principal& p, const std::string& id_or_name, MachineAccess need,
                                  const std::string& what) {
  auto agents = store_.agents_called(id_or_name);
  if (!agents) return agents.error();
  auto grants = grants_by_agent(p);
  if (!grants) return grants.error();
  for (const auto& a : *agents) {
    if (a.revoked || a.kind != "host") continue;
    Machine m = machine_of(p, a, *grants);
    if (m.access == MachineAccess::kNone) continue;  // others' machines do not exist for you
    if (m.access < need)
      return make_error("forbidden", "you have " + m.access_name + " access to machine " + a.name + "; " +
                                         (what.empty() ? "this" : what) + " needs " +
                                         (need == MachineAccess::kOwner ? "its owner or an admin" : "a use grant"));
    return m;
  }
  return make_error("not_found", "no agent \"" + id_or_name + "\"");
}

nlohmann::json Api::machine_json(const Machine& m) {
  auto j = agent_view(m.agent, relay_);
  j["access"] = m.access_name;
  if (!m.unix_user.empty()) j["unix_user"] = m.unix_user;
  return j;
}

Reply Api::list_agents(const Principal& p, Request&) {
  auto agents = store_.list_agents();
  if (!agents) return agents.error();
  auto grants = grants_by_agent(p);
  if (!grants) return grants.error();
  nlohmann::json out = nlohmann::json::array();
  for (const auto& a : *agents) {
    if (a.revoked || a.kind != "host") continue;  // container agents show as their terminals
    Machine m = machine_of(p, a, *grants);
    if (m.access != MachineAccess::kNone) out.push_back(machine_json(m));
  }
  return json_response(200, {{"agents", out}});
}

Reply Api::get_agent(const Principal& p, Request& req) {
  auto m = find_machine(p, req.params["id"]);
  if (!m) return m.error();
  return json_response(200, machine_json(*m));
}

Reply Api::unenroll_self(const Principal&, Request& req) {
  // As for the agent link: failures are throttled per address before any lookup.
  if (auto r = auth_throttled(req.peer)) return std::move(*r);
  auto refuse = [&](const std::string& why) { return auth_failed(req, make_error("unauthorized", why)); };
  auto token = req.bearer();
  if (!token || !looks_like(TokenKind::kAgentCredential, *token))
    return refuse("this route takes an agent credential (Authorization: Bearer rxa_...)");
  std::string hash = token_hash(*token);
  auto a = store_.agent_by_credential(hash);
  if (!a) return a.error();
  if (!*a || (*a)->revoked) return refuse("unknown or revoked agent credential");
  if (auto s = store_.revoke_agent((*a)->id); !s) return s.error();
  relay_.revoke_agent((*a)->id);
  // The agent acts for its owner: the owner is the actor, the agent the target.
  audit((*a)->owner_id, req, "agent.unenroll", (*a)->id, "name=" + (*a)->name);
  return json_response(200, {{"id", (*a)->id}, {"revoked", true}});
}

Reply Api::delete_agent(const Principal& p, Request& req) {
  auto m = find_machine(p, req.params["id"], MachineAccess::kOwner, "revoking it");
  if (!m) return m.error();
  const AgentRecord* a = &m->agent;
  if (auto s = store_.revoke_agent(a->id); !s) return s.error();
  relay_.revoke_agent(a->id);
  audit(p, "agent.revoke", a->id);
  return json_response(200, {{"id", a->id}, {"revoked", true}});
}

std::variant<std::unique_ptr<WsSession>, Response> Api::agent_upgrade(Request& req) {
  auto refuse = [&](const std::string& why) { return auth_failed(req, make_error("unauthorized", why)); };
  // Throttled on failures only (a hub restart lets every agent back at once), before any lookup.
  if (auto r = auth_throttled(req.peer)) return std::move(*r);
  auto token = req.bearer();
  if (!token) return refuse("missing agent credential or enrollment token");
  if (looks_like(TokenKind::kAgentCredential, *token)) {
    auto a = store_.agent_by_credential(token_hash(*token));
    if (!a) return error_response(a.error());
    if (!*a) return refuse("unknown agent credential");
    if ((*a)->revoked) return refuse("agent credential revoked");
    return std::unique_ptr<WsSession>(new AgentSession(relay_, **a, std::nullopt));
  }
  if (looks_like(TokenKind::kEnrollment, *token)) {
    auto owner = store_.consume_enrollment(token_hash(*token), now());
    if (!owner) {
      log("info", "agent.enroll_refused", {{"peer", req.peer}, {"reason", owner.error().code}});
      return refuse(owner.error().message);
    }
    std::string credential = new_token(TokenKind::kAgentCredential);
    // A header's bytes are the peer's: made valid UTF-8 without control characters here, where
    // they enter, since the name is shown, logged and audited.
    std::string name = clean_name(req.header("x-rexec-agent-name").value_or(""));
    if (name.empty() || name.size() > 128) name = "agent-" + new_id("").substr(0, 6);
    auto a = store_.create_agent(*owner, name, token_hash(credential), "host");
    if (!a) return error_response(a.error());
    (void)store_.audit(audit_entry(*owner, "agent.enroll", a->id, "name=" + name, req.peer));
    log("info", "agent.enrolled", {{"agent", a->id}, {"name", name}});
    return std::unique_ptr<WsSession>(new AgentSession(relay_, *a, credential));
  }
  return refuse("not an agent credential or enrollment token");
}

}  // namespace rx::hub
