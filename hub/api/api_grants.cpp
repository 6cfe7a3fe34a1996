// Machine grants: a machine's owner (or an admin) shares it with another user, to use (terminals,
// exec, GPU leases) or to view (the machine and its GPUs), optionally as a local account.
#include <cctype>
#include <ctime>

#include "hub/api/api.h"
#include "hub/api/json_fields.h"
#include "protocol/log_line.h"

namespace rx::hub {
namespace {

int64_t now() { return int64_t(std::time(nullptr)); }

// A plausible local account name (what useradd accepts): the agent looks it up and refuses an
// unknown one; this only keeps junk out of the store and the audit log.
bool account_name_ok(const std::string& name) {
  if (name.empty() || name.size() > 32 || name[0] == '-') return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  return true;
}

}  // namespace

Result<std::optional<User>> Api::find_user(const std::string& name_or_id) {
  auto u = store_.user_by_name(name_or_id);
  if (u && !*u) u = store_.user_by_id(name_or_id);
  return u;
}

Reply Api::create_grant(const Principal& p, Request& req) {
  auto body = parse_json_object(req.body);
  if (!body) return body.error();
  auto user = opt_string(*body, "user", 128);
  auto role = opt_string(*body, "role", 16);
  auto unix_user = opt_string(*body, "unix_user", 64);
  for (const Error* e : {user ? nullptr : &user.error(), role ? nullptr : &role.error(),
                         unix_user ? nullptr : &unix_user.error()})
    if (e) return *e;
  if (!*user || (*user)->empty()) return bad_field("user", "is required (a user name or id)");
  if (!*role || (**role != "use" && **role != "view"))
    return bad_field("role", "must be \"use\" or \"view\"");
  std::string account = unix_user->value_or("");
  if (!account.empty() && !account_name_ok(account))
    return bad_field("unix_user", "must be a local account name (letters, digits, _ - .)");
  if (account == "root" || account == "0")
    return 
        bad_field("unix_user", "a mapping to root must be explicit: put it in the agent's --user-map file");
  auto m = find_machine(p, req.params["id"], MachineAccess::kOwner, "managing its grants");
  if (!m) return m.error();
  auto who = find_user(**user);
  if (!who) return who.error();
  if (!*who) return make_error("not_found", "no user \"" + **user + "\"");
  if ((*who)->id == m->agent.owner_id)
    return bad_field("user", "is the machine's owner already");
  GrantRecord g{m->agent.id, "user", (*who)->id, **role, account, now(), p.user.id};
  auto created = store_.put_grant(g);
  if (!created) return created.error();
  audit(p, *created ? "grant.create" : "grant.update", m->agent.id,
        "user=" + (*who)->name + " role=" + g.role + (account.empty() ? "" : " unix_user=" + account));
  return json_response(*created ? 201 : 200, {{"agent", g.agent_id},
                                                  {"user", (*who)->name},
                                                  {"user_id", g.subject_id},
                                                  {"role", g.role},
                                                  {"unix_user", account.empty() ? nlohmann::json() : nlohmann::json(account)},
                                                  {"created_at", g.created_at},
                                                  {"created_by", g.created_by}});
}

Reply Api::list_grants(const Principal& p, Request& req) {
  auto m = find_machine(p, req.params["id"], MachineAccess::kOwner, "listing its grants");
  if (!m) return m.error();
  auto grants = store_.list_grants(m->agent.id);
  if (!grants) return grants.error();
  nlohmann::json out = nlohmann::json::array();
  for (const auto& g : *grants) {
    auto u = store_.user_by_id(g.subject_id);
    out.push_back({{"agent", g.agent_id},
                   {"user", u && *u ? (*u)->name : g.subject_id},
                   {"user_id", g.subject_id},
                   {"role", g.role},
                   {"unix_user", g.unix_user.empty() ? nlohmann::json() : nlohmann::json(g.unix_user)},
                   {"created_at", g.created_at},
                   {"created_by", g.created_by}});
  }
  return json_response(200, {{"grants", out}});
}

Reply Api::delete_grant(const Principal& p, Request& req) {
  auto m = find_machine(p, req.params["id"], MachineAccess::kOwner, "managing its grants");
  if (!m) return m.error();
  const std::string& ref = req.params["user"];
  auto who = find_user(ref);
  if (!who) return who.error();
  if (!*who) return make_error("not_found", "no user \"" + ref + "\"");
  auto deleted = store_.delete_grant(m->agent.id, (*who)->id);
  if (!deleted) return deleted.error();
  if (!*deleted)
    return make_error("not_found", "user " + (*who)->name + " has no grant on this machine");
  // Access ends now: their shells on the machine end, and so their GPU leases.
  auto terminals = store_.list_terminals(TerminalFilter{"", (*who)->id});
  int ended = 0;
  if (terminals)
    for (const auto& t : *terminals)
      if (t.agent_id == m->agent.id && relay_.delete_terminal(t.id)) ++ended;
  audit(p, "grant.revoke", m->agent.id, "user=" + (*who)->name + " terminals_ended=" + std::to_string(ended));
  return json_response(200, {{"agent", m->agent.id}, {"user", (*who)->name}, {"revoked", true},
                                {"terminals_ended", ended}});
}

}  // namespace rx::hub
