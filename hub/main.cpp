// rexec-hub: the hub's command line.
//   rexec-hub serve [--config FILE] [--listen HOST:PORT] [--data-dir DIR] [--tls-cert F --tls-key F] ...
//   rexec-hub user add NAME [--admin] --data-dir DIR    (prints the user's first API token once)
//   rexec-hub token create --data-dir DIR --name NAME   (prints a new admin API token)
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "hub/api/api.h"
#include "hub/base/command_line.h"
#include "hub/base/config.h"
#include "hub/base/secret_file.h"
#include "hub/base/timer.h"
#include "hub/base/tokens.h"
#include "hub/channel/relay.h"
#include "hub/docker/agent_binary.h"
#include "hub/docker/container_supervisor.h"
#include "hub/docker/containers.h"
#include "hub/docker/warm_pool.h"
#include "hub/fanout/cast_indexes.h"
#include "hub/fanout/events.h"
#include "hub/fanout/recordings.h"
#include "hub/net/server.h"
#include "hub/store/accounts.h"
#include "hub/store/sqlite_store.h"
#include "hub/store/store_thread.h"
#include "protocol/log_line.h"
#include "protocol/version.h"

namespace {

using namespace rx;
using namespace rx::hub;

// The usage text is CLI11's, made from the options table (hub/base/command_line.h).
int usage() {
  std::fputs(hub_usage().c_str(), stderr);
  return 2;
}

Result<std::unique_ptr<SqliteStore>> open_store(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) return make_error("io_error", "cannot create " + data_dir + ": " + ec.message());
  ::chmod(data_dir.c_str(), 0700);  // the store and admin.token live here
  return SqliteStore::open(data_dir + "/hub.db");
}

// First start: an admin user and its token in DIR/admin.token (0600).
Status bootstrap_admin(Store& store, const std::string& data_dir) {
  auto existing = store.user_by_name("admin");
  if (!existing) return existing.error();
  if (*existing) return Ok{};
  auto user = store.create_user("admin", true);
  if (!user) return user.error();
  auto t = mint_token(store, user->id, "admin (first start)", "read write admin", std::nullopt);
  if (!t) return t.error();
  auto path = data_dir + "/admin.token";
  if (auto s = write_secret_file(path, t->secret); !s) return s;
  log("info", "hub.admin_created", {{"user", user->id}, {"token_file", path}});
  return Ok{};
}

int token_create(const HubCommand& command) {
  auto store = open_store(command.data_dir);
  if (!store) return std::fprintf(stderr, "rexec-hub: %s\n", store.error().message.c_str()), 1;
  if (auto s = bootstrap_admin(**store, command.data_dir); !s)
    return std::fprintf(stderr, "rexec-hub: %s\n", s.error().message.c_str()), 1;
  auto admin = (*store)->user_by_name("admin");
  if (!admin || !*admin) return std::fprintf(stderr, "rexec-hub: no admin user\n"), 1;
  auto t = mint_token(**store, (**admin).id, command.name, "read write admin", std::nullopt);
  if (!t) return std::fprintf(stderr, "rexec-hub: %s\n", t.error().message.c_str()), 1;
  (void)(*store)->audit(audit_entry((**admin).id, "token.create", t->record.id, "name=" + command.name + " (offline)"));
  std::printf("%s\n", t->secret.c_str());  // shown once; only its hash is kept
  return 0;
}

// rexec-hub user add NAME [--admin] --data-dir DIR
int user_add(const HubCommand& command) {
  const std::string& name = command.name;
  const std::string& data_dir = command.data_dir;
  bool admin = command.admin;
  auto store = open_store(data_dir);
  if (!store) return std::fprintf(stderr, "rexec-hub: %s\n", store.error().message.c_str()), 1;
  if (auto s = bootstrap_admin(**store, data_dir); !s)
    return std::fprintf(stderr, "rexec-hub: %s\n", s.error().message.c_str()), 1;
  auto added = add_user(**store, name, admin);
  if (!added) return std::fprintf(stderr, "rexec-hub: %s\n", added.error().message.c_str()), 1;
  (void)(*store)->audit(audit_entry("cli", "user.create", added->user.id, "name=" + name + (admin ? " admin" : "")));
  std::fprintf(stderr, "user %s (%s) created; its API token follows, shown only this once\n", name.c_str(),
               added->user.id.c_str());
  std::printf("%s\n", added->token.secret.c_str());
  return 0;
}

