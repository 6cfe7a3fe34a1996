#include "hub/api/api.h"

#include <ctime>

#include "hub/base/tokens.h"
#include "protocol/log_line.h"
#include "protocol/viewer.h"

namespace rx::hub {
namespace {

int64_t now() { return int64_t(std::time(nullptr)); }

// Last-used times are for people ("is this token still in use?"): a write per minute per token
// is enough, not one per request.
constexpr int64_t kTouchEvery = 60;

}  // namespace

bool Principal::can(std::string_view scope) const {
  if (scope == "admin" && !user.admin) return false;
  size_t pos = 0;
  std::string_view s(scopes);
  while (pos <= s.size()) {
    auto end = s.find(' ', pos);
    auto word = s.substr(pos, end - pos);
    // admin implies write, write implies read
    if (word == scope || (word == "admin" && user.admin) || (word == "write" && scope == "read")) return true;
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return false;
}

Api::Api(Store& store, Relay& relay, const HubConfig& config, Containers& containers)
    : store_(store),
      relay_(relay),
      config_(config),
      containers_(containers),
      ip_requests_(config.rate_requests),
      token_requests_(config.rate_requests),
      terminal_creates_(config.rate_terminal_creates),
      auth_failures_(relay.writes(), config.rate_auth_failures),
      web_(config.web_dir),
      downloads_(config.downloads_dir) {
  routes();
  describe_metrics();
  relay_.gpus().configure_idle(config.gpu_idle_release_s, config.gpu_idle_grace_s);
  relay_.gpus().set_listener([this](const GpuEvent& e) { on_gpu_event(e); });
}

void Api::routes() {
  // `streamed`: the handler takes the request body as it arrives (HttpHandler::streams_body).
  auto add = [this](const char* method, const char* pattern, Access access, auto member, bool streamed = false) {
    // Most handlers answer from what they are given; the few that answer later also take the exchange.
    router_.add(method, pattern, Route{access, [this, member](const Principal& p, Request& r, const Exchange& ex) {
                                         if constexpr (std::is_invocable_v<decltype(member), Api*, const Principal&,
                                                                           Request&, const Exchange&>)
                                           return (this->*member)(p, r, ex);
                                         else
                                           return (this->*member)(p, r);
                                       }, streamed});
  };
  auto add_upgrade = [this](const char* pattern, auto protocol_ok, const char* needed, auto handler) {
    upgrades_.add("GET", pattern, UpgradeRoute{protocol_ok, needed, handler});
  };
  auto exactly = [](const char* name) { return [name](const std::string& p) { return p == name; }; };
  add_upgrade("/api/v1/agent/connect", exactly("rexec.agent.v1"), "the agent link needs subprotocol rexec.agent.v1",
              [this](Request& r) { return agent_upgrade(r); });
  add_upgrade("/api/v1/terminals/{id}/attach", viewer_protocol_ok, "attaching needs subprotocol rexec.term.v1",
              [this](Request& r) { return viewer_upgrade(r, r.params["id"]); });
  add_upgrade("/api/v1/events", exactly("rexec.events.v1"), "the events feed needs subprotocol rexec.events.v1",
              [this](Request& r) { return events_upgrade(r); });
  add("GET", "/healthz", Access::kPublic, &Api::healthz);
  add("GET", "/metrics", Access::kAdmin, &Api::get_metrics);
  add("POST", "/api/v1/agent-enrollments", Access::kWrite, &Api::create_enrollment);
  add("GET", "/api/v1/agents", Access::kRead, &Api::list_agents);
  add("GET", "/api/v1/agents/{id}", Access::kRead, &Api::get_agent);
  add("DELETE", "/api/v1/agents/{id}", Access::kWrite, &Api::delete_agent);
  // Public to the router: the handler takes the agent's own credential, which admit() does not.
  add("DELETE", "/api/v1/agent/self", Access::kPublic, &Api::unenroll_self);
  add("GET", "/install-agent.sh", Access::kPublic, &Api::serve_installer);
  add("GET", "/downloads/{file}", Access::kPublic, &Api::serve_download);
  add("POST", "/api/v1/terminals", Access::kWrite, &Api::create_terminal);
  add("GET", "/api/v1/terminals", Access::kRead, &Api::list_terminals);
  add("GET", "/api/v1/terminals/{id}", Access::kRead, &Api::get_terminal);
  add("DELETE", "/api/v1/terminals/{id}", Access::kWrite, &Api::delete_terminal);
  add("POST", "/api/v1/terminals/{id}/stop", Access::kWrite, &Api::stop_terminal);
  add("POST", "/api/v1/terminals/{id}/start", Access::kWrite, &Api::start_terminal);
  // Write, reading too: a file download is as much as running cat in the terminal.
  add("GET", "/api/v1/terminals/{id}/files", Access::kWrite, &Api::get_file);
  add("PUT", "/api/v1/terminals/{id}/files", Access::kWrite, &Api::put_file, /*streamed=*/true);
  add("DELETE", "/api/v1/terminals/{id}/files", Access::kWrite, &Api::delete_file);
  add("POST", "/api/v1/exec", Access::kWrite, &Api::exec);
  add("DELETE", "/api/v1/terminals/{id}/gpus", Access::kWrite, &Api::release_gpus);
  add("POST", "/api/v1/agents/{id}/grants", Access::kWrite, &Api::create_grant);
  add("GET", "/api/v1/agents/{id}/grants", Access::kRead, &Api::list_grants);
  add("DELETE", "/api/v1/agents/{id}/grants/{user}", Access::kWrite, &Api::delete_grant);
  add("POST", "/api/v1/agents/{id}/reservations", Access::kWrite, &Api::create_reservation);
  add("GET", "/api/v1/agents/{id}/reservations", Access::kRead, &Api::list_machine_reservations);
  add("DELETE", "/api/v1/agents/{id}/reservations/{rid}", Access::kWrite, &Api::delete_reservation);
  add("GET", "/api/v1/reservations", Access::kRead, &Api::list_reservations);
  add("POST", "/api/v1/tokens", Access::kWrite, &Api::create_token);
  add("GET", "/api/v1/tokens", Access::kRead, &Api::list_tokens);
  add("DELETE", "/api/v1/tokens/{id}", Access::kWrite, &Api::delete_token);
  add("POST", "/api/v1/users", Access::kAdmin, &Api::create_user);
  add("GET", "/api/v1/users", Access::kAdmin, &Api::list_users);
  add("GET", "/api/v1/audit", Access::kRead, &Api::list_audit);
  add("POST", "/api/v1/sessions", Access::kPublic, &Api::create_session);
  add("GET", "/api/v1/sessions/current", Access::kPublic, &Api::current_session);
  add("DELETE", "/api/v1/sessions/current", Access::kRead, &Api::delete_session);
  add("GET", "/api/v1/images", Access::kRead, &Api::list_images);
  add("GET", "/api/v1/recordings", Access::kRead, &Api::list_recordings);
  // Before "{id}", which would take "r_1.cast" as an id: the first route that matches wins.
  add("GET", "/api/v1/recordings/{id}.cast", Access::kRead, &Api::get_recording_cast);
  add("GET", "/api/v1/recordings/{id}", Access::kRead, &Api::get_recording);
  add("GET", "/api/v1/recordings/{id}/segments", Access::kRead, &Api::get_recording_index);
  add("GET", "/api/v1/recordings/{id}/segments/{n}", Access::kRead, &Api::get_recording_segment);
  add("DELETE", "/api/v1/recordings/{id}", Access::kWrite, &Api::delete_recording);
  add("POST", "/api/v1/recordings/{id}/shares", Access::kWrite, &Api::create_recording_share);
  add("GET", "/api/v1/recordings/{id}/shares", Access::kRead, &Api::list_recording_shares);
  add("DELETE", "/api/v1/recording-shares/{id}", Access::kWrite, &Api::delete_recording_share);
  // Public: the share code is the credential (in the body, or the X-Rexec-Share header).
  add("POST", "/api/v1/recording-shares/lookup", Access::kPublic, &Api::lookup_recording_share);
  add("GET", "/api/v1/recording-shares/cast", Access::kPublic, &Api::shared_recording_cast);
  add("GET", "/api/v1/recording-shares/segments", Access::kPublic, &Api::shared_recording_index);
  add("GET", "/api/v1/recording-shares/segments/{n}", Access::kPublic, &Api::shared_recording_segment);
  add("POST", "/api/v1/terminals/{id}/shares", Access::kWrite, &Api::create_share);
  add("GET", "/api/v1/terminals/{id}/shares", Access::kRead, &Api::list_shares);
  add("DELETE", "/api/v1/shares/{id}", Access::kWrite, &Api::delete_share);
  add("POST", "/api/v1/shares/lookup", Access::kPublic, &Api::lookup_share);
  for (const char* page : {"/", "/login", "/t/{id}", "/s/{code}", "/recordings", "/r/{id}", "/p/{code}", "/assets/{file}",
                           "/embed.js", "/favicon.svg"})
    add("GET", page, Access::kPublic, &Api::serve_web);
}

bool Api::streams_body(const RequestHead& head) {
  Request r;
  r.method = head.method == "HEAD" ? "GET" : head.method;
  r.path = head.path;
  auto match = router_.match(r);
  return match.handler && match.handler->streams_body;
}

std::vector<std::string> Api::route_list() const {
  std::vector<std::string> out;
  for (const auto& r : upgrades_.routes()) out.push_back(r.method + " " + r.pattern);
  for (const auto& r : router_.routes()) out.push_back(r.method + " " + r.pattern);
  return out;
}

void Api::describe_metrics() {
  using T = Metrics::Type;
  metrics_.describe("rexec_http_requests_total", T::kCounter, "API requests by route, method and status code.");
  metrics_.describe("rexec_http_request_duration_seconds", T::kHistogram, "API request latency by route.",
                    {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  metrics_.describe("rexec_rate_limited_total", T::kCounter, "Requests refused with 429, by limit.");
  metrics_.describe("rexec_auth_failures_total", T::kCounter, "Requests and upgrades refused with 401.");
  metrics_.describe("rexec_container_sweeps_total", T::kCounter, "Container supervisor sweeps that judged Docker's list.");
  metrics_.describe("rexec_agents_online", T::kGauge, "Agents with a live link.");
  metrics_.describe("rexec_terminals", T::kGauge, "Terminals by kind and state.");
  metrics_.describe("rexec_viewers", T::kGauge, "Open viewer sockets.");
  metrics_.describe("rexec_relayed_bytes_total", T::kCounter, "Bytes relayed: out = agent to hub, in = viewers to agents.");
  metrics_.describe("rexec_recording_dropped_bytes_total", T::kCounter,
                    "Terminal output not recorded because the recordings' disk was too slow.");
  metrics_.describe("rexec_recording_write_failures_total", T::kCounter,
                    "Times a recording's writes began to fail (a full or broken disk); the terminals go on.");
  metrics_.describe("rexec_file_transfers_total", T::kCounter,
                    "File requests through agents (docs/files.md) by op and result (ok, or the error code).");
  metrics_.describe("rexec_file_bytes_total", T::kCounter,
                    "File bytes moved through agents: up = uploads to machines, down = downloads and listings.");
  metrics_.describe("rexec_frames_dropped_total", T::kCounter,
                    "Frames dropped: read-only or overflowing input, frames for unknown channels.");
}

Result<Principal> Api::authenticate(const Request& request) {
  auto token = request.bearer();
  if (!token) {
    // A browser: its session cookie, accepted only from this hub's own pages for anything that
    // changes state (SameSite=Strict already keeps other sites' requests cookie-less; this is
    // the second lock).
    if (auto cookie = request.cookie(kSessionCookie)) {
      bool changes = request.method != "GET" || request.header("sec-websocket-protocol");
      if (changes && !request.same_origin(origin_scheme()))
        return make_error("forbidden", "cross-site request refused (Origin is not this hub)");
      return authenticate_session(*cookie, request);
    }
    return make_error("unauthorized", "missing bearer token (Authorization: Bearer <token>) or session cookie");
  }
  return authenticate_token(*token, request);
}

Result<Principal> Api::authenticate_token(const std::string& token, const Request& request) {
  if (!looks_like(TokenKind::kApi, token)) return make_error("unauthorized", "not an API token");
  std::string hash = token_hash(token);
  auto rec = store_.token_by_hash(hash);
  if (!rec) return rec.error();
  // The lookup is by hash; the check after it is constant-time, so no timing depends on the secret.
  if (!*rec || !hashes_equal((*rec)->hash, hash)) return make_error("unauthorized", "unknown or revoked token");
  return principal_of_token(**rec, request);
}

Result<Principal> Api::principal_of_token(const TokenRecord& rec, const Request& request) {
  if (rec.revoked) return make_error("unauthorized", "unknown or revoked token");
  int64_t t = now();
  if (rec.expires_at && *rec.expires_at <= t) return make_error("unauthorized", "token expired");
  auto user = store_.user_by_id(rec.user_id);
  if (!user) return user.error();
  if (!*user) return make_error("unauthorized", "the token's user no longer exists");
  if (!rec.last_used_at || *rec.last_used_at + kTouchEvery <= t)
    relay_.writes().write("token.touch", [id = rec.id, t](Store& store) { return store.touch_token(id, t); });
  return Principal{**user, rec.id, rec.scopes, request.peer, "", 0, rec.expires_at};
}

Result<Principal> Api::authenticate_session(const std::string& cookie, const Request& request) {
  if (!looks_like(TokenKind::kSession, cookie)) return make_error("unauthorized", "not a session cookie");
  std::string hash = token_hash(cookie);
  auto rec = store_.session_by_hash(hash);
  if (!rec) return rec.error();
  if (!*rec || !hashes_equal((*rec)->hash, hash) || (*rec)->revoked)
    return make_error("unauthorized", "signed out or unknown session; sign in again");
  if ((*rec)->expires_at <= now()) return make_error("unauthorized", "session expired; sign in again");
  // A session is only as good as the token it was made from.
  auto token = store_.token_by_id((*rec)->token_id);
  if (!token) return token.error();
  if (!*token) return make_error("unauthorized", "the session's token no longer exists; sign in again");
  auto p = principal_of_token(**token, request);
  if (!p) return p.error();
  p->session_id = (*rec)->id;
  p->session_expires_at = (*rec)->expires_at;
  return p;
}

std::optional<Response> Api::limited(RateLimiter& limiter, const std::string& key, const std::string& which) {
  auto wait = limiter.take(key);
  if (!wait) return std::nullopt;
  metrics_.add("rexec_rate_limited_total", {{"limit", which}});
  auto r = error_response(make_error("rate_limited", "too many requests (" + which + " limit: " +
                                                         std::to_string(limiter.limit()) + " per minute); retry in " +
                                                         std::to_string(*wait) + " s"));
  r.headers.push_back({"Retry-After", std::to_string(*wait)});
  return r;
}

std::string Api::origin_scheme() const {
  if (config_.public_url.starts_with("https://")) return "https";
  if (config_.public_url.starts_with("http://")) return "http";
  return config_.tls_cert.empty() ? "http" : "https";
}

Response Api::internal_error() {
  return error_response(make_error("internal", "the hub failed on this request (a bug, logged as hub.exception)"));
}

std::optional<Response> Api::auth_throttled(const std::string& ip) {
  auto wait = auth_failures_.refused(ip);
  if (!wait) return std::nullopt;
  metrics_.add("rexec_rate_limited_total", {{"limit", "auth_failures"}});
  auto r = error_response(make_error("rate_limited", "too many failed authentications from this address (limit: " +
                                                         std::to_string(auth_failures_.limit()) +
                                                         " per minute); retry in " + std::to_string(*wait) + " s"));
  r.headers.push_back({"Retry-After", std::to_string(*wait)});
  return r;
}

void Api::audit(const std::string& actor, const Request& req, const std::string& action, const std::string& target,
                const std::string& detail) {
  if (auto s = store_.audit(audit_entry(actor, action, target, detail, req.peer)); !s)
    log("error", "audit.failed", {{"action", action}, {"reason", s.error().message}});
}

void Api::audit(const Principal& p, const std::string& action, const std::string& target, const std::string& detail) {
  if (auto s = store_.audit(audit_entry(p.user.id, action, target, detail, p.ip)); !s)
    log("error", "audit.failed", {{"action", action}, {"reason", s.error().message}});
}

Response Api::auth_failed(const Request& req, const Error& e) {
  metrics_.add("rexec_auth_failures_total", {});
  log("info", "auth.failed", {{"path", req.path}, {"peer", req.peer}, {"reason", e.message}});
  if (e.code == "unauthorized") auth_failures_.failed(req.peer, req.path, e.message, now());
  return error_response(e);
}

std::variant<Principal, Response> Api::admit(const Request& req) {
  if (auto r = limited(ip_requests_, req.peer, "ip")) return std::move(*r);
  if (auto r = auth_throttled(req.peer)) return std::move(*r);
  auto principal = authenticate(req);
  if (!principal) return auth_failed(req, principal.error());
  if (auto r = limited(token_requests_, principal->token_id, "token")) return std::move(*r);
  return std::move(principal).value();
}

namespace {

// The path and every query key and value must be UTF-8: they end up in JSON errors, logs and the
// audit log. (Header values the hub uses are checked where they are used.)
std::optional<Error> not_utf8(const Request& req) {
  using protocol::viewer::valid_utf8;
  if (!valid_utf8(req.path)) return make_error("bad_request", "the request path is not UTF-8");
  for (const auto& [k, v] : req.query)
    if (!valid_utf8(k) || !valid_utf8(v)) return make_error("bad_request", "the query string is not UTF-8");
  return std::nullopt;
}

}  // namespace

void Api::handle(Exchange ex) {
  if (!guarded("http.handle", [&] { answer(ex, dispatch(ex)); }) && !ex->replied()) ex->reply(internal_error());
}

void Api::answer(const Exchange& ex, Reply reply) {
  if (!reply.later()) ex->reply(std::move(reply).response());
}

Reply Api::dispatch(const Exchange& ex) {
  Request& req = ex->request;
  if (req.via_socket)  // the containers' socket carries agent links and nothing else
    return make_error("not_found", "only the agent link is served on this socket");
  if (auto e = not_utf8(req)) return *e;
  auto match = router_.match(req);
  std::string route = match.pattern ? *match.pattern : "unmatched";
  auto start = std::chrono::steady_clock::now();
  ex->on_reply = [this, route, method = req.method, start](const Response& r) {
    metrics_.add("rexec_http_requests_total", {{"route", route}, {"method", method}, {"code", std::to_string(r.status)}});
    metrics_.observe("rexec_http_request_duration_seconds", {{"route", route}},
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  };
  if (!match.handler) return match.refusal();
  const Route& target = *match.handler;
  if (target.access == Access::kPublic) return target.handler(Principal{{}, "", "", req.peer, "", 0, std::nullopt}, req, ex);
  auto admitted = admit(req);
  if (auto* refusal = std::get_if<Response>(&admitted)) return std::move(*refusal);
  auto* principal = &std::get<Principal>(admitted);
  const char* need = target.access == Access::kRead ? "read" : target.access == Access::kWrite ? "write" : "admin";
  if (!principal->can(need)) {
    std::string why = target.access == Access::kAdmin && !principal->user.admin
                          ? std::string("this route is for administrators")
                          : std::string("this token lacks the ") + need + " scope";
    return make_error("forbidden", why);
  }
  return target.handler(*principal, req, ex);
}

// ---- WebSocket upgrades -----------------------------------------------------------------------

std::variant<std::unique_ptr<WsSession>, Response> Api::upgrade(Request& req, const std::string& protocol) {
  std::variant<std::unique_ptr<WsSession>, Response> out = internal_error();
  guarded("http.upgrade", [&] { out = dispatch_upgrade(req, protocol); });
  return out;
}

std::variant<std::unique_ptr<WsSession>, Response> Api::dispatch_upgrade(Request& req, const std::string& protocol) {
  if (auto e = not_utf8(req)) return error_response(*e);
  if (req.via_socket && req.path != "/api/v1/agent/connect")
    return error_response(make_error("not_found", "only the agent link is served on this socket"));
  auto match = upgrades_.match(req);
  if (!match.handler) {
    if (match.error.code == "not_found") match.error.message = "no WebSocket endpoint at " + req.path;
    return match.refusal();
  }
  if (!match.handler->protocol_ok(protocol)) return error_response(make_error("bad_request", match.handler->protocol_needed));
  return match.handler->handler(req);
}

}  // namespace rx::hub
