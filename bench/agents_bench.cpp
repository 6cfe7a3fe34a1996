// agents-bench: how many idle agents one hub holds, and what each costs it (issue #19). For each
// N: a fresh hub, N simulated agents from this one process (LinkSwarm: epoll, the protocol
// library's codec, loopback only) enroll with one token, idle the way the real agent idles
// (STATS every 5 s, a ping after 20 s without traffic, pongs), hang up, and come back with the
// credentials their WELCOME gave them. Reported: connect rates (enrolling vs already enrolled),
// hub RSS per agent, hub CPU while idle, bytes per second per idle link, and how many the hub
// lists online. A benchmark, not a test: nothing here asserts a figure.
//   agents-bench [--agents 1000,5000,10000] [--idle-seconds 60] [--in-flight 128]
//                [--stats-seconds 5] [--reconnects 3] [--max-seconds 1800]
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/load_links.h"
#include "tests/support/hub_fixture.h"

namespace {

using namespace rx::test;
using namespace std::chrono_literals;
using rx::bench::Clock;
using rx::bench::ConnectReport;
using rx::bench::LinkSwarm;
using rx::bench::Traffic;
using nlohmann::json;

constexpr int kMaxAgents = 20'000;  // a bound on what one run may open, whatever the flags say

double percentile(std::vector<double> v, int p) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, v.size() * size_t(p) / 100)];
}

// Agents GET /api/v1/agents lists online; -1 when the hub did not answer.
int online_count(const HubFixture& hub) {
  auto j = json::parse(hub.api("GET", "/api/v1/agents").body, nullptr, false);
  if (!j.is_object() || !j.contains("agents")) return -1;
  int n = 0;
  for (const auto& a : j["agents"]) n += a.value("online", false) ? 1 : 0;
  return n;
}

// An enrollment token good for `uses` agents (docs/api.md: uses 1..100000, more than kMaxAgents,
// so one token always does).
std::string enrollment(const HubFixture& hub, int uses) {
  auto r = hub.api("POST", "/api/v1/agent-enrollments", json{{"uses", uses}, {"expires_in", 3600}}.dump());
  if (r.status != 201) throw std::runtime_error("enrollment failed: " + std::to_string(r.status) + " " + r.body);
  return json::parse(r.body).value("token", "");
}

std::string reasons(const std::map<std::string, int>& m) {
  std::string s;
  for (const auto& [why, n] : m) s += (s.empty() ? "" : ", ") + why + " x" + std::to_string(n);
  return s.empty() ? "-" : s;
}

struct Row {
  int agents = 0;
  ConnectReport enroll;
  std::vector<ConnectReport> again;        // one per round of close all + reconnect all
  double cpu_enroll = 0;                   // hub CPU % of one core while they enrolled
  std::vector<double> cpu_again;           // ... while they reconnected, per round
  long rss_before = 0, rss_idle = 0;  // KiB
  std::vector<double> cpu;            // % of one core, per slice of the idle window
  double idle_s = 0;
  Traffic idle;                       // traffic during the idle window only
  int online = -1, offline_left = -1, online_again = -1, dropped = 0;
  std::string drops;
};

Traffic minus(const Traffic& a, const Traffic& b) {
  return {a.in - b.in, a.out - b.out, a.pings_out - b.pings_out, a.pongs_out - b.pongs_out, a.pings_in - b.pings_in,
          a.stats_out - b.stats_out, a.frames_in - b.frames_in};
}

void progress(const char* fmt, auto... args) {
  std::fprintf(stderr, fmt, args...);
  std::fflush(stderr);
}

