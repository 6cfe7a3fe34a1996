// relay-bench: Rexec (static agent -> hub -> viewer) side by side with ttyd in one run, on
// loopback, with the same C++ raw-socket viewer client for both so the client is never the
// bottleneck. Reports throughput of one 100 MB stream (and checks every byte arrived), keystroke
// echo latency p50/p99 (a `cat` in canonical mode: the tty echoes at once, so this measures the
// relay path), idle memory and binary size, each as a ratio to ttyd. Each round also streams the
// same file through a PTY this process reads itself: the raw PTY ceiling of the moment, which
// moves a lot on a shared 2-CPU machine (where the scheduler puts the writer and the reader
// matters more than anything a relay does), and through a bare one-hop relay (a process that
// only copies PTY bytes to a TCP socket): about the most any relay could reach. Not a test: no
// assertions.
//   relay-bench --ttyd PATH [--agent PATH] [--agent-b PATH] [--mb 100] [--echoes 1200] [--rounds 5]
//               [--record on|off]
// --record: the hub's `record` setting (default on, as the hub's): what recording every
// terminal costs is the difference between a run with it and one without.
// --agent-b adds a second agent build on the same hub, streamed in the same rounds: an A/B of
// an agent change inside one run, where separate runs differ more than most changes do.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "protocol/viewer.h"
#include "tests/support/hub_fixture.h"

namespace {

using namespace rx::test;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
namespace viewer = rx::protocol::viewer;

// CPU time of the whole machine, summed over CPUs: every task (the shell's `cat`, the kernel's
// tty workers, relay, viewer) and interrupts. idle includes iowait; steal (the hypervisor's)
// counts as neither.
struct MachineCpu {
  double busy = 0, idle = 0;
};

MachineCpu machine_cpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq;
  double tick = double(sysconf(_SC_CLK_TCK));
  return {double(user + nice + system + irq + softirq) / tick, double(idle + iowait) / tick};
}

// A terminal session as the benchmark needs it, for either system.
class Session {
 public:
  virtual ~Session() = default;
  virtual void send(const std::string& input) = 0;
  // Next chunk of terminal output (empty on timeout).
  virtual std::string receive(std::chrono::milliseconds timeout) = 0;

  // Reads until `marker` appears; returns bytes received (marker included) or -1 on timeout.
  long long read_until(const std::string& marker, std::chrono::seconds timeout) {
    auto deadline = Clock::now() + timeout;
    std::string tail;
    long long total = 0;
    while (Clock::now() < deadline) {
      std::string chunk = receive(2000ms);
      total += static_cast<long long>(chunk.size());
      tail += chunk;
      if (tail.find(marker) != std::string::npos) return total;
      if (tail.size() > 4096) tail.erase(0, tail.size() - 256);
    }
    return -1;
  }
};

class RexecSession : public Session {
 public:
  RexecSession(int port, const std::string& terminal, const std::string& token) {
    ws_.connect(port, "/api/v1/terminals/" + terminal + "/attach", "rexec.term.v1", {{"Authorization", "Bearer " + token}});
  }
  void send(const std::string& in) override {
    ws_.send_binary(viewer::encode_input(std::span(reinterpret_cast<const uint8_t*>(in.data()), in.size())));
  }
  std::string receive(std::chrono::milliseconds timeout) override {
    for (;;) {
      auto m = ws_.receive(timeout);
      if (!m) return "";
      auto d = viewer::decode_server(m->data);
      if (!d) return "";
      if (auto* o = std::get_if<viewer::Output>(&*d)) return std::string(o->bytes.begin(), o->bytes.end());
    }
  }

 private:
  WsClient ws_;
};

class TtydSession : public Session {
 public:
  explicit TtydSession(int port) {
    ws_.connect(port, "/ws", "tty", {});
    std::string init = R"({"AuthToken":"","columns":80,"rows":24})";
    ws_.send_binary({init.begin(), init.end()});
  }
  void send(const std::string& in) override {
    // (Built by size and copy: GCC 12 warns wrongly on insert() into a one-byte vector at -O2.)
    std::vector<uint8_t> m(in.size() + 1, '0');
    std::copy(in.begin(), in.end(), m.begin() + 1);
    ws_.send_binary(m);
  }
  std::string receive(std::chrono::milliseconds timeout) override {
    for (;;) {
      auto m = ws_.receive(timeout);
      if (!m || m->data.empty()) return "";
      if (m->data[0] == '0') return std::string(m->data.begin() + 1, m->data.end());
    }
  }

 private:
  WsClient ws_;
};

