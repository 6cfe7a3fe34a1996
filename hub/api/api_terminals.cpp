// Terminals: create, list, get, delete, attach (the viewer upgrade), and exec fan-out.
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "hub/api/api.h"
#include "hub/api/exec_stream.h"
#include "hub/api/json_fields.h"
#include "hub/base/json_text.h"
#include "hub/base/tokens.h"
#include "hub/fanout/viewer_session.h"
#include "hub/fanout/views.h"
#include "protocol/log_line.h"

namespace rx::hub {

Result<TerminalRecord> Api::find_terminal(const Principal& p, const std::string& id) {
  auto t = store_.terminal_by_id(id);
  if (!t) return t.error();
  if (!*t || !p.sees((*t)->owner_id)) return make_error("not_found", "no terminal \"" + id + "\"");
  return **t;
}

nlohmann::json Api::terminal_json(const TerminalRecord& t, const std::map<std::string, std::string>* agent_names) {
  std::string agent_name;
  if (t.kind == "agent" && agent_names) {
    if (auto it = agent_names->find(t.agent_id); it != agent_names->end()) agent_name = it->second;
  } else if (t.kind == "agent") {
    if (auto a = store_.agent_by_id(t.agent_id); a && *a) agent_name = (*a)->name;
  }
  return terminal_view(t, relay_, agent_name);
}

void Api::apply_labels(TerminalRecord& t, const std::string& labels_json) {
  if (labels_json == "{}") return;
  (void)store_.update_terminal_labels(t.id, labels_json);  // a failed write loses only the labels
  t.labels_json = labels_json;
}

Result<RecordChoice> Api::record_choice(const nlohmann::json& body) const {
  auto output = opt_bool(body, "record");
  if (!output) return output.error();
  auto input = opt_bool(body, "record_input");
  if (!input) return input.error();
  RecordChoice c{output->value_or(config_.record), input->value_or(false)};
  if (c.input && !c.output) return bad_field("record_input", "needs the terminal recorded (\"record\": true)");
  return c;
}

Reply Api::create_terminal(const Principal& p, Request& req, const Exchange& ex) {
  auto body = parse_json_object(req.body);
  if (!body) return body.error();
  auto kind = opt_string(*body, "kind");
  if (!kind) return kind.error();
  if (!*kind) return bad_field("kind", "is required (\"agent\" or \"container\")");
  auto labels = opt_labels(*body);
  if (!labels) return labels.error();
  if (auto r = record_choice(*body); !r) return r.error();
  if (**kind == "container") {
    if (body->contains("gpus") || body->contains("gpu_count"))
      return bad_field("gpus", "GPUs are leased on machines: use kind \"agent\"");
    return create_container_terminal(p, *body, ex);
  }
  if (**kind != "agent") return bad_field("kind", "must be \"agent\" or \"container\"");
  auto agent_ref = opt_string(*body, "agent");
  if (!agent_ref) return agent_ref.error();
  if (!*agent_ref) return bad_field("agent", "is required for kind agent (id or name)");
  auto name = opt_string(*body, "name", 128);
  auto cols = opt_int(*body, "cols", 1, 1000);
  auto rows = opt_int(*body, "rows", 1, 1000);
  auto env = opt_env(*body);
  for (const Error* e : {name ? nullptr : &name.error(), cols ? nullptr : &cols.error(), rows ? nullptr : &rows.error(),
                         env ? nullptr : &env.error()})
    if (e) return *e;
  if (auto s = gpu_fields_ok(*body); !s) return s.error();
  // The shell's OPEN frame must fit the agent link, or the agent would drop the whole link.
  if (auto s = Relay::pty_open_ok(*env); !s) return s.error();
  auto machine = find_machine(p, **agent_ref, MachineAccess::kUse, "opening terminals");
  if (!machine) return machine.error();
  // Counted only for a valid request: a typo should not cost one of the ten.
  if (auto r = limited(terminal_creates_, p.token_id, "terminal_create")) return std::move(*r);
  if (!relay_.online(machine->agent.id))
    return make_error("agent_offline", "agent " + machine->agent.name + " is not connected");
  // GPUs first, under the terminal's id to be: a lease refused makes no terminal.
  std::string id = new_id("t_");
  auto gpus = take_gpus(p, *machine, *body, id);
  if (auto* refused = std::get_if<Response>(&gpus)) return std::move(*refused);
  const auto& leased = std::get<std::vector<uint32_t>>(gpus);
  auto shell_env = *env;
  for (auto& [k, v] : gpu_env(machine_gpus(machine->agent), leased)) shell_env[k] = v;  // the hub's say wins
  auto t = relay_.create_terminal(p.user, machine->agent, name->value_or(""), uint16_t(cols->value_or(80)),
                                  uint16_t(rows->value_or(24)), shell_env, RunAs{p.user.name, machine->unix_user}, id,
                                  *record_choice(*body));
  if (!t) {
    relay_.gpus().release_holder(id, "failed");
    return t.error();
  }
  apply_labels(*t, *labels);
  audit(p, "terminal.create", t->id,
        "agent=" + machine->agent.id + (leased.empty() ? "" : " gpus=" + json_text(nlohmann::json(leased))));
  log("info", "terminal.create", {{"terminal", t->id}, {"agent", machine->agent.id}, {"user", p.user.id}});
  return json_response(201, terminal_json(*t));
}

Reply Api::list_terminals(const Principal& p, Request&) {
  // Others' terminals are left in the database unless an admin asks.
  auto all = store_.list_terminals(TerminalFilter{"", p.is_admin() ? "" : p.user.id});
  if (!all) return all.error();
  auto agents = store_.list_agents();  // one query for every terminal's agent name
  if (!agents) return agents.error();
  std::map<std::string, std::string> names;
  for (const auto& a : *agents) names[a.id] = a.name;
  nlohmann::json out = nlohmann::json::array();
  for (const auto& t : *all)
    if (p.sees(t.owner_id)) out.push_back(terminal_json(t, &names));
  return json_response(200, {{"terminals", out}});
}

Reply Api::get_terminal(const Principal& p, Request& req) {
  auto t = find_terminal(p, req.params["id"]);
  if (!t) return t.error();
  return json_response(200, terminal_json(*t));
}

Reply Api::delete_terminal(const Principal& p, Request& req, const Exchange& ex) {
  auto t = find_terminal(p, req.params["id"]);
  if (!t) return t.error();
  if (t->kind == "container") return delete_container_terminal(p, *t, ex);
  if (auto s = relay_.delete_terminal(t->id); !s) return s.error();
  audit(p, "terminal.delete", t->id);
  return json_response(200, {{"id", t->id}, {"deleted", true}});
}

Reply Api::exec(const Principal& p, Request& req, const Exchange& ex) {
  auto body = parse_json_object(req.body);
  if (!body) return body.error();
  ExecRequest r;
  const auto& j = *body;
  if (!j.contains("targets") || !j["targets"].is_array() || j["targets"].empty() || j["targets"].size() > 256)
    return bad_field("targets", "must be a non-empty array of up to 256 agent ids or names");
  if (!j.contains("argv") || !j["argv"].is_array() || j["argv"].empty() || j["argv"].size() > 1024)
    return bad_field("argv", "must be a non-empty array of strings (the program and its arguments)");
  for (const auto& t : j["targets"]) {
    if (!t.is_string()) return bad_field("targets", "every target must be a string");
    r.targets.push_back(t.get<std::string>());
  }
  for (const auto& a : j["argv"]) {
    auto item = argv_item(a, r.argv.size());
    if (!item) return item.error();
    r.argv.push_back(std::move(item).value());
  }
  auto timeout = opt_int(j, "timeout_s", 1, 3600);
  if (!timeout) return timeout.error();
  r.timeout_s = int(timeout->value_or(30));
  auto parallel = opt_int(j, "parallel", 1, 256);
  if (!parallel) return parallel.error();
  r.parallel = int(parallel->value_or(0));
  auto env = opt_env(j);
  if (!env) return env.error();
  r.env = *env;
  r.user_id = p.user.id;
  r.stream = wants_ndjson(req);  // the stream starts once the request is accepted: errors stay JSON
  if (auto s = gpu_fields_ok(j); !s) return s.error();
  if (auto s = ExecFanout::open_ok(r); !s) return s.error();
  std::vector<Machine> machines;
  for (const auto& t : r.targets) {
    auto m = find_machine(p, t, MachineAccess::kUse, "exec");
    if (!m && m.error().code == "not_found") {
      // A terminal id targets the agent it runs on.
      auto term = find_terminal(p, t);
      if (!term) return make_error("not_found", "no agent or terminal \"" + t + "\"");
      auto agent = store_.agent_by_id(term->agent_id);
      if (!agent) return agent.error();
      if (!*agent) return make_error("not_found", "no agent for " + t);
      // A container terminal's agent is the hub's own, for that terminal only: its owner may run
      // commands there. A host agent's terminal needs the machine's use grant as ever.
      if ((*agent)->kind != "host") m = Machine{**agent, MachineAccess::kOwner, "owner", ""};
      else m = find_machine(p, term->agent_id, MachineAccess::kUse, "exec");
    }
    if (!m) return m.error();
    machines.push_back(std::move(m).value());
  }
  // GPUs per target, each under its own holder, ended when that target's command ends.
  std::map<std::string, std::string> holders;  // agent id -> holder
  auto give_back = [this](const std::map<std::string, std::string>& taken) {
    for (const auto& [agent, holder] : taken) relay_.gpus().release_holder(holder, "failed");
  };
  for (const auto& m : machines) {
    if (holders.count(m.agent.id)) continue;
    std::string holder = new_id("x_");
    auto gpus = take_gpus(p, m, j, holder);
    if (auto* refused = std::get_if<Response>(&gpus)) {
      give_back(holders);
      return std::move(*refused);
    }
    holders[m.agent.id] = holder;
    r.target_env[m.agent.id] = gpu_env(machine_gpus(m.agent), std::get<std::vector<uint32_t>>(gpus));
    r.target_as[m.agent.id] = RunAs{p.user.name, m.unix_user};
  }
  r.on_target_done = [this, holders](const std::string& agent_id) {
    if (auto it = holders.find(agent_id); it != holders.end()) relay_.gpus().release_holder(it->second, "finished");
  };
  std::vector<AgentRecord> agents;
  for (const auto& m : machines) {
    audit(p, "exec", m.agent.id, r.argv[0]);
    agents.push_back(m.agent);
  }
  exec_over_http(relay_.fanout(), std::move(agents), r, ex);
  return Later{};
}

namespace {

// The entries of a Sec-WebSocket-Protocol header ("a, b").
std::vector<std::string> protocol_list(const std::string& header) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= header.size()) {
    auto comma = header.find(',', pos);
    std::string item = header.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    while (!item.empty() && item.front() == ' ') item.erase(0, 1);
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

Result<std::optional<uint64_t>> since_of(const Request& req) {
  auto s = req.query.find("since");
  if (s == req.query.end()) return std::optional<uint64_t>();
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s->second.c_str(), &end, 10);
  if (s->second.empty() || *end != '\0' || errno == ERANGE || s->second[0] == '-')
    return make_error("bad_request", "since must be a byte offset (a non-negative integer)");
  return std::optional<uint64_t>(v);
}

}  // namespace

