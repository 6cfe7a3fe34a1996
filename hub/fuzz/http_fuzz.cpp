// libFuzzer target: raw bytes as they would arrive on the hub's port -> the strict front
// (parse_request_head, BodyReader) -> the hub's whole handler chain (Api: router, rate limits,
// authentication, every route's handler, WebSocket upgrade decisions), with a real SQLite store in
// a temporary directory and no network. Requests follow each other on one "connection" as
// pipelined requests would; the first refusal ends it, as the server would. Inputs may say
// "Bearer ADMIN" (or "Bearer USER") where a token goes: the fuzzer cannot guess a token, so the
// placeholder is swapped for a real one and the authenticated routes are explored too. The seed
// corpus (corpus/http) holds one request per route family, as curl would send it.
#include <uv.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "hub/api/api.h"
#include "hub/base/tokens.h"
#include "hub/channel/relay.h"
#include "hub/docker/containers.h"
#include "hub/net/server.h"
#include "hub/store/accounts.h"
#include "hub/store/sqlite_store.h"

namespace {

using namespace rx::hub;

struct Hub {
  uv_loop_t loop{};
  std::string dir;
  std::unique_ptr<SqliteStore> store;
  std::unique_ptr<Relay> relay;
  std::unique_ptr<Containers> containers;
  std::unique_ptr<Api> api;
  std::string admin_token, user_token;

  Hub() {
    uv_loop_init(&loop);
    char tmpl[] = "/tmp/rexec-http-fuzz-XXXXXX";
    dir = ::mkdtemp(tmpl);
    auto opened = SqliteStore::open(dir + "/hub.db");
    if (!opened) std::abort();  // no store, nothing to fuzz
    store = std::move(opened).value();
    auto admin = add_user(*store, "admin", true);
    auto user = add_user(*store, "alice", false);
    admin_token = admin->token.secret;
    user_token = user->token.secret;
    relay = std::make_unique<Relay>(*store, &loop);
    HubConfig config;
    config.data_dir = dir;
    config.rate_requests = 0;  // the fuzzer sends far more than a person: limits would hide the handlers
    config.rate_terminal_creates = 0;
    config.docker_socket = dir + "/no-docker.sock";  // Docker calls fail fast, as without a daemon
    config.agent_binary = dir + "/no-agent";
    containers = std::make_unique<Containers>(&loop, config.docker_socket, "fuzz", config.agent_binary, dir + "/sock");
    api = std::make_unique<Api>(*store, *relay, config, *containers);
  }
};

Hub& hub() {
  static Hub* h = new Hub();  // lives for the process: every input goes to the same hub
  return *h;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Hub& h = hub();
  std::string in(reinterpret_cast<const char*>(data), size);
  replace_all(in, "Bearer ADMIN", "Bearer " + h.admin_token);
  replace_all(in, "Bearer USER", "Bearer " + h.user_token);
  for (int requests = 0; requests < 8 && !in.empty(); ++requests) {
    auto parsed = parse_request_head(in);
    if (parsed.state != HeadParse::kDone) break;  // incomplete or refused: the connection ends
    in.erase(0, parsed.length);
    std::string body;
    if (!parsed.head.upgrade) {
      BodyReader reader(parsed.head.body, parsed.head.content_length, 1024 * 1024);
      if (reader.error()) break;
      in.erase(0, reader.feed(in, body));
      if (!reader.done()) break;
    }
    Request req = make_request(parsed.head, std::move(body), "192.0.2.1", false);
    if (parsed.head.upgrade) {
      auto protocol = req.header("sec-websocket-protocol").value_or("");
      auto result = h.api->upgrade(req, protocol);
      (void)result;  // a session made here is dropped unopened, as when a client leaves mid-handshake
    } else {
      auto ex = std::make_shared<HttpExchange>();
      ex->request = std::move(req);
      h.api->handle(ex);
    }
    // Let whatever the handler started (a Docker call failing, a timer) run its course a little.
    for (int i = 0; i < 4; ++i) uv_run(&h.loop, UV_RUN_NOWAIT);
  }
  return 0;
}
