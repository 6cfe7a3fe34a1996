#include "tests/support/hub_fixture.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "protocol/limits.h"

namespace rx::test {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}


HubFixture::HubFixture(std::vector<std::string> flags, std::function<void(const std::string&)> before_start,
                       std::string hub_binary)
    : dir_("rexec-hub-test"),
      port_(free_port()),
      flags_(std::move(flags)),
      hub_binary_(hub_binary.empty() ? binary("hub/rexec-hub") : std::move(hub_binary)) {
  if (before_start) before_start(dir_ / "data");
  start();
}

HubFixture::~HubFixture() {
  if (process_) process_->kill_and_wait();
  // A hub built with sanitizers reports to its log; any report fails the test that ran it.
  std::string all = log();
  for (const char* needle : {"ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"})
    if (all.find(needle) != std::string::npos) ADD_FAILURE() << "rexec-hub reported a sanitizer error:\n" << all;
}

void HubFixture::start() {
  std::string log = dir_ / ("hub-" + std::to_string(runs_++) + ".log");
  std::vector<std::string> argv{hub_binary_, "serve", "--listen", "127.0.0.1:" + std::to_string(port_),
                                "--data-dir", dir_ / "data"};
  argv.insert(argv.end(), flags_.begin(), flags_.end());
  process_ = std::make_unique<Process>(argv, child_env(), log);
  if (!process_->wait_for_log("event=hub.listening", std::chrono::seconds(20)))
    throw std::runtime_error("rexec-hub did not start:\n" + process_->log());
  if (admin_token_.empty()) {
    admin_token_ = read_file(dir_ / "data/admin.token");
    while (!admin_token_.empty() && admin_token_.back() == '\n') admin_token_.pop_back();
  }
}

void HubFixture::kill9() {
  if (process_) process_->kill_and_wait();
}

void HubFixture::terminate() {
  if (!process_) return;
  process_->signal(SIGTERM);
  process_->wait(std::chrono::seconds(10));
}

std::string HubFixture::log() const {
  std::string all;
  for (int i = 0; i < runs_; ++i) all += read_file(dir_ / ("hub-" + std::to_string(i) + ".log"));
  return all;
}

std::string HubFixture::enroll() {
  auto r = api("POST", "/api/v1/agent-enrollments", "{}");
  auto j = r.body;
  auto pos = j.find("\"token\":\"");
  if (r.status != 201 || pos == std::string::npos) throw std::runtime_error("enrollment failed: " + r.body);
  return j.substr(pos + 9, j.find('"', pos + 9) - pos - 9);
}

bool FakeAgent::connect(int port, const std::string& token, const std::string& name, HttpResult* refusal) {
  return ws.connect(port, "/api/v1/agent/connect", "rexec.agent.v1",
                    {{"Authorization", "Bearer " + token}, {"X-Rexec-Agent-Name", name}}, refusal);
}

std::optional<protocol::Welcome> FakeAgent::hello(std::vector<protocol::ChannelState> channels) {
  protocol::Hello h;
  h.proto_min = protocol::kProtocolVersionMin;
  h.proto_max = protocol::kProtocolVersionMax;
  h.agent_version = "fake-1";
  h.capabilities = {"pty", "exec"};
  h.host.hostname = "fake-host";
  h.host.os = "Fake OS";
  h.host.cpus = 2;
  h.host.gpus = gpus;
  h.channels = std::move(channels);
  if (!send(h)) return std::nullopt;
  return next_of<protocol::Welcome>();
}

std::optional<protocol::Frame> FakeAgent::next(std::chrono::milliseconds timeout) {
  auto m = ws.receive(timeout);
  if (!m) return std::nullopt;
  auto f = protocol::decode(m->data);
  if (!f) return std::nullopt;
  return *f;
}

bool wait_online(HubFixture& hub, const std::string& name, std::chrono::milliseconds timeout) {
  return eventually([&] {
    auto j = nlohmann::json::parse(hub.api("GET", "/api/v1/agents").body, nullptr, false);
    if (!j.is_object()) return false;
    for (const auto& a : j["agents"])
      if (a["name"] == name && a["online"] == true) return true;
    return false;
  }, timeout);
}

std::string create_terminal(HubFixture& hub, const std::string& agent) {
  nlohmann::json body{{"kind", "agent"}, {"agent", agent}, {"cols", 80}, {"rows", 24}};
  auto r = hub.api("POST", "/api/v1/terminals", body.dump());
  if (r.status != 201) return "";
  return nlohmann::json::parse(r.body)["id"];
}

}  // namespace rx::test