// Starts /bin/sh on a new PTY; returns its pid and the master (non-blocking). The environment is
// built before fork: after fork in a threaded process the child may not allocate.
pid_t spawn_shell(const std::string& home, int& master) {
  std::string h = "HOME=" + home;
  const char* env[] = {"PATH=/usr/bin:/bin", h.c_str(), "TERM=xterm-256color", nullptr};
  winsize ws{24, 80, 0, 0};
  pid_t pid = forkpty(&master, nullptr, nullptr, &ws);
  if (pid == 0) {
    ::execle("/bin/sh", "sh", static_cast<char*>(nullptr), env);
    ::_exit(127);
  }
  ::fcntl(master, F_SETFL, O_NONBLOCK);
  return pid;
}

// Next chunk readable from fd within the timeout (empty on timeout or end).
std::string read_chunk(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, int(timeout.count())) <= 0) return "";
  char buf[65536];
  ssize_t n = ::read(fd, buf, sizeof(buf));
  return n > 0 ? std::string(buf, size_t(n)) : "";
}

// A session read and written through one fd, with a child process that goes with it.
class FdSession : public Session {
 public:
  ~FdSession() override {
    ::close(fd_);
    ::kill(child_, SIGKILL);
    ::waitpid(child_, nullptr, 0);
  }
  void send(const std::string& in) override { (void)!::write(fd_, in.data(), in.size()); }
  std::string receive(std::chrono::milliseconds timeout) override { return read_chunk(fd_, timeout); }

 protected:
  int fd_ = -1;
  pid_t child_ = -1;
};

// The ceiling: the same shell on a PTY this process reads itself, no relay at all. Throughput
// here is what the kernel's PTY path allows on this machine at this moment.
class LocalSession : public FdSession {
 public:
  explicit LocalSession(const std::string& home) { child_ = spawn_shell(home, fd_); }
};

// The least any one-hop relay does: a child process reads the PTY and writes the bytes as they
// are to a loopback TCP socket, which this process reads (no framing, no protocol, no flow
// control). What ttyd, or any relay, could at best approach here.
class BareRelaySession : public FdSession {
 public:
  explicit BareRelaySession(const std::string& home) {
    int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    ::bind(listener, reinterpret_cast<sockaddr*>(&addr), len);
    ::listen(listener, 1);
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
    child_ = ::fork();
    if (child_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int sock = ::socket(AF_INET, SOCK_STREAM, 0);
      if (::connect(sock, reinterpret_cast<sockaddr*>(&addr), len) != 0) ::_exit(1);
      int master = -1;
      pid_t shell = spawn_shell(home, master);
      relay(master, sock);
      ::kill(shell, SIGKILL);
      ::_exit(0);
    }
    fd_ = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    ::close(listener);
  }

 private:
  // PTY -> socket and socket -> PTY until either side ends; one read per readable event.
  static void relay(int master, int sock) {
    char buf[65536];
    for (;;) {
      pollfd p[2] = {{master, POLLIN, 0}, {sock, POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) continue;
      if (p[0].revents) {
        ssize_t n = ::read(master, buf, sizeof(buf));
        if (n < 0 && errno == EAGAIN) n = 0;
        else if (n <= 0) return;  // EIO: the shell is gone
        for (ssize_t off = 0; off < n;) {
          ssize_t w = ::write(sock, buf + off, size_t(n - off));
          if (w <= 0) return;
          off += w;
        }
      }
      if (p[1].revents) {
        ssize_t n = ::read(sock, buf, sizeof(buf));
        if (n <= 0 || ::write(master, buf, size_t(n)) != n) return;  // a few keystrokes: fits
      }
    }
  }
};

void drain(Session& s) {
  std::this_thread::sleep_for(300ms);
  while (!s.receive(200ms).empty()) {}
}

void prepare(Session& s) {
  s.send("stty -echo; echo READY''1\n");
  s.read_until("READY1", 20s);
  drain(s);
}

// One stream of the payload; returns MB/s, and the bytes delivered through `bytes`.
double throughput(Session& s, const std::string& file, long long expected, long long& bytes) {
  auto t0 = Clock::now();
  s.send("cat " + file + "; echo BENCH''DONE\n");  // the quotes keep the typed line from matching
  bytes = s.read_until("BENCHDONE", 120s);
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  drain(s);
  return double(expected) / 1e6 / secs;
}

// Keystroke echo latencies (us): `cat` in canonical mode echoes each key at once from the tty.
// Counts echoed keys rather than looking for one: a late or doubled echo then shows up as an
// error instead of making every later keystroke look instant.
void echo(Session& s, int n, std::vector<double>& lat, int& errors) {
  s.send("stty echo; cat\n");
  drain(s);
  int sent = 0, seen = 0;  // keystrokes and echoed 'a's on the current line
  for (int i = 0; i < n; ++i) {
    auto a = Clock::now();
    s.send("a");
    ++sent;
    while (seen < sent) {
      std::string c = s.receive(5000ms);
      if (c.empty()) break;
      seen += int(std::count(c.begin(), c.end(), 'a'));
    }
    if (seen != sent) {
      ++errors;  // lost, late or extra: this sample says nothing
      seen = sent;
    } else {
      lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - a).count());
    }
    if (i % 64 == 63) {
      s.send("\n");  // keep the line short (cat prints it back: drained)
      drain(s);
      sent = seen = 0;
    }
  }
  s.send("\n\x04");  // end cat
  drain(s);
  s.send("stty -echo\n");
  drain(s);
}