Row run(int n, const rx::bench::SwarmOptions& base, Clock::duration idle, int reconnects, Clock::time_point deadline) {
  Row row;
  row.agents = n;
  HubFixture hub;
  pid_t pid = hub.process().pid();
  std::string token = enrollment(hub, n);
  std::this_thread::sleep_for(1s);  // the hub settles after its start (first sweep, SQLite pages)
  row.rss_before = rss_kib(pid);

  auto options = base;
  options.port = hub.port();
  options.agents = n;
  LinkSwarm swarm(options);
  progress("agents-bench: %d agents enrolling...\n", n);
  double c0 = cpu_seconds(pid);
  row.enroll = swarm.connect_all(token, std::min(deadline, Clock::now() + 600s));
  row.cpu_enroll = 100 * (cpu_seconds(pid) - c0) / std::max(row.enroll.seconds, 1e-3);
  progress("  %d welcomed in %.1f s, %d failed (%s)\n", row.enroll.welcomed, row.enroll.seconds, row.enroll.failed,
           reasons(row.enroll.reasons).c_str());

  // The idle window, in slices of at most 10 s: CPU per slice, RSS at the end.
  Traffic t0 = swarm.traffic();
  auto w0 = Clock::now();
  auto slice = std::min<Clock::duration>(idle, 10s);
  while (Clock::now() - w0 < idle && Clock::now() < deadline) {
    auto d = std::min<Clock::duration>(slice, idle - (Clock::now() - w0));
    double c0 = cpu_seconds(pid);
    auto s0 = Clock::now();
    swarm.idle_for(d);
    double secs = std::chrono::duration<double>(Clock::now() - s0).count();
    row.cpu.push_back(100 * (cpu_seconds(pid) - c0) / secs);
  }
  row.idle_s = std::chrono::duration<double>(Clock::now() - w0).count();
  row.idle = minus(swarm.traffic(), t0);
  row.rss_idle = rss_kib(pid);
  row.online = online_count(hub);
  row.dropped = swarm.dropped();
  row.drops = reasons(swarm.drop_reasons());
  progress("  idle %.0f s: hub RSS %ld KiB (%ld before), %d listed online, %d dropped\n", row.idle_s, row.rss_idle,
           row.rss_before, row.online, row.dropped);

  // Already enrolled: all hang up, the hub lists them offline, all come back. Cheap next to
  // enrolling, so repeated for min/median/max.
  row.offline_left = 0;
  for (int round = 0; round < reconnects && Clock::now() < deadline; ++round) {
    swarm.close_all(30s);
    auto until = Clock::now() + 30s;
    int left = 0;
    while ((left = online_count(hub)) != 0 && Clock::now() < until) std::this_thread::sleep_for(250ms);
    row.offline_left = std::max(row.offline_left, left);
    progress("  closed; %d still listed online; reconnecting with credentials...\n", left);
    c0 = cpu_seconds(pid);
    auto& again = row.again.emplace_back(swarm.connect_all("", std::min(deadline, Clock::now() + 600s)));
    row.cpu_again.push_back(100 * (cpu_seconds(pid) - c0) / std::max(again.seconds, 1e-3));
    progress("  %d welcomed in %.1f s, %d failed (%s)\n", again.welcomed, again.seconds, again.failed,
             reasons(again.reasons).c_str());
    swarm.idle_for(1s);  // WELCOMEs are out before the hub lists the agents again
    row.online_again = online_count(hub);
  }
  swarm.close_all(30s);
  return row;
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return buf;
}

double rate(const ConnectReport& r) { return r.seconds > 0 ? r.welcomed / r.seconds : 0; }

