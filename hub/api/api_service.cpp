// The hub about itself: the audit log, /healthz and /metrics.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>

#include "hub/api/api.h"
#include "hub/api/json_fields.h"
#include "hub/fanout/recordings.h"
#include "hub/docker/agent_binary.h"

namespace rx::hub {
namespace {

// Docker is optional for the hub (agent terminals work without it): a non-blocking connect to
// its socket says whether it is there, without ever waiting on it.
std::pair<bool, std::string> docker_reachable(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return {false, "socket path too long"};
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return {false, std::strerror(errno)};
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  ::close(fd);
  if (rc == 0 || err == EAGAIN || err == EINPROGRESS) return {true, ""};
  return {false, std::strerror(err)};
}

}  // namespace

Reply Api::list_audit(const Principal& p, Request& req) {
  AuditFilter f;
  auto get = [&](const char* name) {
    auto it = req.query.find(name);
    return it == req.query.end() ? std::string() : it->second;
  };
  f.actor = get("actor");
  f.action = get("action");
  f.target = get("target");
  if (!p.is_admin()) {
    if (!f.actor.empty() && f.actor != p.user.id)
      return make_error("forbidden", "only administrators may read other users' audit entries");
    f.actor = p.user.id;
  }
  auto since = query_int(req, "since_id", 0, INT64_MAX);
  auto from = query_int(req, "from", 0, INT64_MAX);
  auto to = query_int(req, "to", 0, INT64_MAX);
  auto limit = query_int(req, "limit", 1, 1000);
  for (const Error* e : {since ? nullptr : &since.error(), from ? nullptr : &from.error(), to ? nullptr : &to.error(),
                         limit ? nullptr : &limit.error()})
    if (e) return *e;
  f.since_id = since->value_or(0);
  f.from = *from;
  f.to = *to;
  f.limit = int(limit->value_or(100));
  auto entries = store_.list_audit(f);
  if (!entries) return entries.error();
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : *entries)
    out.push_back({{"id", e.id}, {"at", e.at}, {"actor", e.actor}, {"action", e.action}, {"target", e.target},
                   {"detail", e.detail}, {"ip", e.ip}});
  int64_t next = entries->empty() ? f.since_id : entries->back().id;
  return json_response(200, {{"entries", out}, {"next_since_id", next}});
}

Reply Api::healthz(const Principal&, Request&) {
  auto store = store_.health_check(int64_t(std::time(nullptr)));
  auto tick_age = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - last_tick_);
  bool loop_ok = tick_age < std::chrono::seconds(5);
  auto [docker_ok, docker_why] = docker_reachable(config_.docker_socket);
  auto agent = check_agent_binary(containers_.agent_binary());
  nlohmann::json j{{"ok", store.ok() && loop_ok},
                   {"store", {{"writable", store.ok()}}},
                   {"loop", {{"alive", loop_ok}, {"last_tick_ms_ago", tick_age.count()}}},
                   {"docker", {{"reachable", docker_ok}, {"socket", config_.docker_socket}}},
                   {"containers", {{"agent_binary", containers_.agent_binary()}, {"usable", agent.ok()}}},
                   {"agents_online", relay_.online_count()}};
  // Not part of "ok": a hub without container terminals still serves agents and viewers.
  if (!agent) j["containers"]["error"] = agent.error().message;
  if (!store) j["store"]["error"] = store.error().message;
  if (!docker_ok) j["docker"]["error"] = docker_why;
  return json_response(j["ok"].get<bool>() ? 200 : 503, j);
}

Reply Api::get_metrics(const Principal&, Request&) {
  metrics_.set("rexec_agents_online", {}, double(relay_.online_count()));
  metrics_.set("rexec_viewers", {}, double(relay_.viewer_count()));
  const auto& c = relay_.counters();
  metrics_.set("rexec_relayed_bytes_total", {{"direction", "out"}}, double(c.output_bytes));
  metrics_.set("rexec_relayed_bytes_total", {{"direction", "in"}}, double(c.input_bytes));
  metrics_.set("rexec_frames_dropped_total", {}, double(c.frames_dropped));
  if (recordings_) {
    metrics_.set("rexec_recording_dropped_bytes_total", {}, double(recordings_->dropped_bytes()));
    metrics_.set("rexec_recording_write_failures_total", {}, double(recordings_->write_failures()));
  }
  metrics_.clear("rexec_terminals");
  if (auto all = store_.list_terminals(TerminalFilter{})) {
    std::map<std::pair<std::string, std::string>, int> counts;
    for (const auto& t : *all) ++counts[{t.kind, relay_.status_of(t)}];
    for (const auto& [k, n] : counts) metrics_.set("rexec_terminals", {{"kind", k.first}, {"state", k.second}}, n);
  }
  Response r;
  r.content_type = "text/plain; version=0.0.4";
  r.body = metrics_.render();
  return r;
}

}  // namespace rx::hub
