// GPU leases and reservations (docs/api.md, "GPUs"): taking GPUs for a terminal or an exec,
// giving them back, booking them ahead, and the audit and events of it all.
#include <ctime>

#include "hub/api/api.h"
#include "hub/api/json_fields.h"
#include "hub/base/rfc3339.h"
#include "hub/base/tokens.h"
#include "hub/fanout/events.h"
#include "protocol/log_line.h"

namespace rx::hub {
namespace {

int64_t now() { return int64_t(std::time(nullptr)); }

constexpr int64_t kMaxReservation = 31 * 24 * 3600;
constexpr size_t kMaxNote = 500;

Response refusal_response(const GpuRefusal& r) {
  nlohmann::json body = r.detail.is_object() ? r.detail : nlohmann::json::object();
  body["error"] = r.message;
  body["code"] = r.code;
  return json_response(http_status(r.code), body);
}

std::string gpu_text(const std::vector<uint32_t>& gpus) {
  std::string out;
  for (auto g : gpus) out += (out.empty() ? "" : ",") + std::to_string(g);
  return out;
}

// A time query parameter or body field: RFC 3339, or unix seconds in a query.
Result<std::optional<int64_t>> time_param(const std::map<std::string, std::string>& query, const std::string& name) {
  auto it = query.find(name);
  if (it == query.end() || it->second.empty()) return std::optional<int64_t>();
  auto t = parse_rfc3339(it->second);
  if (!t) return bad_field(name, "must be an RFC 3339 time, e.g. 2026-12-02T10:00:00Z");
  return std::optional<int64_t>(*t);
}

}  // namespace

Status Api::gpu_fields_ok(const nlohmann::json& body) {
  auto gpus = opt_gpus(body, "gpus");
  if (!gpus) return gpus.error();
  auto count = opt_int(body, "gpu_count", 1, 64);
  if (!count) return count.error();
  if (*gpus && *count) return bad_field("gpu_count", "give either \"gpus\" (which ones) or \"gpu_count\" (how many), not both");
  return Ok{};
}

std::variant<std::vector<uint32_t>, Response> Api::take_gpus(const Principal& p, const Machine& m,
                                                             const nlohmann::json& body, const std::string& holder) {
  auto gpus = opt_gpus(body, "gpus");
  auto count = opt_int(body, "gpu_count", 1, 64);
  if (!gpus) return error_response(gpus.error());
  if (!count) return error_response(count.error());
  if (!*gpus && !*count) return std::vector<uint32_t>{};
  std::optional<uint32_t> n;
  if (*count) n = uint32_t(**count);
  auto choice = relay_.gpus().choose(m.agent, p.user.id, *gpus, n, now());
  if (auto* refused = std::get_if<GpuRefusal>(&choice)) return refusal_response(*refused);
  auto& taken = std::get<std::vector<uint32_t>>(choice);
  if (auto s = relay_.gpus().acquire(m.agent.id, taken, holder, p.user.id, now()); !s)
    return error_response(s.error());
  return taken;
}

void Api::on_gpu_event(const GpuEvent& e) {
  // Leases are audited by the hub as actor when they end by themselves (exit, idle, revoke).
  std::string actor = e.event == "lease" ? e.user_id : "hub";
  std::string detail = "gpus=" + gpu_text(e.gpus) + " holder=" + e.holder + " user=" + e.user_id;
  if (!e.why.empty()) detail += " why=" + e.why;
  if (e.event == "lease" || e.event == "release" || e.event == "idle_warning") {
    std::string action = e.event == "idle_warning" ? "gpu.idle_warning" : "gpu." + e.event;
    if (auto s = store_.audit(audit_entry(actor, action, e.agent_id, detail)); !s)
      log("error", "audit.failed", {{"action", action}, {"reason", s.error().message}});
  }
  log("info", "gpu." + e.event, {{"agent", e.agent_id}, {"gpus", gpu_text(e.gpus)}, {"holder", e.holder}});
  if (events_) {
    std::string name = e.user_id;
    if (auto u = store_.user_by_id(e.user_id); u && *u) name = (*u)->name;
    std::string event = e.event == "release" && e.why == "idle" ? "idle_release" : e.event;
    events_->gpu_event({{"type", "gpu"},   {"event", event},     {"agent", e.agent_id}, {"gpus", e.gpus},
                        {"user", name},    {"user_id", e.user_id}, {"holder", e.holder}, {"why", e.why}},
                       e.agent_id);
  }
}

void Api::tick() {
  last_tick_ = std::chrono::steady_clock::now();
  relay_.gpus().tick(now());
}

Reply Api::release_gpus(const Principal& p, Request& req) {
  auto t = find_terminal(p, req.params["id"]);
  if (!t) return t.error();
  auto held = relay_.gpus().gpus_of(t->id);
  relay_.gpus().release_holder(t->id, "returned");
  return json_response(200, {{"id", t->id}, {"released", held}});
}

nlohmann::json Api::reservation_json(const ReservationRecord& r) {
  std::string user = r.user_id, agent_name;
  if (auto u = store_.user_by_id(r.user_id); u && *u) user = (*u)->name;
  if (auto a = store_.agent_by_id(r.agent_id); a && *a) agent_name = (*a)->name;
  return {{"id", r.id},        {"agent", r.agent_id},         {"agent_name", agent_name},
          {"user", user},      {"user_id", r.user_id},        {"gpus", r.gpus},
          {"from", format_rfc3339(r.from)}, {"until", format_rfc3339(r.until)}, {"note", r.note},
          {"created_at", r.created_at}};
}

Reply Api::create_reservation(const Principal& p, Request& req) {
  auto body = parse_json_object(req.body);
  if (!body) return body.error();
  auto gpus = opt_gpus(*body, "gpus");
  if (!gpus) return gpus.error();
  if (!*gpus) return bad_field("gpus", "is required (the GPU indexes to reserve)");
  auto from_s = opt_string(*body, "from", 64);
  auto until_s = opt_string(*body, "until", 64);
  auto note = opt_string(*body, "note", kMaxNote);
  for (const Error* e : {from_s ? nullptr : &from_s.error(), until_s ? nullptr : &until_s.error(),
                         note ? nullptr : &note.error()})
    if (e) return *e;
  if (!*from_s || !*until_s)
    return bad_field(*from_s ? "until" : "from", "is required (an RFC 3339 time)");
  auto from = parse_rfc3339(**from_s);
  if (!from) return bad_field("from", "must be an RFC 3339 time, e.g. 2026-12-02T10:00:00Z");
  auto until = parse_rfc3339(**until_s);
  if (!until) return bad_field("until", "must be an RFC 3339 time, e.g. 2026-12-02T12:00:00Z");
  if (*from >= *until) return bad_field("until", "must be after \"from\"");
  if (*until <= now()) return bad_field("until", "is in the past");
  if (*until - *from > kMaxReservation) return bad_field("until", "at most 31 days after \"from\"");
  auto m = find_machine(p, req.params["id"], MachineAccess::kUse, "reserving its GPUs");
  if (!m) return m.error();
  if (auto s = machine_gpus(m->agent).check(**gpus, m->agent.name); !s) return s.error();
  ReservationRecord r{new_id("rsv_"), m->agent.id, p.user.id, **gpus, *from, *until, note->value_or(""), now()};
  auto conflict = store_.create_reservation(r);
  if (!conflict) return conflict.error();
  if (*conflict) {
    auto c = reservation_json(**conflict);
    return json_response(409, {{"code", "reservation_conflict"},
                                         {"error", "overlaps reservation " + c["id"].get<std::string>() + " of " +
                                                       c["user"].get<std::string>() + " (" + c["from"].get<std::string>() +
                                                       " to " + c["until"].get<std::string>() + ")"},
                                         {"conflict", c}});
  }
  audit(p, "reservation.create", m->agent.id,
        "id=" + r.id + " gpus=" + gpu_text(r.gpus) + " from=" + **from_s + " until=" + **until_s);
  auto j = reservation_json(r);
  if (events_) events_->gpu_event({{"type", "gpu"}, {"event", "reservation"}, {"agent", r.agent_id}, {"gpus", r.gpus},
                                   {"user", p.user.name}, {"reservation", j}},
                                  r.agent_id);
  return json_response(201, j);
}

Reply Api::list_machine_reservations(const Principal& p, Request& req) {
  auto m = find_machine(p, req.params["id"]);
  if (!m) return m.error();
  req.query["agent"] = m->agent.id;
  return list_reservations(p, req);
}

Reply Api::list_reservations(const Principal& p, Request& req) {
  ReservationFilter f;
  auto from = time_param(req.query, "from");
  auto until = time_param(req.query, "until");
  if (!from) return from.error();
  if (!until) return until.error();
  f.from = *from ? *from : std::optional<int64_t>(now());  // default: those not ended yet
  f.until = *until;
  if (f.until && *f.until <= *f.from) return bad_field("until", "must be after \"from\"");
  if (auto it = req.query.find("agent"); it != req.query.end()) f.agent_id = it->second;
  if (auto it = req.query.find("user"); it != req.query.end() && !it->second.empty()) {
    auto u = find_user(it->second);
    if (!u) return u.error();
    if (!*u) return json_response(200, {{"reservations", nlohmann::json::array()}});
    f.user_id = (*u)->id;
  }
  auto rows = store_.list_reservations(f);
  if (!rows) return rows.error();
  auto agents = store_.list_agents();
  if (!agents) return agents.error();
  auto grants = grants_by_agent(p);
  if (!grants) return grants.error();
  std::map<std::string, bool> visible;
  for (const auto& a : *agents)
    visible[a.id] = !a.revoked && a.kind == "host" && machine_of(p, a, *grants).access != MachineAccess::kNone;
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : *rows)
    if (visible[r.agent_id]) out.push_back(reservation_json(r));
  return json_response(200, {{"reservations", out}});
}

Reply Api::delete_reservation(const Principal& p, Request& req) {
  auto m = find_machine(p, req.params["id"]);
  if (!m) return m.error();
  auto r = store_.reservation_by_id(req.params["rid"]);
  if (!r) return r.error();
  if (!*r || (*r)->agent_id != m->agent.id)
    return make_error("not_found", "no reservation \"" + req.params["rid"] + "\" on this machine");
  if ((*r)->user_id != p.user.id && !p.is_admin())
    return make_error("forbidden", "only its holder or an admin may cancel a reservation");
  if (auto s = store_.delete_reservation((*r)->id); !s) return s.error();
  audit(p, "reservation.cancel", m->agent.id, "id=" + (*r)->id + " gpus=" + gpu_text((*r)->gpus));
  if (events_) events_->gpu_event({{"type", "gpu"}, {"event", "reservation_cancel"}, {"agent", m->agent.id},
                                   {"gpus", (*r)->gpus}, {"user", p.user.name}, {"id", (*r)->id}},
                                  m->agent.id);
  return json_response(200, {{"id", (*r)->id}, {"cancelled", true}});
}

}  // namespace rx::hub
