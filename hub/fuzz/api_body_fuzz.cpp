// Fuzzes the REST API's JSON bodies through the real handlers: terminal create (agent and
// container kinds), exec, shares, share lookup, tokens, users, sessions and enrollments, each
// request going through Api::handle() as the server would hand it over (authentication, routing,
// field validation, the relay, a real SQLite store in a temporary directory, an agent online on
// an in-process link). No network: the exchange is detached and Docker is a socket that is not
// there. The first input byte picks the route, the rest is the body.
//
// What must hold, whatever the body: the hub answers (or, for exec, answers once its agent
// has), the answer is JSON with {"error", "code"} for every 4xx/5xx, no exception escapes (it
// would be a 500 "internal" here: that aborts too), and every frame the hub makes for the agent
// is within the protocol's limits and decodes again (the agent would drop its link otherwise).
#include <uv.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hub/api/api.h"
#include "hub/base/tokens.h"
#include "hub/channel/relay.h"
#include "hub/net/server.h"
#include "hub/store/accounts.h"
#include "hub/store/sqlite_store.h"
#include "protocol/codec.h"
#include "protocol/limits.h"

namespace {

using namespace rx;
using namespace rx::hub;

// The agent's side of an in-process link: every frame the hub sends must encode within the
// limits and decode back (what a real agent would do with it).
class FuzzLink final : public AgentLink {
 public:
  explicit FuzzLink(AgentRecord a) : agent_(std::move(a)) {}
  const AgentRecord& agent() const override { return agent_; }
  void close(uint16_t, const std::string&) override {}
  void send(const protocol::Frame& frame) override {
    auto bytes = protocol::encode(frame);
    if (!bytes) std::abort();  // the hub made a frame the agent would refuse
    auto back = protocol::decode(*bytes);
    if (!back || !(*back == frame)) std::abort();
    if (auto* open = std::get_if<protocol::Open>(&frame)) opens.push_back(*open);
  }
  void send_data(uint32_t, protocol::Stream, uint64_t, std::span<const uint8_t> bytes) override {
    if (bytes.size() > protocol::kMaxChunk) std::abort();
  }
  std::vector<protocol::Open> opens;

 private:
  AgentRecord agent_;
};

struct World {
  std::filesystem::path dir;
  uv_loop_t loop{};
  std::unique_ptr<SqliteStore> store;
  std::unique_ptr<Relay> relay;
  std::unique_ptr<Containers> containers;
  std::unique_ptr<Api> api;
  std::unique_ptr<FuzzLink> link;
  std::string token;
  std::string terminal;  // one live terminal for the share routes

  World() {
    dir = std::filesystem::temp_directory_path() / ("rexec-fuzz-api-" + new_id(""));
    std::filesystem::create_directories(dir / "data");
    uv_loop_init(&loop);
    auto s = SqliteStore::open((dir / "data/hub.db").string());
    if (!s) std::abort();
    store = std::move(s).value();
    auto admin = add_user(*store, "admin", true);
    if (!admin) std::abort();
    token = admin->token.secret;
    HubConfig config;
    config.data_dir = (dir / "data").string();
    config.rate_requests = config.rate_terminal_creates = config.rate_auth_failures = 0;
    config.docker_socket = (dir / "no-docker.sock").string();
    relay = std::make_unique<Relay>(*store, &loop);
    containers = std::make_unique<Containers>(&loop, config.docker_socket, "hub_fuzz", "/nonexistent/agent",
                                              (dir / "sock").string());
    api = std::make_unique<Api>(*store, *relay, config, *containers);
    auto agent = store->create_agent(admin->user.id, "fuzz-agent", token_hash(new_token(TokenKind::kAgentCredential)), "host");
    if (!agent) std::abort();
    link = std::make_unique<FuzzLink>(*agent);
    protocol::Hello hello;
    hello.proto_min = hello.proto_max = 1;
    hello.host.hostname = "fuzz";
    (void)relay->agent_hello(*link, hello, std::nullopt);
    relay->agent_ready(*link, hello);
    auto t = relay->create_terminal(admin->user, *agent, "shared", 80, 24, {});
    if (!t) std::abort();
    terminal = t->id;
    link->opens.clear();
  }
  ~World() {
    api.reset();
    containers.reset();
    relay.reset();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    store.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  // The agent's answers to what the hub opened: exec runs end at once, new terminals go away again
  // (a terminal keeps a 2 MiB ring: thousands of them would only measure the fuzzer's memory).
  void settle(const Response& r) {
    for (const auto& o : link->opens) {
      if (o.kind != protocol::ChannelKind::kExec) continue;
      relay->agent_frame(*link, protocol::Exit{o.channel, 0, ""});
      relay->agent_frame(*link, protocol::Close{o.channel, ""});
    }
    link->opens.clear();
    if (r.status == 201) {
      auto j = nlohmann::json::parse(r.body, nullptr, false);
      if (j.is_object() && j.contains("id") && j["id"].is_string() && j.contains("kind"))
        (void)relay->delete_terminal(j["id"].get<std::string>());
    }
  }
};

void check(const Response& r) {
  if (r.status < 200 || r.status > 599) std::abort();
  if (r.status == 204) return;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object()) std::abort();
  if (r.status >= 400) {
    if (!j.contains("code") || !j["code"].is_string() || !j.contains("error") || !j["error"].is_string()) std::abort();
    if (j["code"] == "internal") std::abort();  // an exception escaped a handler
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World world;
  if (size == 0) return 0;
  static const std::vector<std::string> kRoutes = {
      "/api/v1/terminals", "/api/v1/exec", "/api/v1/terminals/" + world.terminal + "/shares", "/api/v1/tokens",
      "/api/v1/users", "/api/v1/sessions", "/api/v1/shares/lookup", "/api/v1/agent-enrollments"};
  auto ex = std::make_shared<HttpExchange>();
  ex->request.method = "POST";
  ex->request.path = kRoutes[data[0] % kRoutes.size()];
  ex->request.headers["authorization"] = "Bearer " + world.token;
  ex->request.headers["content-type"] = "application/json";
  ex->request.headers["host"] = "127.0.0.1:8080";
  ex->request.peer = "127.0.0.1";
  ex->request.body.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  world.api->handle(ex);
  // Exec answers once its agent has; container creates once "Docker" has (it is not there).
  if (!ex->replied()) world.settle(ex->response());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!ex->replied() && std::chrono::steady_clock::now() < deadline)
    if (!uv_run(&world.loop, UV_RUN_ONCE)) break;
  if (!ex->replied()) std::abort();
  check(ex->response());
  world.settle(ex->response());
  return 0;
}