// This hub's name for itself (not a secret): the label on its containers.
Result<std::string> read_or_create_hub_id(const std::string& data_dir) {
  std::string path = data_dir + "/hub-id";
  if (std::ifstream in(path); in) {
    std::string id;
    std::getline(in, id);
    if (!id.empty()) return id;
  }
  std::string id = new_id("hub_");
  std::ofstream out(path);
  out << id << "\n";
  if (!out) return make_error("io_error", "cannot write " + path);
  return id;
}

struct SignalWatch {
  uv_signal_t handle;
  std::function<void()> on_signal;
};

// Many agents, one socket each: the soft descriptor limit (often 1024) is raised to the hard one.
void raise_fd_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &r);
  }
}

int serve(HubConfig config) {
  if (config.data_dir.empty()) return usage();
  // Docker bind mounts need absolute paths; so does anything a container sees.
  config.data_dir = std::filesystem::absolute(config.data_dir).lexically_normal().string();
  if (config.agent_binary.empty()) config.agent_binary = default_agent_binary();
  config.agent_binary = std::filesystem::absolute(config.agent_binary).lexically_normal().string();
  auto colon = config.listen.rfind(':');
  ServerOptions options;
  options.host = config.listen.substr(0, colon);
  if (options.host.size() > 2 && options.host.front() == '[') options.host = options.host.substr(1, options.host.size() - 2);
  options.port = std::atoi(config.listen.c_str() + colon + 1);
  options.tls_cert = config.tls_cert;
  options.tls_key = config.tls_key;
  options.max_body = config.max_body;
  // Container agents come in through a unix socket in this directory (bind-mounted into each).
  std::string socket_dir = config.data_dir + "/sock";
  options.unix_socket = socket_dir + "/hub.sock";
  if (options.tls_cert.empty() != options.tls_key.empty())
    return log("error", "hub.config_failed", {{"reason", "--tls-cert and --tls-key go together"}}), 2;
  raise_fd_limit();

  const std::string& data_dir = config.data_dir;
  auto store = open_store(data_dir);
  if (!store) return log("error", "hub.store_failed", {{"reason", store.error().message}}), 1;
  if (auto s = bootstrap_admin(**store, data_dir); !s) return log("error", "hub.bootstrap_failed", {{"reason", s.error().message}}), 1;
  // A second connection for the store thread: it waits for locks the loop's connection gives up
  // on after kLoopWaitMs (hub/store/store_thread.h).
  auto thread_store = SqliteStore::open(data_dir + "/hub.db");
  if (!thread_store) return log("error", "hub.store_failed", {{"reason", thread_store.error().message}}), 1;
  (*thread_store)->set_busy_timeout(1000);
  (*store)->set_busy_timeout(kLoopWaitMs);

  uv_loop_t loop;
  uv_loop_init(&loop);
  int rc = 0;
  {
    // First in, last out: everything below may hand it writes until it is destroyed.
    StoreThread store_thread(&loop, std::move(*thread_store));
    Relay relay(**store, &loop);
    relay.use(&store_thread);
    // Before load(): the terminals loaded go on recording.
    Recordings recordings(**store, relay.writes(),
                          {config.record, data_dir + "/recordings", {}, config.recordings_max_bytes,
                           config.recordings_max_age_s});
    relay.set_live_listener([&recordings](Terminal& t, const TerminalRecord& r) { recordings.start(t, r); });
    if (auto s = relay.load(); !s) return log("error", "hub.load_failed", {{"reason", s.error().message}}), 1;
    std::error_code ec;
    std::filesystem::create_directories(socket_dir, ec);
    auto hub_id = read_or_create_hub_id(data_dir);
    if (!hub_id) return log("error", "hub.id_failed", {{"reason", hub_id.error().message}}), 1;
    Containers containers(&loop, config.docker_socket, *hub_id, config.agent_binary, socket_dir);
    Events events(&loop, **store, relay);
    events.use(&store_thread);
    Api api(**store, relay, config, containers);
    api.set_events(&events);
    api.set_recordings(&recordings);
    CastIndexes cast_indexes(&loop);
    api.set_cast_indexes(&cast_indexes);
    ContainerSupervisor supervisor(&loop, **store, relay, containers);
    auto pool_sizes = parse_warm_pool(config.warm_pool);
    if (!pool_sizes) return log("error", "hub.config_failed", {{"reason", pool_sizes.error().message}}), 2;
    auto admin = (*store)->user_by_name("admin");
    WarmPool pool(**store, relay, containers, data_dir, admin && *admin ? (**admin).id : "", *pool_sizes);
    api.set_warm_pool(&pool);
    supervisor.set_expected([&pool](const std::string& terminal) { return pool.holds(terminal); });
    supervisor.set_on_swept([&api] { api.metrics().add("rexec_container_sweeps_total", {}); });
    supervisor.start();  // first: this hub's leftovers (an earlier pool's among them) go
    pool.fill();
    auto server = Server::start(&loop, options, api);
    if (!server) {
      log("error", "hub.listen_failed", {{"reason", server.error().message}});
      rc = 1;
    } else {
      log("info", "hub.listening", {{"host", options.host}, {"port", std::to_string((*server)->port())},
                                    {"data_dir", data_dir}, {"tls", options.tls_cert.empty() ? "off" : "on"}});
      sd_notify(0, "READY=1");
      // Housekeeping once a second: the watchdog is fed from the loop itself, so a wedged loop
      // is what systemd notices; /healthz sees the same tick.
      uint64_t watchdog_usec = 0;
      bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
      std::function<void()> housekeeping;
      Timer tick(&loop, [&] { housekeeping(); });
      housekeeping = [&] {
        api.tick();
        relay.tick();
        recordings.sweep();
        if (watchdog) sd_notify(0, "WATCHDOG=1");
        tick.start(watchdog && watchdog_usec / 2000 < 1000 ? watchdog_usec / 2000 : 1000);
      };
      housekeeping();
      bool stopping = false;
      Timer grace(&loop, [&] { (*server)->stop(); });
      SignalWatch signals[2];
      int numbers[2] = {SIGTERM, SIGINT};
      for (int i = 0; i < 2; ++i) {
        uv_signal_init(&loop, &signals[i].handle);
        signals[i].handle.data = &signals[i];
        signals[i].on_signal = [&] {
          if (stopping) return;
          stopping = true;
          log("info", "hub.stopping", {{"sessions", std::to_string((*server)->session_count())}});
          sd_notify(0, "STOPPING=1");
          // Tell agents (4012: come back at once) and viewers why, give the close frames a
          // moment to leave, then tear down; well inside systemd's stop timeout.
          tick.stop();
          supervisor.stop();
          containers.docker().cancel_all();
          (*server)->close_sessions();
          grace.start(300);
          for (auto& s : signals) uv_close(reinterpret_cast<uv_handle_t*>(&s.handle), nullptr);
        };
        uv_signal_start(&signals[i].handle, [](uv_signal_t* h, int) { static_cast<SignalWatch*>(h->data)->on_signal(); },
                        numbers[i]);
      }
      uv_run(&loop, UV_RUN_DEFAULT);
      server->reset();  // after the loop drained: every connection's close callback has run
      // Fold the WAL into the database file so the next start (or a backup) reads one file.
      (void)(*store)->checkpoint();
    }
  }
  // Let closing handles (timers freed by the relay) finish before closing the loop.
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  log("info", "hub.stopped");
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  if (argc >= 2 && std::strcmp(argv[1], "--version") == 0) return std::printf("rexec-hub %s\n", kRexecVersion) < 0;
  // Every flag and value is checked here, before anything is opened or bound (exit 2 if wrong).
  auto command = parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
  if (!command) return std::fprintf(stderr, "rexec-hub: %s\n", command.error().message.c_str()), 2;
  switch (command->kind) {
    case HubCommand::Kind::serve: return serve(std::move(command->config));
    case HubCommand::Kind::user_add: return user_add(*command);
    case HubCommand::Kind::token_create: return token_create(*command);
    case HubCommand::Kind::help: return std::fputs(command->help.c_str(), stdout) < 0;
  }
  return usage();
}