double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double percentile(std::vector<double> v, int p) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  return v[v.size() * size_t(p) / 100];
}

// One system's samples over the rounds.
struct Series {
  Series(const char* n, Session& s) : name(n), session(s) {}
  const char* name;
  Session& session;
  std::vector<double> tp, lat;  // MB/s per round; echo latencies in us
  long long bytes = 0;          // delivered in the last round
  double busy_s = 0, idle_s = 0;  // machine CPU over all streams
  int echo_errors = 0;
  bool complete = true;  // every byte in every round

  void stream(const std::string& file, long long expected, int round) {
    MachineCpu c0 = machine_cpu();
    tp.push_back(throughput(session, file, expected, bytes));
    MachineCpu c1 = machine_cpu();
    busy_s += c1.busy - c0.busy;
    idle_s += c1.idle - c0.idle;
    if (bytes >= expected) return;
    complete = false;
    std::fprintf(stderr, "%s round %d: stream incomplete (%lld of %lld bytes)\n", name, round + 1, bytes, expected);
  }
  void keys(int n) { echo(session, n, lat, echo_errors); }
  double mb_per_s() const { return median(tp); }
  double p(int pct) const { return percentile(lat, pct); }
  // Machine CPU seconds per 100 MB streamed, and the share of the CPUs left idle meanwhile.
  double busy_per_100mb(long long mb) const { return busy_s / double(tp.size()) * 100 / double(mb); }
  double idle_share() const { return idle_s / (busy_s + idle_s); }
};

// Starts an agent on the hub; null (after saying why) when it does not come online.
std::unique_ptr<Process> start_agent(HubFixture& hub, const TempDir& dir, const std::string& bin, const std::string& name) {
  auto agent = std::make_unique<Process>(
      std::vector<std::string>{bin, "--hub", "ws://127.0.0.1:" + std::to_string(hub.port()), "--enroll-token-file", "-",
                               "--credential-file", dir / ("credential-" + name), "--name", name, "--shell", "/bin/sh"},
      std::map<std::string, std::string>{{"PATH", "/usr/bin:/bin"}}, dir / (name + ".log"), hub.enroll() + "\n");
  bool online = wait_online(hub, name, 10s);
  if (online) return agent;
  std::fprintf(stderr, "agent %s did not come online:\n%s\n", name.c_str(), agent->log().c_str());
  return nullptr;
}

