#include "bench/load_links.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "protocol/codec.h"
#include "protocol/limits.h"
#include "tests/support/ws_client.h"

namespace rx::bench {
namespace {

constexpr uint8_t kContinuation = 0x0, kBinary = 0x2, kClose = 0x8, kPing = 0x9, kPong = 0xA;

std::vector<uint8_t> hello_bytes(const std::string& name) {
  protocol::Hello h;
  h.proto_min = protocol::kProtocolVersionMin;
  h.proto_max = protocol::kProtocolVersionMax;
  h.agent_version = "agents-bench";
  h.capabilities = {"pty", "exec"};
  h.host.hostname = name;
  h.host.os = "Bench OS";
  h.host.kernel = "6.1.0";
  h.host.arch = "x86_64";
  h.host.cpus = 2;
  h.host.memory_total = 8ull << 30;
  auto bytes = protocol::encode(h);
  if (!bytes) throw std::runtime_error("HELLO does not encode");
  return *bytes;
}

// What an idle machine reports: a little CPU, the same memory each time (values do not matter to
// the hub's cost, sizes do: these are the real agent's field sizes without GPUs).
std::vector<uint8_t> stats_bytes() {
  protocol::Stats s;
  s.cpu_permille = 12;
  s.memory_used = 3ull << 30;
  s.memory_total = 8ull << 30;
  auto bytes = protocol::encode(s);
  if (!bytes) throw std::runtime_error("STATS does not encode");
  return *bytes;
}

std::vector<uint8_t> close_payload(uint16_t code, const std::string& reason) {
  // Built by size and copy: GCC 12 warns wrongly on insert() after a two-byte vector at -O2.
  std::vector<uint8_t> p(2 + reason.size());
  p[0] = uint8_t(code >> 8);
  p[1] = uint8_t(code);
  std::copy(reason.begin(), reason.end(), p.begin() + 2);
  return p;
}

}  // namespace

void Fd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

LinkSwarm::LinkSwarm(SwarmOptions options)
    : options_(std::move(options)), epoll_(::epoll_create1(EPOLL_CLOEXEC)), stats_(stats_bytes()) {
  if (!epoll_) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
  links_.resize(size_t(options_.agents));
  for (size_t i = 0; i < links_.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "sim-%05zu", i);
    links_[i].name = name;
  }
}

int LinkSwarm::up() const {
  return int(std::count_if(links_.begin(), links_.end(), [](const Link& l) { return l.state == State::kIdle; }));
}

double LinkSwarm::uniform() {
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  return double(rng_ >> 11) / double(1ull << 53);
}

Clock::duration LinkSwarm::ping_wait() {
  return std::chrono::duration_cast<Clock::duration>(options_.ping_after * (1 - options_.ping_jitter * uniform()));
}

