// relay-bench: Rexec (static agent -> hub -> viewer) side by side with ttyd in one run, on
// loopback, with the same C++ raw-socket viewer client for both so the client is never the
// bottleneck. Reports throughput of one 100 MB stream (and checks every byte arrived), keystroke
// echo latency p50/p99 (a `cat` in canonical mode: the tty echoes at once, so this measures the
// relay path), idle memory and binary size, each as a ratio to ttyd. Not a test: no assertions.
//   relay-bench --ttyd PATH [--agent PATH] [--mb 100] [--echoes 1000]
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
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

long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
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

struct Result {
  double mb_per_s = 0;
  long long bytes = 0;
  long long expected = 0;
  double echo_p50_us = 0, echo_p99_us = 0;
};

Result measure(Session& s, const std::string& file, long long expected, int echoes) {
  Result r;
  r.expected = expected;
  s.send("stty -echo; echo READY''1\n");
  s.read_until("READY1", 20s);
  std::this_thread::sleep_for(300ms);
  while (!s.receive(200ms).empty()) {}
  // Throughput: one stream of the file; the marker's quotes keep the typed line from matching.
  auto t0 = Clock::now();
  s.send("cat " + file + "; echo BENCH''DONE\n");
  long long got = s.read_until("BENCHDONE", 120s);
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  r.bytes = got;
  r.mb_per_s = double(expected) / 1e6 / secs;
  // Echo: `cat` in canonical mode with echo on; each keystroke is echoed by the tty at once.
  s.send("stty echo; cat\n");
  std::this_thread::sleep_for(500ms);
  while (!s.receive(200ms).empty()) {}
  std::vector<double> lat;
  for (int i = 0; i < echoes; ++i) {
    auto a = Clock::now();
    s.send("a");
    std::string chunk;
    while (chunk.find('a') == std::string::npos) {
      std::string c = s.receive(5000ms);
      if (c.empty()) break;
      chunk += c;
    }
    lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - a).count());
    if (i % 64 == 63) s.send("\n");  // keep the line short; the newline's echo is drained below
    while (!s.receive(0ms).empty()) {}
  }
  std::sort(lat.begin(), lat.end());
  r.echo_p50_us = lat[lat.size() / 2];
  r.echo_p99_us = lat[lat.size() * 99 / 100];
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string ttyd, agent_bin = std::string(REXEC_SOURCE_DIR) + "/build/static-agent/agent/rexec-agent";
  long long mb = 100;
  int echoes = 1000;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i];
    if (f == "--ttyd") ttyd = argv[i + 1];
    else if (f == "--agent") agent_bin = argv[i + 1];
    else if (f == "--mb") mb = std::atoll(argv[i + 1]);
    else if (f == "--echoes") echoes = std::atoi(argv[i + 1]);
  }
  if (ttyd.empty()) {
    std::fprintf(stderr, "usage: relay-bench --ttyd PATH [--agent PATH] [--mb N] [--echoes N]\n");
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
  HubFixture hub;
  std::string cred = dir / "credential";
  Process agent({agent_bin, "--hub", "ws://127.0.0.1:" + std::to_string(hub.port()), "--enroll-token-file", "-",
                 "--credential-file", cred, "--name", "bench", "--shell", "/bin/sh"},
                {{"PATH", "/usr/bin:/bin"}}, dir / "agent.log", hub.enroll() + "\n");
  if (!eventually([&] { return hub.api("GET", "/api/v1/agents").body.find("\"online\":true") != std::string::npos; }, 10s)) {
    std::fprintf(stderr, "agent did not come online:\n%s\n", agent.log().c_str());
    return 1;
  }
  std::this_thread::sleep_for(2s);
  long agent_idle_kib = rss_kib(agent.pid());
  long hub_idle_kib = rss_kib(hub.process().pid());
  auto created = nlohmann::json::parse(hub.api("POST", "/api/v1/terminals", R"({"kind":"agent","agent":"bench"})").body);
  RexecSession rs(hub.port(), created["id"], hub.admin_token());
  Result rex = measure(rs, file, expected, echoes);

  // --- ttyd ---
  int tport = free_port();
  Process tt({ttyd, "-p", std::to_string(tport), "-i", "127.0.0.1", "-W", "/bin/sh"},
             {{"PATH", "/usr/bin:/bin"}, {"HOME", dir.path()}}, dir / "ttyd.log");
  std::this_thread::sleep_for(1s);
  long ttyd_idle_kib = rss_kib(tt.pid());
  TtydSession ts(tport);
  Result tty = measure(ts, file, expected, echoes);

  struct stat as {}, ts_st {};
  ::stat(agent_bin.c_str(), &as);
  ::stat(ttyd.c_str(), &ts_st);
  std::printf("\nrelay-bench: %lld MB stream, %d keystrokes, loopback, one run side by side\n", mb, echoes);
  std::printf("%-34s %14s %14s %10s\n", "", "rexec", "ttyd", "ratio");
  std::printf("%-34s %14.1f %14.1f %9.2fx\n", "throughput MB/s (higher is better)", rex.mb_per_s, tty.mb_per_s,
              rex.mb_per_s / tty.mb_per_s);
  std::printf("%-34s %14lld %14lld\n", "bytes delivered (expected)", rex.bytes, tty.bytes);
  std::printf("%-34s %14lld %14lld\n", "", rex.expected, tty.expected);
  std::printf("%-34s %14.0f %14.0f %9.2fx\n", "echo p50 us (lower is better)", rex.echo_p50_us, tty.echo_p50_us,
              rex.echo_p50_us / tty.echo_p50_us);
  std::printf("%-34s %14.0f %14.0f %+9.0fus\n", "echo p99 us", rex.echo_p99_us, tty.echo_p99_us,
              rex.echo_p99_us - tty.echo_p99_us);
  std::printf("%-34s %14ld %14ld\n", "idle RSS KiB (agent / ttyd)", agent_idle_kib, ttyd_idle_kib);
  std::printf("%-34s %14ld\n", "idle RSS KiB hub", hub_idle_kib);
  std::printf("%-34s %14lld %14lld\n", "binary bytes (static agent / ttyd)", (long long)as.st_size, (long long)ts_st.st_size);
  bool complete = rex.bytes >= rex.expected && tty.bytes >= tty.expected;
  std::printf("every byte delivered: rexec %s, ttyd %s\n", rex.bytes >= rex.expected ? "yes" : "NO",
              tty.bytes >= tty.expected ? "yes" : "NO");
  return complete ? 0 : 1;
}