// The reconnect rounds of a row together: rates per round, latencies pooled, failures summed.
struct Rounds {
  std::vector<double> rates, ms;
  int failed = 0;
  std::map<std::string, int> reasons;
  explicit Rounds(const std::vector<ConnectReport>& v) {
    for (const auto& r : v) {
      rates.push_back(rate(r));
      ms.insert(ms.end(), r.ms.begin(), r.ms.end());
      failed += r.failed;
      for (const auto& [why, k] : r.reasons) reasons[why] += k;
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> counts{1000, 5000, 10000};
  int idle_seconds = 60, max_seconds = 1800, reconnects = 3;
  rx::bench::SwarmOptions options;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i], v = argv[i + 1];
    if (f == "--agents") {
      counts.clear();
      std::stringstream ss(v);
      for (std::string item; std::getline(ss, item, ',');) counts.push_back(std::atoi(item.c_str()));
    } else if (f == "--idle-seconds") idle_seconds = std::max(1, std::atoi(v.c_str()));
    else if (f == "--in-flight") options.in_flight = std::clamp(std::atoi(v.c_str()), 1, 1024);
    else if (f == "--stats-seconds") options.stats_every = std::chrono::seconds(std::max(0, std::atoi(v.c_str())));
    else if (f == "--max-seconds") max_seconds = std::max(10, std::atoi(v.c_str()));
    else if (f == "--reconnects") reconnects = std::clamp(std::atoi(v.c_str()), 1, 20);
    else {
      std::fprintf(stderr, "usage: agents-bench [--agents N,N,...] [--idle-seconds S] [--in-flight K] "
                           "[--stats-seconds S] [--reconnects R] [--max-seconds S]\n");
      return 2;
    }
  }
  // Each agent is one descriptor here and one in the hub (which inherits this limit).
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);
  int fd_room = int(std::min<rlim_t>(r.rlim_cur, 1'000'000)) - 200;
  for (int& n : counts) {
    int cap = std::min(kMaxAgents, fd_room);
    if (n > cap) {
      std::fprintf(stderr, "agents-bench: %d agents is over %s (RLIMIT_NOFILE %llu): running %d\n", n,
                   cap == kMaxAgents ? "the bench's cap" : "what this machine's open-file limit allows",
                   (unsigned long long)r.rlim_cur, cap);
      n = cap;
    }
    n = std::max(1, n);
  }
  auto deadline = Clock::now() + std::chrono::seconds(max_seconds);

  std::vector<Row> rows;
  for (int n : counts) {
    if (Clock::now() >= deadline) {
      std::fprintf(stderr, "agents-bench: --max-seconds reached, %d agents not run\n", n);
      break;
    }
    rows.push_back(run(n, options, std::chrono::seconds(idle_seconds), reconnects, deadline));
  }

  std::string stats = options.stats_every.count() > 0
                          ? "STATS every " + std::to_string(options.stats_every.count() / 1000) + " s (as the real agent)"
                          : "no STATS (pings only)";
  std::printf("\n### agents-bench, %s\n\n", utc_now().c_str());
  std::printf("One hub per N (fresh data dir), N simulated agents from one epoll process on loopback, %d "
              "handshakes in flight; idle %d s (CPU in slices of <= 10 s: min/median/max); %d rounds of close all + reconnect "
              "all (rate min/median/max, latencies pooled); %s, "
              "ping after 20 s of silence (-10%% jitter); %d CPUs; RLIMIT_NOFILE %llu. B/s counts WebSocket bytes "
              "both ways as the client's sockets see them (no TCP/IP headers). Goal (#19): >= 10k agents at <= 64 "
              "KiB hub RSS and < 100 B/s each.\n\n",
              options.in_flight, idle_seconds, reconnects, stats.c_str(),
              int(sysconf(_SC_NPROCESSORS_ONLN)), (unsigned long long)r.rlim_cur);
  std::printf("| agents | enroll /s | enroll ms p50 / p99 / max | reconnect /s min / med / max | reconnect ms p50 / p99 / max | hub RSS "
              "KiB before / idle | KiB per agent | hub CPU %% idle min / med / max | B/s per link (in + out) | online "
              "after idle | online after reconnect | dropped idle | failed enroll / reconnect |\n");
  std::printf("|---:|---:|---|---:|---|---|---:|---|---:|---:|---:|---:|---|\n");
  for (const Row& w : rows) {
    Rounds again(w.again);
    double per_agent = double(w.rss_idle - w.rss_before) / w.agents;
    double bps = double(w.idle.in + w.idle.out) / w.agents / w.idle_s;
    std::printf("| %d | %.0f | %.1f / %.1f / %.1f | %.0f / %.0f / %.0f | %.1f / %.1f / %.1f | %ld / %ld | %.1f | "
                "%.2f / %.2f / %.2f | %.1f (%.1f + %.1f) | %d | %d | %d | %d / %d |\n",
                w.agents, rate(w.enroll), percentile(w.enroll.ms, 50), percentile(w.enroll.ms, 99),
                percentile(w.enroll.ms, 100), percentile(again.rates, 0), percentile(again.rates, 50),
                percentile(again.rates, 100), percentile(again.ms, 50), percentile(again.ms, 99),
                percentile(again.ms, 100), w.rss_before, w.rss_idle, per_agent, percentile(w.cpu, 0),
                percentile(w.cpu, 50), percentile(w.cpu, 100), bps, double(w.idle.in) / w.agents / w.idle_s,
                double(w.idle.out) / w.agents / w.idle_s, w.online, w.online_again, w.dropped, w.enroll.failed,
                again.failed);
  }
  std::printf("\n");
  for (const Row& w : rows) {
    Rounds again(w.again);
    std::string cpu_again;
    for (double c : w.cpu_again) cpu_again += (cpu_again.empty() ? "" : ", ") + std::to_string(int(std::lround(c)));
    std::string rates;
    for (double r : again.rates) rates += (rates.empty() ? "" : ", ") + std::to_string(int(std::lround(r)));
    std::printf("- %d agents, idle window: %llu STATS, %llu pings and %llu pongs sent, %llu pings from the hub; hub "
                "CPU %% of one core while enrolling %.0f, while reconnecting %s (rounds: %s /s); most still listed "
                "online 30 s after a close: %d; drops: %s; enroll failures: %s; reconnect failures: %s\n",
                w.agents, (unsigned long long)w.idle.stats_out, (unsigned long long)w.idle.pings_out,
                (unsigned long long)w.idle.pongs_out, (unsigned long long)w.idle.pings_in, w.cpu_enroll,
                cpu_again.c_str(), rates.c_str(), w.offline_left, w.drops.c_str(), reasons(w.enroll.reasons).c_str(),
                reasons(again.reasons).c_str());
  }
  return 0;
}