bool viewer_protocol_ok(const std::string& header) {
  for (const auto& p : protocol_list(header))
    if (p == "rexec.term.v1") return true;
  return false;
}

std::optional<Response> Api::viewer_cap(const std::string& terminal_id, const std::string& who, int cap,
                                        const std::string& why) {
  if (relay_.viewer_sockets(terminal_id, who) < cap) return std::nullopt;
  metrics_.add("rexec_rate_limited_total", {{"limit", "viewers_per_terminal"}});
  auto r = error_response(make_error("rate_limited", why));
  r.headers.push_back({"Retry-After", "5"});
  return r;
}

std::variant<std::unique_ptr<WsSession>, Response> Api::viewer_upgrade(Request& req, const std::string& id) {
  auto since = since_of(req);
  if (!since) return error_response(since.error());
  if (auto code = req.query.find("share"); code != req.query.end()) return share_viewer_upgrade(req, id, code->second, *since);
  // A browser cannot set Authorization on a WebSocket: an embed given a token passes it as a
  // second subprotocol, "rexec.bearer.<token>" (a header, so never in a URL or a log line).
  for (const auto& p : protocol_list(req.header("sec-websocket-protocol").value_or("")))
    if (p.starts_with("rexec.bearer.") && !req.header("authorization"))
      req.headers["authorization"] = "Bearer " + p.substr(std::strlen("rexec.bearer."));
  auto admitted = admit(req);
  if (auto* refusal = std::get_if<Response>(&admitted)) return std::move(*refusal);
  auto* principal = &std::get<Principal>(admitted);
  if (!principal->can("read")) return error_response(make_error("forbidden", "this token lacks the read scope"));
  auto t = find_terminal(*principal, id);
  if (!t) return error_response(t.error());
  Terminal* live = relay_.terminal(t->id);
  if (!live) return error_response(make_error("not_found", "terminal " + t->id + " has no live session (it " + t->status + ")"));
  if (auto r = viewer_cap(t->id, principal->user.id, config_.viewers_per_terminal,
                          "you already have " + std::to_string(config_.viewers_per_terminal) +
                              " viewers on this terminal; close one first"))
    return std::move(*r);
  bool read_only = !principal->can("write");
  audit(*principal, "terminal.attach", t->id, read_only ? "read-only" : "control");
  return std::unique_ptr<WsSession>(new ViewerSession(relay_, live->id(), read_only, *since, principal->user.id, req.peer));
}

std::variant<std::unique_ptr<WsSession>, Response> Api::share_viewer_upgrade(Request& req, const std::string& id,
                                                                             const std::string& code,
                                                                             std::optional<uint64_t> since) {
  if (auto r = limited(ip_requests_, req.peer, "ip")) return std::move(*r);
  if (auto r = auth_throttled(req.peer)) return std::move(*r);
  auto share = find_share(code, id);
  if (!share) return auth_failed(req, share.error());
  Terminal* live = relay_.terminal(share->terminal_id);
  if (!live) return error_response(make_error("not_found", "the shared terminal has no live session"));
  std::string who = "share:" + share->id;
  if (auto r = viewer_cap(share->terminal_id, who, config_.viewers_per_terminal * 4, "too many viewers on this share link"))
    return std::move(*r);
  bool read_only = share->mode != "control";
  audit(who, req, "terminal.attach", share->terminal_id, read_only ? "share view" : "share control");
  return std::unique_ptr<WsSession>(
      new ViewerSession(relay_, live->id(), read_only, since, who, req.peer, share->id));
}

}  // namespace rx::hub