void LinkSwarm::start(size_t i, const std::string& token) {
  Link& l = links_[i];
  l.in.clear();
  l.out.clear();
  l.started = Clock::now();
  l.fd = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  ++handshakes_;
  l.state = State::kConnecting;
  if (!l.fd) return fail(i, std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(l.fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(options_.port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(l.fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 && errno != EINPROGRESS)
    return fail(i, std::string("connect: ") + std::strerror(errno));
  // Edge-triggered: one registration for the link's life, no EPOLL_CTL_MOD per write.
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = i;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, l.fd.get(), &ev) != 0)
    return fail(i, std::string("epoll_ctl: ") + std::strerror(errno));
  std::string req = "GET /api/v1/agent/connect HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(options_.port) +
                    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: rexec.agent.v1\r\n"
                    "Authorization: Bearer " + token + "\r\nX-Rexec-Agent-Name: " + l.name + "\r\n\r\n";
  l.out.assign(req.begin(), req.end());  // sent once the connect completes (EPOLLOUT)
}

void LinkSwarm::fail(size_t i, const std::string& why) {
  Link& l = links_[i];
  bool handshaking = l.state == State::kConnecting || l.state == State::kUpgrading || l.state == State::kHello;
  if (handshaking) {
    --handshakes_;
    if (report_) {
      ++report_->failed;
      ++report_->reasons[why];
    }
  } else if (l.state == State::kIdle) {
    ++dropped_;
    ++drop_reasons_[why];
  }
  l.fd.reset();  // also takes it out of the epoll set
  l.state = State::kDown;
  l.in.clear();
  l.out.clear();
}

void LinkSwarm::queue(Link& l, uint8_t opcode, const std::vector<uint8_t>& payload) {
  auto f = test::client_frame(opcode, payload);
  l.out.insert(l.out.end(), f.begin(), f.end());
}

void LinkSwarm::flush(size_t i) {
  Link& l = links_[i];
  size_t off = 0;
  while (off < l.out.size()) {
    ssize_t w = ::send(l.fd.get(), l.out.data() + off, l.out.size() - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;  // EPOLLOUT comes back
    if (w < 0) return fail(i, std::string("send: ") + std::strerror(errno));
    off += size_t(w);
    traffic_.out += uint64_t(w);
  }
  l.out.erase(l.out.begin(), l.out.begin() + long(off));
}

void LinkSwarm::on_event(size_t i, uint32_t events) {
  Link& l = links_[i];
  if (!l.fd) return;  // closed earlier in this batch
  if (l.state == State::kConnecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(l.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return fail(i, std::string("connect: ") + std::strerror(err));
    l.state = State::kUpgrading;
  }
  if (events & EPOLLOUT) flush(i);
  if (!l.fd) return;
  uint8_t buf[65536];
  bool eof = false;
  for (;;) {
    ssize_t n = ::recv(l.fd.get(), buf, sizeof(buf), 0);
    if (n > 0) {
      traffic_.in += uint64_t(n);
      l.in.insert(l.in.end(), buf, buf + n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    eof = true;  // 0 or an error such as ECONNRESET: the hub is gone
    break;
  }
  if (!l.in.empty()) on_bytes(i);
  if (eof && l.fd) fail(i, l.state == State::kClosing ? "closed" : "hub hung up");
  if (l.fd && !l.out.empty()) flush(i);
}

bool LinkSwarm::on_head(Link& l) {
  const char* kEnd = "\r\n\r\n";
  auto end = std::search(l.in.begin(), l.in.end(), kEnd, kEnd + 4);
  if (end == l.in.end()) return false;
  std::string head(l.in.begin(), end + 4);
  l.in.erase(l.in.begin(), end + 4);
  auto status = test::parse_head(head).status;
  if (status != 101) throw std::runtime_error("http " + std::to_string(status));
  l.state = State::kHello;
  queue(l, kBinary, hello_bytes(l.name));
  return true;
}

void LinkSwarm::on_bytes(size_t i) {
  Link& l = links_[i];
  if (l.state == State::kUpgrading) {
    try {
      if (!on_head(l)) return;
    } catch (const std::exception& e) {
      return fail(i, e.what());
    }
  }
  // Whole server frames (unmasked; the hub does not fragment what it sends an agent, but a
  // continuation is taken as more of the message all the same).
  size_t off = 0;
  std::vector<uint8_t> message;
  while (l.fd && l.in.size() - off >= 2) {
    const uint8_t* p = l.in.data() + off;
    size_t avail = l.in.size() - off;
    uint8_t opcode = p[0] & 0x0f;
    bool fin = p[0] & 0x80, masked = p[1] & 0x80;
    uint64_t len = p[1] & 0x7f;
    size_t head = 2;
    if (len == 126) {
      if (avail < 4) break;
      len = (uint64_t(p[2]) << 8) | p[3];
      head = 4;
    } else if (len == 127) {
      if (avail < 10) break;
      len = 0;
      for (int k = 0; k < 8; ++k) len = (len << 8) | p[2 + k];
      head = 10;
    }
    if (len > protocol::kMaxFrameBytes + 16) return fail(i, "frame over the cap");
    size_t mask_at = head;
    if (masked) head += 4;
    if (avail < head + len) break;
    std::vector<uint8_t> payload(p + head, p + head + len);
    if (masked)
      for (size_t k = 0; k < payload.size(); ++k) payload[k] ^= p[mask_at + (k & 3)];
    off += head + size_t(len);
    ++traffic_.frames_in;
    if (opcode == kBinary || opcode == kContinuation) {
      message.insert(message.end(), payload.begin(), payload.end());
      if (!fin) continue;
      on_message(i, kBinary, std::move(message));
      message.clear();
    } else {
      on_message(i, opcode, std::move(payload));
    }
  }
  if (l.fd) l.in.erase(l.in.begin(), l.in.begin() + long(off));
}

void LinkSwarm::on_message(size_t i, uint8_t opcode, std::vector<uint8_t> payload) {
  Link& l = links_[i];
  auto now = Clock::now();
  if (l.state == State::kIdle) l.next_ping = now + ping_wait();  // any traffic from the hub proves the link
  switch (opcode) {
    case kPing:
      ++traffic_.pings_in;
      ++traffic_.pongs_out;
      return queue(l, kPong, payload);
    case kPong:
      return;
    case kClose: {
      uint16_t code = payload.size() >= 2 ? uint16_t(payload[0] << 8 | payload[1]) : 1005;
      if (l.state == State::kClosing) return fail(i, "closed");
      queue(l, kClose, close_payload(code, ""));
      flush(i);
      return fail(i, "hub closed " + std::to_string(code));
    }
    default:
      break;
  }
  if (l.state != State::kHello) return;  // nothing else comes to an idle agent; not counted further
  auto f = protocol::decode(payload);
  if (!f) return fail(i, "undecodable frame before WELCOME");
  auto* w = std::get_if<protocol::Welcome>(&*f);
  if (!w) return fail(i, "frame before WELCOME");
  if (w->credential) l.credential = *w->credential;
  l.state = State::kIdle;
  --handshakes_;
  if (report_) {
    ++report_->welcomed;
    report_->ms.push_back(std::chrono::duration<double, std::milli>(now - l.started).count());
  }
  l.next_ping = now + ping_wait();
  // The real agent's STATS timer runs from its own start: any phase, so spread them.
  l.next_stats = now + std::chrono::duration_cast<Clock::duration>(options_.stats_every * uniform());
}

void LinkSwarm::timers(Clock::time_point now) {
  if (now - last_scan_ < std::chrono::milliseconds(50)) return;
  last_scan_ = now;
  for (size_t i = 0; i < links_.size(); ++i) {
    Link& l = links_[i];
    if (l.state == State::kIdle) {
      bool wrote = false;
      if (now >= l.next_ping) {
        queue(l, kPing, {});
        ++traffic_.pings_out;
        l.next_ping = now + ping_wait();
        wrote = true;
      }
      if (options_.stats_every.count() > 0 && now >= l.next_stats) {
        queue(l, kBinary, stats_);
        ++traffic_.stats_out;
        l.next_stats += options_.stats_every;
        wrote = true;
      }
      if (wrote) flush(i);
    } else if (l.state != State::kDown && now - l.started > options_.handshake_timeout) {
      fail(i, l.state == State::kClosing ? "closed" : "handshake timeout");
    }
  }
}

void LinkSwarm::poll_once(int timeout_ms) {
  epoll_event events[512];
  int n = ::epoll_wait(epoll_.get(), events, 512, timeout_ms);
  for (int k = 0; k < n; ++k) on_event(size_t(events[k].data.u64), events[k].events);
  timers(Clock::now());
}

ConnectReport LinkSwarm::connect_all(const std::string& enroll_token, Clock::time_point deadline) {
  ConnectReport report;
  report_ = &report;
  std::deque<size_t> pending;
  for (size_t i = 0; i < links_.size(); ++i) {
    if (links_[i].state != State::kDown) continue;
    if (links_[i].credential.empty() && enroll_token.empty()) {
      ++report.failed;  // it never enrolled: nothing to come back with
      ++report.reasons["no credential"];
      continue;
    }
    pending.push_back(i);
  }
  report.attempted = int(pending.size());
  auto t0 = Clock::now();
  while ((!pending.empty() || handshakes_ > 0) && Clock::now() < deadline) {
    while (!pending.empty() && handshakes_ < options_.in_flight) {
      size_t i = pending.front();
      pending.pop_front();
      start(i, links_[i].credential.empty() ? enroll_token : links_[i].credential);
    }
    poll_once(10);
  }
  report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  for (size_t i = 0; i < links_.size(); ++i)
    if (links_[i].state != State::kIdle && links_[i].state != State::kDown) fail(i, "deadline");
  report.failed += int(pending.size());
  if (!pending.empty()) report.reasons["deadline, not started"] += int(pending.size());
  report_ = nullptr;
  return report;
}

void LinkSwarm::idle_for(Clock::duration d) {
  auto end = Clock::now() + d;
  while (Clock::now() < end) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
    poll_once(int(std::clamp<long long>(left, 0, 50)));
  }
}

void LinkSwarm::close_all(Clock::duration timeout) {
  for (size_t i = 0; i < links_.size(); ++i) {
    Link& l = links_[i];
    if (l.state == State::kDown) continue;
    if (l.state != State::kIdle) {
      fail(i, "closed");
      continue;
    }
    queue(l, kClose, close_payload(1001, "bench done"));
    l.state = State::kClosing;
    l.started = Clock::now();  // the handshake timeout now bounds the closing handshake
    flush(i);
  }
  auto end = Clock::now() + timeout;
  auto closing = [&] {
    return std::any_of(links_.begin(), links_.end(), [](const Link& l) { return l.state == State::kClosing; });
  };
  while (Clock::now() < end && closing()) poll_once(50);
  for (size_t i = 0; i < links_.size(); ++i)
    if (links_[i].state == State::kClosing) fail(i, "closed");
}

}  // namespace rx::bench
