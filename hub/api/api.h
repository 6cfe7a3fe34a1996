// Api: the hub's HTTP surface. Every request goes through handle(): a path and query that are
// UTF-8, route match, per-IP limit, the per-IP limit on failed authentications, authentication
// (bearer API token), per-token limit, the route's access level (read, write, admin), then the
// handler, which authorises against the resource's owner (others' resources answer 404, as if
// they did not exist). Also approves WebSocket upgrades: agents (credential or enrollment
// token) and viewers. Handlers live in api_*.cpp by resource. handle() and upgrade() never
// throw: an exception a handler lets out (a bug) answers that one request 500.
#pragma once

#include <uv.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>

#include "hub/api/auth_failures.h"
#include "hub/api/downloads.h"
#include "hub/api/metrics.h"
#include "hub/base/config.h"
#include "hub/base/guard.h"
#include "hub/base/rate_limit.h"
#include "hub/channel/relay.h"
#include "hub/docker/containers.h"
#include "hub/net/reply.h"
#include "hub/net/router.h"
#include "hub/net/server.h"
#include "hub/net/web.h"
#include "hub/store/store.h"

namespace rx::hub {

struct Principal {
  User user;
  std::string token_id;
  std::string scopes;  // "read write admin"
  std::string ip;
  std::string session_id;  // signed in by a browser session cookie (not a bearer token)
  int64_t session_expires_at = 0;
  std::optional<int64_t> token_expires_at;  // the API token's own expiry (a session never outlives it)
  // Admin scope counts only on an admin user's token.
  bool can(std::string_view scope) const;
  bool is_admin() const { return user.admin && can("admin"); }
  bool sees(const std::string& owner_id) const { return owner_id == user.id || is_admin(); }
};

// The browser's sign-in cookie (HttpOnly, SameSite=Strict): its value is a session secret.
inline constexpr std::string_view kSessionCookie = "rexec_session";

// True when a Sec-WebSocket-Protocol header offers the viewer protocol (among others).
bool viewer_protocol_ok(const std::string& header);

// What a route asks of its caller.
enum class Access { kPublic, kRead, kWrite, kAdmin };

// What a caller may do with a machine (a host agent): see it and its GPUs (a view grant), open
// terminals and exec there (a use grant), or everything, grants included (its owner, an admin).
// Without any, the machine does not exist for them (404).
enum class MachineAccess { kNone = 0, kView = 1, kUse = 2, kOwner = 3 };

// A machine as one caller sees it.
struct Machine {
  AgentRecord agent;
  MachineAccess access = MachineAccess::kNone;
  std::string access_name;  // "owner", "admin", "use", "view"
  std::string unix_user;    // the caller's grant's local account ("" = none)
};

class Api final : public HttpHandler {
 public:
  Api(Store& store, Relay& relay, const HubConfig& config, Containers& containers);
  ~Api() override { relay_.gpus().set_listener(nullptr); }

  void handle(std::shared_ptr<HttpExchange> exchange) override;
  std::variant<std::unique_ptr<WsSession>, Response> upgrade(Request& request, const std::string& protocol) override;
  // The routes marked so in the table (uploads: PUT .../files) take their body as it arrives.
  bool streams_body(const RequestHead& head) override;

  // Every route, for docs checks: "GET /api/v1/terminals".
  std::vector<std::string> route_list() const;
  // From the hub's housekeeping timer: /healthz reports the loop alive while this keeps coming.
  void tick();
  Metrics& metrics() { return metrics_; }
  void set_warm_pool(class WarmPool* pool) { pool_ = pool; }
  void set_events(class Events* events) { events_ = events; }
  void set_recordings(class Recordings* recordings) { recordings_ = recordings; }
  void set_cast_indexes(class CastIndexes* indexes) { cast_indexes_ = indexes; }

