#include "tests/support/ws_client.h"

#include <cerrno>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <utility>

namespace rx::test {
namespace {

int dial(int port, const std::string& source_ip = "", int rcvbuf = 0) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));  // before connect: sets the window
  if (!source_ip.empty()) {
    sockaddr_in src{};
    src.sin_family = AF_INET;
    ::inet_pton(AF_INET, source_ip.c_str(), &src.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) {
      ::close(fd);
      return -1;
    }
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

bool write_all(int fd, const void* p, size_t n) {
  const auto* c = static_cast<const uint8_t*>(p);
  while (n > 0) {
    ssize_t w = ::send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w;
    n -= size_t(w);
  }
  return true;
}

// Waits up to timeout_ms for `fd` to be readable. A signal (SIGCHLD from a child process a test
// killed, say) interrupts poll(): that is not a timeout, so the wait goes on for what is left.
bool wait_readable(int fd, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, int(std::max<int64_t>(0, left.count())));
    if (r > 0) return true;
    if (r == 0 || errno != EINTR) return false;
  }
}

// Reads an HTTP head (up to the blank line); anything after it goes to `rest`.
bool read_head(int fd, std::string& head, std::vector<uint8_t>& rest, int timeout_ms) {
  char buf[4096];
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (!wait_readable(fd, timeout_ms)) return false;
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    head.append(buf, size_t(n));
  }
  auto end = head.find("\r\n\r\n") + 4;
  rest.assign(head.begin() + long(end), head.end());
  head.resize(end);
  return true;
}


// A chunked body (RFC 9112 7.1) without its framing; what is not well-formed is kept as it came,
// so a test sees it.
std::string dechunk(const std::string& raw) {
  std::string out;
  size_t pos = 0;
  for (;;) {
    size_t eol = raw.find("\r\n", pos);
    if (eol == std::string::npos) return raw;
    size_t size = 0;
    try {
      size = std::stoul(raw.substr(pos, eol - pos), nullptr, 16);
    } catch (...) {
      return raw;
    }
    if (size == 0) return out;
    if (eol + 2 + size + 2 > raw.size()) return raw;
    out.append(raw, eol + 2, size);
    pos = eol + 2 + size + 2;
  }
}

void read_body(int fd, HttpResult& r, std::vector<uint8_t>& rest) {
  r.body.assign(rest.begin(), rest.end());
  size_t want = r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : SIZE_MAX;
  bool chunked = r.headers.count("transfer-encoding") && r.headers["transfer-encoding"] == "chunked";
  char buf[16384];
  while (r.body.size() < want && !(chunked && r.body.ends_with("\r\n0\r\n\r\n")) && r.body != "0\r\n\r\n") {
    if (!wait_readable(fd, 10000)) break;
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    r.body.append(buf, size_t(n));
  }
  if (chunked) r.body = dechunk(r.body);
}

}  // namespace

HttpResult parse_head(const std::string& head) {
  HttpResult r;
  auto sp = head.find(' ');
  r.status = sp == std::string::npos ? 0 : std::atoi(head.c_str() + sp + 1);
  size_t pos = head.find("\r\n") + 2;
  while (pos < head.size()) {
    auto eol = head.find("\r\n", pos);
    if (eol == std::string::npos || eol == pos) break;
    auto line = head.substr(pos, eol - pos);
    auto colon = line.find(':');
    if (colon != std::string::npos) {
      std::string k = line.substr(0, colon);
      for (auto& c : k) c = char(std::tolower(static_cast<unsigned char>(c)));
      std::string v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      r.headers[k] = v;
    }
    pos = eol + 2;
  }
  return r;
}

HttpResult http(int port, const std::string& method, const std::string& path, const std::string& token,
                const std::string& body, const std::map<std::string, std::string>& headers,
                std::chrono::milliseconds timeout) {
  HttpResult r;
  int fd = dial(port);
  if (fd < 0) return r;
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\nConnection: close\r\n";
  if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT")
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  std::string head;
  std::vector<uint8_t> rest;
  if (write_all(fd, req.data(), req.size()) && read_head(fd, head, rest, int(timeout.count()))) {
    r = parse_head(head);
    read_body(fd, r, rest);
  }
  ::close(fd);
  return r;
}

WsClient::~WsClient() {
  if (fd_ >= 0) ::close(fd_);
}

WsClient::WsClient(WsClient&& o) noexcept
    : fd_(o.fd_),
      buffered_(std::move(o.buffered_)),
      partial_(std::move(o.partial_)),
      in_message_(o.in_message_),
      close_code_(o.close_code_),
      close_reason_(std::move(o.close_reason_)) {
  o.fd_ = -1;
}

bool WsClient::connect(int port, const std::string& path, const std::string& protocol,
                       const std::map<std::string, std::string>& headers, HttpResult* refusal) {
  fd_ = dial(port, source_ip, rcvbuf);
  if (fd_ < 0) return false;
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
  if (!protocol.empty()) req += "Sec-WebSocket-Protocol: " + protocol + "\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  req += "\r\n";
  std::string head;
  if (!write_all(fd_, req.data(), req.size()) || !read_head(fd_, head, buffered_, 10000)) {
    cut();
    return false;
  }
  auto r = parse_head(head);
  if (r.status != 101) {
    if (refusal) {
      *refusal = r;
      read_body(fd_, *refusal, buffered_);
    }
    cut();
    return false;
  }
  return true;
}

bool WsClient::send_raw(const std::vector<uint8_t>& bytes) { return fd_ >= 0 && write_all(fd_, bytes.data(), bytes.size()); }

