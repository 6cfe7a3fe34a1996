// LinkSwarm: many simulated agents in one process, for load benchmarks. Each link is a
// non-blocking loopback socket on one epoll set: HTTP upgrade to /api/v1/agent/connect with a
// bearer token, HELLO, WELCOME (its credential is kept for the next connect), then idle the way
// the real agent idles: a ping after ~20 s without traffic from the hub, STATS every few seconds,
// a pong for every ping of the hub. At most `in_flight` handshakes run at once, so the swarm
// measures the hub's connect rate rather than a SYN flood. One thread, no timers per link: a
// scan every 50 ms is enough for events that come every few seconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace rx::bench {

using Clock = std::chrono::steady_clock;

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.release();
    }
    return *this;
  }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset();

 private:
  int fd_ = -1;
};

struct SwarmOptions {
  int port = 0;                                    // the hub, on 127.0.0.1 (never anything else)
  int agents = 0;                                  // links, named sim-00000...
  int in_flight = 128;                             // handshakes at once
  std::chrono::milliseconds ping_after{20'000};    // silence from the hub before a ping (SPEC 1.8)
  double ping_jitter = 0.1;                        // each wait is ping_after * (1 - jitter * U[0,1))
  std::chrono::milliseconds stats_every{5'000};    // STATS like the real agent; 0: none
  std::chrono::milliseconds handshake_timeout{30'000};
};

// What one round of connects did.
struct ConnectReport {
  int attempted = 0, welcomed = 0, failed = 0;
  double seconds = 0;                 // first connect() to the last WELCOME (or failure)
  std::vector<double> ms;             // per welcomed link: connect() to WELCOME
  std::map<std::string, int> reasons;  // why links failed, counted
};

// Bytes on the sockets (WebSocket frames and HTTP heads, not TCP/IP headers), both ways.
struct Traffic {
  uint64_t in = 0, out = 0;
  uint64_t pings_out = 0, pongs_out = 0, pings_in = 0, stats_out = 0, frames_in = 0;
};

class LinkSwarm {
 public:
  explicit LinkSwarm(SwarmOptions options);
  ~LinkSwarm() = default;
  LinkSwarm(const LinkSwarm&) = delete;
  LinkSwarm& operator=(const LinkSwarm&) = delete;

  // Connects every link that is down: with its credential when it has one, else with
  // `enroll_token`. Returns when each has its WELCOME or failed, or at `deadline`.
  ConnectReport connect_all(const std::string& enroll_token, Clock::time_point deadline);
  // Keeps the up links idle (pings, pongs, STATS) for `d`.
  void idle_for(Clock::duration d);
  // A close frame (1001, as an agent that stops) on every link, then waits for the hub to hang
  // up, at most `timeout`; what is left is cut.
  void close_all(Clock::duration timeout);

  const Traffic& traffic() const { return traffic_; }
  int up() const;               // links past WELCOME and still open
  int dropped() const { return dropped_; }  // up links the hub closed or lost, since the start
  std::map<std::string, int> drop_reasons() const { return drop_reasons_; }

 private:
  enum class State { kDown, kConnecting, kUpgrading, kHello, kIdle, kClosing };
  struct Link {
    Fd fd;
    State state = State::kDown;
    std::string name;
    std::string credential;
    std::vector<uint8_t> in, out;
    Clock::time_point started, next_ping, next_stats;
  };

  void start(size_t i, const std::string& token);
  void on_event(size_t i, uint32_t events);
  void on_bytes(size_t i);
  bool on_head(Link& l);
  void on_message(size_t i, uint8_t opcode, std::vector<uint8_t> payload);
  void queue(Link& l, uint8_t opcode, const std::vector<uint8_t>& payload);
  void flush(size_t i);
  void fail(size_t i, const std::string& why);  // a link down, for `why`
  void timers(Clock::time_point now);
  void poll_once(int timeout_ms);
  double uniform();  // U[0,1)
  Clock::duration ping_wait();

  SwarmOptions options_;
  Fd epoll_;
  std::vector<Link> links_;
  std::vector<uint8_t> stats_;  // the one STATS frame every link sends, encoded once
  Traffic traffic_;
  uint64_t rng_ = 0x9e3779b97f4a7c15ull;  // xorshift: jitter needs no quality
  Clock::time_point last_scan_{};
  // The connect round under way.
  ConnectReport* report_ = nullptr;
  int handshakes_ = 0;
  int dropped_ = 0;
  std::map<std::string, int> drop_reasons_;
};

}  // namespace rx::bench