 private:
  using Exchange = std::shared_ptr<HttpExchange>;
  using Handler = std::function<Reply(const Principal&, Request&, const Exchange&)>;
  struct Route {
    Access access;
    Handler handler;
    bool streams_body = false;  // the handler takes the body as it arrives (streams_body())
  };
  using Upgrade = std::variant<std::unique_ptr<WsSession>, Response>;
  // A WebSocket endpoint: the subprotocol it needs (checked before its handler runs) and the
  // handler, which admits the caller itself (agents and share viewers bring no API token).
  struct UpgradeRoute {
    std::function<bool(const std::string& protocol)> protocol_ok;
    std::string protocol_needed;  // the error's words: "the agent link needs subprotocol rexec.agent.v1"
    std::function<Upgrade(Request&)> handler;
  };
  void routes();
  void describe_metrics();
  Reply dispatch(const Exchange& ex);
  Upgrade dispatch_upgrade(Request& request, const std::string& protocol);
  // Answers `ex` with `reply` unless the handler said it answers Later itself.
  static void answer(const Exchange& ex, Reply reply);
  // A callback for work that completes later (Docker): `f` returns the Reply for `ex`, and an
  // exception it lets out answers 500.
  template <typename F>
  auto replying(const Exchange& ex, F f) {
    return [ex, f = std::move(f)](auto&&... args) mutable {
      if (!guarded("http.later", [&] { answer(ex, f(std::forward<decltype(args)>(args)...)); }) && !ex->replied())
        ex->reply(internal_error());
    };
  }
  static Response internal_error();
  // "http" or "https": the scheme browsers reach this hub by (public-url's, else from TLS), which
  // a cookie-signed request's Origin must name.
  std::string origin_scheme() const;
  // 429 when `ip` failed to authenticate too often (AuthFailures), before any lookup.
  std::optional<Response> auth_throttled(const std::string& ip);
  Result<Principal> authenticate(const Request& request);
  // The principal of an API token given as a string (looked up by hash, compared in constant
  // time), as principal_of_token says.
  Result<Principal> authenticate_token(const std::string& token, const Request& request);
  // The principal of a token record: not revoked or expired; touches its last-used time.
  Result<Principal> principal_of_token(const TokenRecord& token, const Request& request);
  Result<Principal> authenticate_session(const std::string& cookie, const Request& request);
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
  Reply create_enrollment(const Principal&, Request&);
  Reply list_agents(const Principal&, Request&);
  Reply delete_agent(const Principal&, Request&);
  Reply get_agent(const Principal&, Request&);
  // DELETE /api/v1/agent/self: an agent (its credential, not an API token) removes itself.
  Reply unenroll_self(const Principal&, Request&);
  // The machine `id_or_name` if the caller has at least `need` on it: not_found without any
  // access, forbidden with too little (`what` says what needed more: "opening terminals").
  Result<Machine> find_machine(const Principal& p, const std::string& id_or_name,
                               MachineAccess need = MachineAccess::kView, const std::string& what = "");
  // The caller's access to `a`, given the caller's grants by agent id (grants_of_user).
  Machine machine_of(const Principal& p, const AgentRecord& a, const std::map<std::string, GrantRecord>& grants) const;
  Result<std::map<std::string, GrantRecord>> grants_by_agent(const Principal& p);
  nlohmann::json machine_json(const Machine& m);
  // api_grants.cpp
  // A user named by name, else by id (grants and filters take either).
  Result<std::optional<User>> find_user(const std::string& name_or_id);
  Reply create_grant(const Principal&, Request&);
  Reply list_grants(const Principal&, Request&);
  Reply delete_grant(const Principal&, Request&);
  // api_gpus.cpp: leases and reservations
  Reply release_gpus(const Principal&, Request&);
  Reply create_reservation(const Principal&, Request&);
  Reply list_machine_reservations(const Principal&, Request&);
  Reply list_reservations(const Principal&, Request&);
  Reply delete_reservation(const Principal&, Request&);
  nlohmann::json reservation_json(const ReservationRecord& r);
  // Takes the GPUs a request asks for on `m` ("gpus" or "gpu_count" of `body`; none: nothing) for
  // `holder`: the indexes taken, or the response refusing the request (400, 409).
  std::variant<std::vector<uint32_t>, Response> take_gpus(const Principal& p, const Machine& m,
                                                          const nlohmann::json& body, const std::string& holder);
  // The "gpus" / "gpu_count" fields are well-formed (checked before any lookup).
  static Status gpu_fields_ok(const nlohmann::json& body);
  // GPU lease events: audited, and on the dashboard's feed.
  void on_gpu_event(const GpuEvent& e);
  std::variant<std::unique_ptr<WsSession>, Response> agent_upgrade(Request& req);
  // api_terminals.cpp
  Reply create_terminal(const Principal&, Request&, const Exchange&);
  Reply list_terminals(const Principal&, Request&);
  Reply get_terminal(const Principal&, Request&);
  Reply delete_terminal(const Principal&, Request&, const Exchange&);
  Reply exec(const Principal&, Request&, const Exchange&);
  Result<TerminalRecord> find_terminal(const Principal& p, const std::string& id);
  // "record" (default: the hub's `record` setting) and "record_input" (default false) of a create.
  Result<RecordChoice> record_choice(const nlohmann::json& body) const;
  // `agent_names` (agent id -> name), when the caller has them all, saves a store lookup per terminal.
  nlohmann::json terminal_json(const TerminalRecord& t, const std::map<std::string, std::string>* agent_names = nullptr);
  // 429 when `who` already holds `cap` viewer sockets on the terminal; `why` says whose.
  std::optional<Response> viewer_cap(const std::string& terminal_id, const std::string& who, int cap,
                                     const std::string& why);
  std::variant<std::unique_ptr<WsSession>, Response> viewer_upgrade(Request& req, const std::string& id);
  std::variant<std::unique_ptr<WsSession>, Response> share_viewer_upgrade(Request& req, const std::string& id,
                                                                          const std::string& code,
                                                                          std::optional<uint64_t> since);
  // api_containers.cpp
  Reply create_container_terminal(const Principal&, const nlohmann::json& body, const Exchange&);
  // A new terminal's labels (opt_labels' text), in the store and in `t`.
  void apply_labels(TerminalRecord& t, const std::string& labels_json);
  Reply delete_container_terminal(const Principal&, const TerminalRecord& t, const Exchange&);
  // The container started: remember it, audit, answer 201 (`note`: " warm" for the pool's).
  Response created_container_terminal(const Principal& p, TerminalRecord t, const std::string& container_id,
                                      const std::string& note);
  Reply stop_terminal(const Principal&, Request&, const Exchange&);
  Reply start_terminal(const Principal&, Request&, const Exchange&);
  // api_tokens.cpp
  Reply create_token(const Principal&, Request&);
  Reply list_tokens(const Principal&, Request&);
  Reply delete_token(const Principal&, Request&);
  Reply create_user(const Principal&, Request&);
  Reply list_users(const Principal&, Request&);
  // api_sessions.cpp
  Reply create_session(const Principal&, Request&);
  Reply current_session(const Principal&, Request&);
  Reply delete_session(const Principal&, Request&);
  // api_web.cpp: the dashboard's files and its events feed
  Reply serve_web(const Principal&, Request&);
  Reply list_images(const Principal&, Request&, const Exchange&);
  std::variant<std::unique_ptr<WsSession>, Response> events_upgrade(Request& req);
  // api_downloads.cpp: the installer and the agent binaries (hub/api/downloads.h)
  Reply serve_installer(const Principal&, Request&);
  Reply serve_download(const Principal&, Request&, const Exchange&);
  // The URL the installer is written for: public-url; else the listen address, unless that is
  // a wildcard (0.0.0.0, [::]), then the request's Host.
  std::string installer_base(const Request& req) const;
  // api_shares.cpp
  Reply create_share(const Principal&, Request&);
  Reply list_shares(const Principal&, Request&);
  Reply delete_share(const Principal&, Request&);
  Reply lookup_share(const Principal&, Request&);
  // The share a viewer's ?share=CODE names, if it is valid for terminal `id`.
  Result<ShareRecord> find_share(const std::string& code, const std::string& terminal_id);
  // "http(s)://host[:port]" users reach this hub at: public-url, else from the request.
  std::string public_base(const Request& req) const;
  // api_recordings.cpp
  Reply list_recordings(const Principal&, Request&);
  Reply get_recording(const Principal&, Request&);
  Reply get_recording_cast(const Principal&, Request&, const Exchange&);
  Reply delete_recording(const Principal&, Request&);
  Result<RecordingRecord> find_recording(const Principal& p, const std::string& id);
  // The .cast file of `r` on `ex`: streamed, one Range honoured (206), 416 outside it.
  Reply stream_recording(const RecordingRecord& r, Request& req, const Exchange& ex);
  // The player's segmented source (hub/fanout/cast_index.h): the index, and segment {n} ?to=BYTES.
  Reply get_recording_index(const Principal&, Request&, const Exchange&);
  Reply get_recording_segment(const Principal&, Request&, const Exchange&);
  Reply recording_index(const RecordingRecord& r, const Exchange& ex);
  Reply recording_segment(const RecordingRecord& r, Request& req, const Exchange& ex);
  // api_recording_shares.cpp
  Reply create_recording_share(const Principal&, Request&);
  Reply list_recording_shares(const Principal&, Request&);
  Reply delete_recording_share(const Principal&, Request&);
  Reply lookup_recording_share(const Principal&, Request&);
  Reply shared_recording_cast(const Principal&, Request&, const Exchange&);
  Reply shared_recording_index(const Principal&, Request&, const Exchange&);
  Reply shared_recording_segment(const Principal&, Request&, const Exchange&);
  // The recording the X-Rexec-Share header's code names, or the refusal (limits, a bad code: 401).
  std::variant<RecordingRecord, Response> shared_recording(const Principal& anonymous, Request& req);
  // The recording a share code (X-Rexec-Share, or a lookup's body) lets its holder play.
  Result<RecordingRecord> find_recording_share(const std::string& code);
  nlohmann::json recording_json(const RecordingRecord& r);
  // api_files.cpp: a terminal's files, through its agent (docs/files.md)
  Reply get_file(const Principal&, Request&, const Exchange&);
  Reply put_file(const Principal&, Request&, const Exchange&);
  Reply delete_file(const Principal&, Request&, const Exchange&);
  Reply start_file(const Principal& p, Request& req, const Exchange& ex, const std::string& op);
  // The terminal, the checked path and the account the operation runs as; audited.
  Result<FileRequest> file_request(const Principal& p, Request& req, const std::string& op);
  // api_service.cpp
  Reply list_audit(const Principal&, Request&);
  Reply healthz(const Principal&, Request&);
  Reply get_metrics(const Principal&, Request&);

  Store& store_;
  Relay& relay_;
  HubConfig config_;
  Containers& containers_;
  class WarmPool* pool_ = nullptr;
  class Events* events_ = nullptr;
  class Recordings* recordings_ = nullptr;
  class CastIndexes* cast_indexes_ = nullptr;
  Router<Route> router_;
  Router<UpgradeRoute> upgrades_;
  Metrics metrics_;
  RateLimiter ip_requests_;
  RateLimiter token_requests_;
  RateLimiter terminal_creates_;
  AuthFailures auth_failures_;
  WebFiles web_;
  Downloads downloads_;
  std::chrono::steady_clock::time_point last_tick_ = std::chrono::steady_clock::now();
};

}  // namespace rx::hub