std::vector<uint8_t> client_frame(uint8_t opcode, const std::vector<uint8_t>& payload, bool fin) {
  std::vector<uint8_t> f;
  f.reserve(payload.size() + 14);
  f.push_back(uint8_t((fin ? 0x80 : 0) | opcode));
  size_t n = payload.size();
  if (n < 126) {
    f.push_back(uint8_t(0x80 | n));
  } else if (n < 65536) {
    f.push_back(0x80 | 126);
    f.push_back(uint8_t(n >> 8));
    f.push_back(uint8_t(n));
  } else {
    f.push_back(0x80 | 127);
    for (int s = 56; s >= 0; s -= 8) f.push_back(uint8_t(uint64_t(n) >> s));
  }
  static thread_local std::mt19937 rng(std::random_device{}());
  uint8_t mask[4];
  for (auto& m : mask) m = uint8_t(rng());
  f.insert(f.end(), mask, mask + 4);
  size_t base = f.size();
  f.resize(base + n);
  for (size_t i = 0; i < n; ++i) f[base + i] = payload[i] ^ mask[i & 3];
  return f;
}

bool WsClient::send_frame(uint8_t opcode, const std::vector<uint8_t>& payload, bool fin) {
  if (fd_ < 0) return false;
  auto f = client_frame(opcode, payload, fin);
  return write_all(fd_, f.data(), f.size());
}

WsClient::TrySend WsClient::try_send_frame(uint8_t opcode, const std::vector<uint8_t>& payload) {
  return try_send_raw(client_frame(opcode, payload, true));
}

WsClient::TrySend WsClient::try_send_raw(const std::vector<uint8_t>& f) {
  if (fd_ < 0) return TrySend::kGone;
  int queued = 0, sndbuf = 0;
  socklen_t len = sizeof(sndbuf);
  ::getsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len);
  // Room for all of it, or nothing is written: a half-written frame would garble the stream.
  if (::ioctl(fd_, TIOCOUTQ, &queued) == 0 && sndbuf - queued < int(f.size()) * 2) return TrySend::kFull;
  ssize_t w = ::send(fd_, f.data(), f.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (w == ssize_t(f.size())) return TrySend::kSent;
  if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return TrySend::kFull;
  if (w < 0) {
    cut();
    return TrySend::kGone;
  }
  // A partial write (rare: the check above leaves room): finish it within a few seconds, else give
  // the connection up (its stream would be garbled).
  size_t done = size_t(w);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (done < f.size() && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd_, POLLOUT, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    ssize_t more = ::send(fd_, f.data() + done, f.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (more > 0) done += size_t(more);
    else if (more < 0 && errno != EAGAIN && errno != EINTR) break;
  }
  if (done < f.size()) {
    cut();
    return TrySend::kGone;
  }
  return TrySend::kSent;
}

bool WsClient::fill(size_t n, std::chrono::steady_clock::time_point deadline) {
  while (buffered_.size() < n) {
    if (fd_ < 0) return false;
    // Round up: a deadline less than a millisecond away still gets one look at the socket.
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (!wait_readable(fd_, int(std::max<int64_t>(0, left.count())))) return false;
    uint8_t chunk[65536];
    ssize_t r = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (r <= 0) {
      cut();  // the peer is gone (EOF or reset)
      return false;
    }
    buffered_.insert(buffered_.end(), chunk, chunk + r);
  }
  return true;
}

std::optional<WsClient::Message> WsClient::receive(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    // A frame is taken off the buffer only once it is whole: a timeout mid-frame loses nothing.
    if (!fill(2, deadline)) return std::nullopt;
    uint8_t opcode = buffered_[0] & 0x0f;
    bool fin = buffered_[0] & 0x80;
    uint64_t len = buffered_[1] & 0x7f;
    size_t head = len == 126 ? 4 : len == 127 ? 10 : 2;
    if (!fill(head, deadline)) return std::nullopt;
    if (len >= 126) {
      len = 0;
      for (size_t i = 2; i < head; ++i) len = (len << 8) | buffered_[i];
    }
    if (!fill(head + len, deadline)) return std::nullopt;
    std::vector<uint8_t> payload(buffered_.begin() + long(head), buffered_.begin() + long(head + len));
    buffered_.erase(buffered_.begin(), buffered_.begin() + long(head + len));
    if (opcode == 0x9) {  // ping: answer, keep reading
      send_frame(0xA, payload, true);
      continue;
    }
    if (opcode == 0xA) continue;
    if (opcode == 0x8) {
      if (payload.size() >= 2) {
        close_code_ = uint16_t((payload[0] << 8) | payload[1]);
        close_reason_.assign(payload.begin() + 2, payload.end());
      } else {
        close_code_ = 1005;
      }
      send_frame(0x8, std::vector<uint8_t>(payload.begin(), payload.begin() + std::min<size_t>(2, payload.size())), true);
      if (!linger_after_close) cut();
      return std::nullopt;
    }
    if (!in_message_) {
      partial_.binary = opcode == 0x2;
      in_message_ = true;
    }
    partial_.data.insert(partial_.data.end(), payload.begin(), payload.end());
    if (fin) {
      in_message_ = false;
      return std::exchange(partial_, Message{});
    }
  }
}

std::vector<uint8_t> WsClient::read_rest(std::chrono::milliseconds timeout) {
  std::vector<uint8_t> out = std::move(buffered_);
  buffered_.clear();
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (fd_ >= 0 && std::chrono::steady_clock::now() < deadline) {
    size_t before = buffered_.size();
    if (!fill(before + 1, deadline)) break;
    out.insert(out.end(), buffered_.begin() + long(before), buffered_.end());
    buffered_.clear();
  }
  return out;
}

void WsClient::close() {
  if (fd_ < 0) return;
  send_frame(0x8, {0x03, 0xe8}, true);
  cut();
}

void WsClient::cut() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace rx::test
