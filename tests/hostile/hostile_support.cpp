#include "tests/hostile/hostile_support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace rx::test {

using nlohmann::json;

std::string raw_exchange(int port, const std::string& bytes, std::chrono::milliseconds timeout,
                         const std::string& source_ip) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  if (!source_ip.empty()) {
    sockaddr_in src{};
    src.sin_family = AF_INET;
    ::inet_pton(AF_INET, source_ip.c_str(), &src.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) return ::close(fd), "";
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return ::close(fd), "";
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t w = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (w <= 0) break;
    sent += size_t(w);
  }
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[16384];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, int(left.count())) <= 0) break;
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, size_t(n));
    // One whole response is enough (keep-alive connections stay open after it).
    auto head_end = out.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      auto r = parse_response(out);
      if (r.headers.count("content-length") &&
          out.size() >= head_end + 4 + std::stoul(r.headers.at("content-length")))
        break;
    }
  }
  ::close(fd);
  return out;
}

HttpResult parse_response(const std::string& raw) {
  auto head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.", 0) != 0 || head_end == std::string::npos) return {};
  HttpResult r = parse_head(raw.substr(0, head_end + 4));
  r.body = raw.substr(head_end + 4);
  if (r.headers.count("content-length")) r.body = r.body.substr(0, std::stoul(r.headers.at("content-length")));
  return r;
}

bool hub_answers(const HubFixture& hub) {
  auto r = http(hub.port(), "GET", "/healthz");
  return (r.status == 200 || r.status == 503) && json::parse(r.body, nullptr, false).is_object();
}

LiveTerminal::LiveTerminal(HubFixture& hub, const std::string& agent_name)
    : hub_(hub), name_(agent_name), agent_(hub, agent_name) {
  if (!wait_online(hub_, name_, std::chrono::seconds(20))) {
    ADD_FAILURE() << "agent " << name_ << " did not come online:\n" << agent_.log();
    return;
  }
  id_ = create_terminal(hub_, name_);
  EXPECT_FALSE(id_.empty()) << "cannot create the live terminal";
  expect_alive();
}

void LiveTerminal::expect_alive() {
  ASSERT_TRUE(hub_.process().running()) << "the hub died:\n" << hub_.log();
  auto health = http(hub_.port(), "GET", "/healthz");
  EXPECT_EQ(health.status, 200) << health.body;
  EXPECT_TRUE(wait_online(hub_, name_, std::chrono::seconds(10))) << "the live terminal's agent went offline";
  ASSERT_FALSE(id_.empty());
  Viewer v;
  ASSERT_TRUE(v.attach(hub_, id_)) << "cannot attach to the live terminal";
  ASSERT_TRUE(v.wait_prompt()) << "the live terminal's shell printed nothing";
  // The marker is computed by the shell, so only its output (not the typed line's echo) holds it.
  int n = ++round_ * 1000;
  std::string want = "ALIVE" + std::to_string(n + 1);
  v.type("echo ALIVE$((" + std::to_string(n) + "+1))\n");
  EXPECT_TRUE(v.until([&](const Viewer& x) { return x.saw(want); }, std::chrono::seconds(15)))
      << "the live terminal did not echo " << want << "; output: " << v.output;
  v.ws.close();
}

int64_t audit_rows(const HubFixture& hub) {
  int64_t n = 0, since = 0;
  for (int page = 0; page < 10000; ++page) {
    auto r = hub.api("GET", "/api/v1/audit?limit=1000&since_id=" + std::to_string(since));
    auto j = json::parse(r.body, nullptr, false);
    if (r.status != 200 || !j.is_object()) return -1;
    auto entries = j["entries"];
    if (entries.empty()) return n;
    n += int64_t(entries.size());
    since = j["next_since_id"].get<int64_t>();
  }
  return n;
}

}  // namespace rx::test