// A session on a new terminal of the agent; null (after saying why) when the hub refuses.
std::unique_ptr<RexecSession> open_terminal(HubFixture& hub, const std::string& agent) {
  std::string id = create_terminal(hub, agent);
  if (!id.empty()) return std::make_unique<RexecSession>(hub.port(), id, hub.admin_token());
  std::fprintf(stderr, "no terminal on agent %s\n", agent.c_str());
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  std::string ttyd, agent_bin = std::string(REXEC_SOURCE_DIR) + "/build/static-agent/agent/rexec-agent", agent_b;
  long long mb = 100;
  int echoes = 1200;
  int rounds = 5;
  std::string record = "on";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i];
    if (f == "--ttyd") ttyd = argv[i + 1];
    else if (f == "--agent") agent_bin = argv[i + 1];
    else if (f == "--agent-b") agent_b = argv[i + 1];
    else if (f == "--mb") mb = std::atoll(argv[i + 1]);
    else if (f == "--echoes") echoes = std::atoi(argv[i + 1]);
    else if (f == "--rounds") rounds = std::max(1, std::atoi(argv[i + 1]));
    else if (f == "--record") record = argv[i + 1];
  }
  if (ttyd.empty()) {
    std::fprintf(stderr, "usage: relay-bench --ttyd PATH [--agent PATH] [--agent-b PATH] [--mb N] [--echoes N] [--rounds N] "
                         "[--record on|off]\n");
    return 2;
  }
  TempDir dir("rexec-bench");
  // The payload: printable text in 76-column lines (like base64 output), made once for both.
  std::string file = dir / "payload.txt";
  long long lines = 0;
  {
    std::ofstream out(file);
    std::mt19937_64 rng(1);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string line(77, '\n');
    for (long long written = 0; written < mb * 1000 * 1000; written += 77, ++lines) {
      for (int i = 0; i < 76; ++i) line[size_t(i)] = alphabet[rng() & 63];
      out << line;
    }
  }
  struct stat st {};
  ::stat(file.c_str(), &st);
  long long expected = st.st_size + lines;  // the tty turns each \n into \r\n

  // --- Rexec ---
  auto flags = HubFixture::relaxed_limits();
  flags.insert(flags.end(), {"--record", record});
  HubFixture hub(flags);
  std::printf("hub: record = %s\n", record.c_str());
  auto agent = start_agent(hub, dir, agent_bin, "bench");
  if (!agent) return 1;
  std::this_thread::sleep_for(2s);
  long agent_idle_kib = rss_kib(agent->pid());
  long hub_idle_kib = rss_kib(hub.process().pid());
  auto rs = open_terminal(hub, "bench");
  if (!rs) return 1;

  std::unique_ptr<Process> agent2;
  std::unique_ptr<RexecSession> rs2;
  if (!agent_b.empty()) {
    agent2 = start_agent(hub, dir, agent_b, "bench-b");
    if (!agent2) return 1;
    rs2 = open_terminal(hub, "bench-b");
    if (!rs2) return 1;
  }

  int tport = free_port();
  // -P 600: ttyd pings every 5 s by default and drops a client whose pong is late; our client
  // answers pings only while it reads, and this session sits unread while the others run.
  Process tt({ttyd, "-p", std::to_string(tport), "-i", "127.0.0.1", "-W", "-P", "600", "/bin/sh"},
             {{"PATH", "/usr/bin:/bin"}, {"HOME", dir.path()}}, dir / "ttyd.log");
  std::this_thread::sleep_for(1s);
  long ttyd_idle_kib = rss_kib(tt.pid());
  TtydSession ts(tport);
  LocalSession ls(dir.path());
  BareRelaySession bs(dir.path());

  Series rex{"rexec", *rs}, tty{"ttyd", ts}, raw{"raw PTY", ls}, bare{"bare relay", bs};
  std::vector<Series*> all{&rex, &tty, &raw, &bare};
  std::unique_ptr<Series> b;  // agent B, when given
  if (rs2) all.push_back((b = std::make_unique<Series>("agent B", *rs2)).get());
  for (Series* x : all) prepare(x->session);

  // Interleaved rounds, medians: the machine is shared and noisy, so neither system gets the
  // quiet minute alone.
  double agent_cpu = 0, hub_cpu = 0, ttyd_cpu = 0;
  for (int round = 0; round < rounds; ++round) {
    double a0 = cpu_seconds(agent->pid()), h0 = cpu_seconds(hub.process().pid());
    rex.stream(file, expected, round);
    agent_cpu += cpu_seconds(agent->pid()) - a0;
    hub_cpu += cpu_seconds(hub.process().pid()) - h0;
    double t0 = cpu_seconds(tt.pid());
    tty.stream(file, expected, round);
    ttyd_cpu += cpu_seconds(tt.pid()) - t0;
    raw.stream(file, expected, round);
    bare.stream(file, expected, round);
    if (b) b->stream(file, expected, round);
    for (Series* x : all) x->keys(echoes / rounds);
  }
  long agent_busy_kib = rss_kib(agent->pid());
  bool complete = rex.complete && tty.complete;

  struct stat as {}, ts_st {};
  ::stat(agent_bin.c_str(), &as);
  ::stat(ttyd.c_str(), &ts_st);
  std::printf("\nrelay-bench: %d interleaved rounds of a %lld MB stream and %d keystrokes each, loopback\n", rounds, mb,
              echoes / rounds);
  std::printf("throughput per round MB/s:");
  for (const Series* x : {&rex, &tty, &raw, &bare}) {
    std::printf("%s %s", x == &rex ? "" : " |", x->name);
    for (double t : x->tp) std::printf(" %.1f", t);
  }
  std::printf("\n");
  double ceiling = raw.mb_per_s();
  std::printf("raw PTY ceiling (this process reads the PTY, no relay): %.1f MB/s; rexec %.0f%% of it, ttyd %.0f%%\n",
              ceiling, 100 * rex.mb_per_s() / ceiling, 100 * tty.mb_per_s() / ceiling);
  std::printf("bare one-hop relay (a process reads the PTY and writes a TCP socket, nothing else): %.1f MB/s = "
              "%.2fx ttyd: about the most any relay could reach here\n",
              bare.mb_per_s(), bare.mb_per_s() / tty.mb_per_s());
  // Paired by round: both streams of a pair ran within the same minute.
  auto per_round = [](const Series& a, const Series& b) {
    std::printf(" %s/%s", a.name, b.name);
    for (size_t i = 0; i < a.tp.size(); ++i) std::printf(" %.2f", a.tp[i] / b.tp[i]);
  };
  std::printf("throughput ratios per round:");
  per_round(rex, tty);
  std::printf(" |");
  per_round(bare, tty);
  std::printf(" |");
  per_round(rex, bare);
  std::printf("\n");
  std::printf("raw PTY echo p50 %.0f us, p99 %.0f us (the floor for both)\n", raw.p(50), raw.p(99));
  std::printf("%-34s %14s %14s %10s\n", "", "rexec", "ttyd", "ratio");
  std::printf("%-34s %14.1f %14.1f %9.2fx\n", "throughput MB/s (higher is better)", rex.mb_per_s(), tty.mb_per_s(),
              rex.mb_per_s() / tty.mb_per_s());
  std::printf("%-34s %14lld %14lld\n", "bytes delivered (expected)", rex.bytes, tty.bytes);
  std::printf("%-34s %14lld %14lld\n", "", expected, expected);
  std::printf("%-34s %14.0f %14.0f %9.2fx\n", "echo p50 us (lower is better)", rex.p(50), tty.p(50), rex.p(50) / tty.p(50));
  std::printf("%-34s %14.0f %14.0f %+9.0fus\n", "echo p99 us", rex.p(99), tty.p(99), rex.p(99) - tty.p(99));
  std::printf("%-34s %14ld %14ld\n", "idle RSS KiB (agent / ttyd)", agent_idle_kib, ttyd_idle_kib);
  std::printf("%-34s %14ld\n", "idle RSS KiB hub", hub_idle_kib);
  std::printf("%-34s %14ld\n", "agent RSS KiB after the rounds", agent_busy_kib);
  std::printf("%-34s %14lld %14lld\n", "binary bytes (static agent / ttyd)", (long long)as.st_size, (long long)ts_st.st_size);
  std::printf("CPU s per 100 MB stream: agent %.2f + hub %.2f = %.2f | ttyd %.2f\n", agent_cpu / rounds * 100 / double(mb),
              hub_cpu / rounds * 100 / double(mb), (agent_cpu + hub_cpu) / rounds * 100 / double(mb),
              ttyd_cpu / rounds * 100 / double(mb));
  // Were the CPUs saturated, throughput would be the CPUs divided by this work per byte. With
  // them idle a good part of the time, the stream is bound by wakeups instead: the PTY holds
  // only ~20 KB between the writer and the reader, so the writer stalls whenever the reader
  // (or the kernel worker between them) is late.
  std::printf("machine CPU s per 100 MB (every task and the kernel's tty workers): rexec %.2f | ttyd %.2f | raw PTY "
              "%.2f | bare relay %.2f;\n  CPUs idle meanwhile %.0f%% | %.0f%% | %.0f%% | %.0f%%\n",
              rex.busy_per_100mb(mb), tty.busy_per_100mb(mb), raw.busy_per_100mb(mb), bare.busy_per_100mb(mb),
              100 * rex.idle_share(), 100 * tty.idle_share(), 100 * raw.idle_share(), 100 * bare.idle_share());
  std::printf("every byte delivered in every round: %s\n", complete ? "yes" : "NO");
  std::printf("keystrokes without exactly one echo: rexec %d, ttyd %d, raw PTY %d, bare relay %d\n", rex.echo_errors,
              tty.echo_errors, raw.echo_errors, bare.echo_errors);
  if (b) {
    std::printf("agent B (%s): throughput per round", agent_b.c_str());
    for (double t : b->tp) std::printf(" %.1f", t);
    std::printf("\nagent B / agent A: throughput %.2fx (per round:", b->mb_per_s() / rex.mb_per_s());
    per_round(*b, rex);
    std::printf("), echo p50 %.0f vs %.0f us, bad echoes %d, every byte: %s\n", b->p(50), rex.p(50), b->echo_errors,
                b->complete ? "yes" : "NO");
  }
  return complete ? 0 : 1;
}
