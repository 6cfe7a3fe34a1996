// Streaming exec (issue 16): POST /api/v1/exec with Accept: application/x-ndjson against a real hub
// and a real agent. Output arrives while the command runs, each target ends with its own result
// line, text keeps whole characters, a 200 MB output leaves the hub's memory flat while its client
// reads slowly, and a client that goes away (either mode) has its commands killed.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "tests/integration/relay_support.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// A value of /proc/PID/status in KiB (VmHWM, VmRSS); -1 when it is not there.
long status_kib(pid_t pid, const std::string& key) {
  std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
  auto at = status.find(key + ":");
  return at == std::string::npos ? -1 : std::atol(status.c_str() + at + key.size() + 1);
}

// True while some process on this machine has `marker` in its command line.
bool process_with(const std::string& marker) {
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::string cmdline = read_file(e.path().string() + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(marker) != std::string::npos) return true;
  }
  return false;
}

std::string unique_marker() {
  return "rexec-cancel-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}());
}

// An exec request on a raw socket, as the CLI makes it, read as it comes: the response head, then
// the chunked body decoded, line by line. The test decides how fast it reads and when it hangs up.
class ExecClient {
 public:
  ~ExecClient() { hang_up(); }
  // Sends the request (streamed unless `plain`) and waits for the head. `rcvbuf`: a small
  // receive buffer, so a slow reader shows at the hub at once.
  bool start(int port, const std::string& token, const json& body, bool plain = false, int rcvbuf = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return false;
    std::string text = body.dump();
    std::string req = "POST /api/v1/exec HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      "Authorization: Bearer " + token + "\r\nContent-Type: application/json\r\n"
                      "Content-Length: " + std::to_string(text.size()) + "\r\n";
    if (!plain) req += "Accept: application/x-ndjson\r\n";
    req += "\r\n" + text;
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size())) return false;
    return plain || read_head();
  }
  HttpResult head;

  // The next whole line (without '\n'); nullopt at the end of the body or on timeout.
  std::optional<std::string> next_line(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
      if (auto nl = body_.find('\n', body_pos_); nl != std::string::npos) {
        std::string line = body_.substr(body_pos_, nl - body_pos_);
        body_pos_ = nl + 1;
        if (body_pos_ > (1 << 20)) {
          body_.erase(0, body_pos_);
          body_pos_ = 0;
        }
        return line;
      }
      if (ended_ || !receive(deadline)) return std::nullopt;
    }
  }
  // Every line up to the end of the body.
  std::vector<json> all_lines(std::chrono::milliseconds timeout) {
    std::vector<json> lines;
    auto deadline = Clock::now() + timeout;
    while (auto line = next_line(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())))
      lines.push_back(json::parse(*line));
    return lines;
  }
  bool ended() const { return ended_; }
  // Until then the client reads slowly: 16 KiB every 16 ms (about 1 MB/s).
  Clock::time_point slow_until{};
  void hang_up() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  bool read_head() {
    auto deadline = Clock::now() + 10s;
    while (raw_.find("\r\n\r\n") == std::string::npos)
      if (!read_some(deadline)) return false;
    auto end = raw_.find("\r\n\r\n") + 4;
    head = parse_head(raw_.substr(0, end));
    raw_.erase(0, end);
    chunked_ = head.headers["transfer-encoding"] == "chunked";
    decode();
    return true;
  }
  bool read_some(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd p{fd_, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, int(left)) <= 0) return false;
    bool slow = Clock::now() < slow_until;
    if (slow) std::this_thread::sleep_for(16ms);
    size_t read_size = slow ? 16 * 1024 : 1 << 20;
    size_t at = raw_.size();
    raw_.resize(at + read_size);
    ssize_t n = ::recv(fd_, raw_.data() + at, read_size, 0);
    raw_.resize(at + size_t(std::max<ssize_t>(0, n)));
    return n > 0;
  }
  bool receive(Clock::time_point deadline) {
    if (!read_some(deadline)) return false;
    decode();
    return true;
  }
  // Chunked transfer coding, as much of it as has arrived.
  void decode() {
    if (!chunked_) {
      body_.append(raw_);
      raw_.clear();
      return;
    }
    size_t pos = 0;
    for (;;) {
      auto eol = raw_.find("\r\n", pos);
      if (eol == std::string::npos) break;
      size_t size = std::strtoul(raw_.c_str() + pos, nullptr, 16);
      if (raw_.size() < eol + 2 + size + 2) break;
      if (size == 0) {
        ended_ = true;
        pos = raw_.size();
        break;
      }
      body_.append(raw_, eol + 2, size);
      pos = eol + 2 + size + 2;
    }
    raw_.erase(0, pos);
  }

  int fd_ = -1;
  bool chunked_ = false;
  bool ended_ = false;
  std::string raw_;   // bytes as received, not decoded yet
  std::string body_;  // decoded body; lines before body_pos_ were taken
  size_t body_pos_ = 0;
};

json exec_body(std::vector<std::string> targets, std::vector<std::string> argv, int timeout_s = 30) {
  return json{{"targets", targets}, {"argv", argv}, {"timeout_s", timeout_s}};
}

bool is_result(const json& line) { return line.contains("exit_code"); }

class ExecStream : public ::testing::Test {
 protected:
  // A sanitizer build's hub keeps freed memory in quarantine (256 MB by default): its peak would
  // measure that, not what the hub holds. Children read ASAN_OPTIONS when they start.
  static void SetUpTestSuite() {
    if (const char* asan = std::getenv("ASAN_OPTIONS"))
      ::setenv("ASAN_OPTIONS", (std::string(asan) + ":quarantine_size_mb=8").c_str(), 1);
  }
  void SetUp() override { ASSERT_TRUE(wait_online(hub, "runner", 5s)) << agent.process().log(); }
  HubFixture hub;
  AgentProcess agent{hub, "runner"};
};

TEST_F(ExecStream, FirstLineArrivesBeforeTheCommandPrintsItsThird) {
  ExecClient c;
  ASSERT_TRUE(c.start(hub.port(), hub.admin_token(),
                      exec_body({"runner"}, {"sh", "-c", "for i in 1 2 3 4 5; do date +%s%N; sleep 1; done"})));
  ASSERT_EQ(c.head.status, 200);
  EXPECT_EQ(c.head.headers["content-type"], "application/x-ndjson");
  std::optional<int64_t> first_arrival;
  std::string stdout_text;
  std::vector<json> lines;
  while (auto line = c.next_line(20s)) {
    auto j = json::parse(*line);
    if (j.value("stream", "") == "stdout") {
      if (!first_arrival) first_arrival = realtime_ns();
      EXPECT_EQ(j["target"], "runner");
      EXPECT_TRUE(j["agent"].get<std::string>().starts_with("ag_")) << j;
      EXPECT_FALSE(j.contains("encoding"));
      stdout_text += j["data"].get<std::string>();
    }
    lines.push_back(std::move(j));
  }
  ASSERT_TRUE(c.ended());
  ASSERT_TRUE(first_arrival);
  // The command's own clock: its third line was printed two seconds after its first. The first
  // chunk reaching this client before that shows output streams (an answer at the end cannot).
  std::vector<int64_t> stamps;
  for (size_t pos = 0, nl; (nl = stdout_text.find('\n', pos)) != std::string::npos; pos = nl + 1)
    stamps.push_back(std::stoll(stdout_text.substr(pos, nl - pos)));
  ASSERT_EQ(stamps.size(), 5u) << stdout_text;
  EXPECT_LT(*first_arrival, stamps[2]) << "first chunk at " << *first_arrival << ", third line printed at " << stamps[2];
  // The result comes last, once, without the output.
  ASSERT_FALSE(lines.empty());
  const json& result = lines.back();
  ASSERT_TRUE(is_result(result)) << result;
  EXPECT_EQ(result["exit_code"], 0);
  EXPECT_EQ(result["target"], "runner");
  EXPECT_EQ(result["stdout_bytes"], stdout_text.size());
  EXPECT_EQ(result["stderr_bytes"], 0);
  EXPECT_GE(result["duration_ms"].get<int64_t>(), 4000);
  EXPECT_FALSE(result.contains("stdout"));
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(), is_result), 1);
}

TEST_F(ExecStream, EachTargetHasItsResultAndStderrIsLabelled) {
  AgentProcess gone(hub, "gone");
  ASSERT_TRUE(wait_online(hub, "gone", 5s));
  gone.kill9();
  ASSERT_TRUE(eventually([&] {
    auto agents = json::parse(hub.api("GET", "/api/v1/agents").body)["agents"];  // not a temporary's member
    for (const auto& a : agents)
      if (a["name"] == "gone") return a["online"] == false;
    return false;
  }, 10s));
  ExecClient c;
  ASSERT_TRUE(c.start(hub.port(), hub.admin_token(),
                      exec_body({"runner", "gone"}, {"sh", "-c", "sleep 0.5; echo out; echo err >&2; exit 7"})));
  ASSERT_EQ(c.head.status, 200);
  // The offline target is answered at once, long before the other prints anything.
  auto first = c.next_line(5s);
  ASSERT_TRUE(first);
  auto offline = json::parse(*first);
  EXPECT_EQ(offline["target"], "gone");
  EXPECT_TRUE(offline["exit_code"].is_null());
  EXPECT_EQ(offline["error"]["code"], "agent_offline") << offline;
  auto rest = c.all_lines(20s);
  ASSERT_TRUE(c.ended());
  std::string out, err;
  for (const auto& l : rest) {
    if (is_result(l)) continue;
    EXPECT_EQ(l["target"], "runner");
    (l["stream"] == "stderr" ? err : out) += l["data"].get<std::string>();
  }
  EXPECT_EQ(out, "out\n");
  EXPECT_EQ(err, "err\n");
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest.back()["target"], "runner");
  EXPECT_EQ(rest.back()["exit_code"], 7);
  EXPECT_EQ(rest.back()["stdout_bytes"], 4);
  EXPECT_EQ(rest.back()["stderr_bytes"], 4);
  EXPECT_EQ(std::count_if(rest.begin(), rest.end(), is_result), 1);
}

TEST_F(ExecStream, SplitCharactersStayWholeAndOtherBytesAreBase64) {
  // U+20AC in two writes (two DATA frames), then a byte that is never UTF-8, then a character
  // the command never finishes.
  ExecClient c;
  ASSERT_TRUE(c.start(hub.port(), hub.admin_token(),
                      exec_body({"runner"}, {"sh", "-c",
                                             "printf '\\342\\202'; sleep 0.5; printf '\\254\\n'; sleep 0.5; "
                                             "printf '\\377\\n'; sleep 0.5; printf '\\342'"})));
  ASSERT_EQ(c.head.status, 200);
  auto lines = c.all_lines(20s);
  ASSERT_TRUE(c.ended());
  std::vector<json> chunks;
  for (const auto& l : lines)
    if (!is_result(l)) chunks.push_back(l);
  ASSERT_EQ(chunks.size(), 3u) << json(lines).dump();
  EXPECT_EQ(chunks[0]["data"], "\xe2\x82\xac\n");
  EXPECT_FALSE(chunks[0].contains("encoding"));
  EXPECT_EQ(chunks[1]["data"], "/wo=");  // ff 0a
  EXPECT_EQ(chunks[1]["encoding"], "base64");
  EXPECT_EQ(chunks[2]["data"], "4g==");  // e2, the stream's end inside a character
  EXPECT_EQ(chunks[2]["encoding"], "base64");
  EXPECT_EQ(lines.back()["stdout_bytes"], 7);
}

TEST_F(ExecStream, TwoHundredMegabytesToASlowReaderKeepTheHubSmall) {
  constexpr int64_t kTotal = 200'000'000;
  constexpr long kCapKib = 64 * 1024;  // the hub's peak may grow by less than this
  pid_t hub_pid = hub.process().pid();
  long hwm_before = status_kib(hub_pid, "VmHWM");
  ASSERT_GT(hwm_before, 0);
  ExecClient c;
  ASSERT_TRUE(c.start(hub.port(), hub.admin_token(),
                      exec_body({"runner"}, {"sh", "-c", "head -c " + std::to_string(kTotal) + " /dev/zero | tr '\\0' a"}, 120),
                      false, 64 * 1024));
  ASSERT_EQ(c.head.status, 200);
  auto start = Clock::now();
  c.slow_until = start + 3s;  // then as fast as it goes
  int64_t data = 0;
  std::optional<json> result;
  // Lines are counted, not parsed: every chunk is a run of 'a' between "data":" and the next quote.
  while (auto line = c.next_line(60s)) {
    auto at = line->find("\"data\":\"");
    if (at == std::string::npos) {
      result = json::parse(*line);
      continue;
    }
    auto from = at + 8, to = line->find('"', from);
    ASSERT_NE(to, std::string::npos);
    ASSERT_EQ(line->find_first_not_of('a', from), to) << line->substr(0, 200);
    data += int64_t(to - from);
  }
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  long hwm_after = status_kib(hub_pid, "VmHWM");
  std::printf("200 MB streamed in %lld ms; hub VmHWM %ld -> %ld KiB (+%ld KiB)\n", (long long)took, hwm_before,
              hwm_after, hwm_after - hwm_before);
  ASSERT_TRUE(c.ended());
  EXPECT_EQ(data, kTotal);
  ASSERT_TRUE(result);
  EXPECT_EQ((*result)["exit_code"], 0) << *result;
  EXPECT_EQ((*result)["stdout_bytes"], kTotal);
  EXPECT_LT(hwm_after - hwm_before, kCapKib);
}

// The command runs, the client hangs up: the run is cancelled on the hub and the process killed.
void expect_cancelled_on_hang_up(HubFixture& hub, bool plain) {
  std::string marker = unique_marker();
  ExecClient c;
  ASSERT_TRUE(c.start(hub.port(), hub.admin_token(),
                      exec_body({"runner"}, {"sh", "-c", "sleep 300; echo " + marker}, 600), plain));
  if (!plain) {
    ASSERT_EQ(c.head.status, 200);
  }
  ASSERT_TRUE(eventually([&] { return process_with(marker); }, 10s)) << "the command never started";
  c.hang_up();
  EXPECT_TRUE(eventually([&] { return !process_with(marker); }, 10s)) << "still running after the client left";
  EXPECT_TRUE(hub.process().wait_for_log("exec.cancelled", 5s)) << hub.log();
}

TEST_F(ExecStream, ClientGoneCancelsTheStreamedRun) { expect_cancelled_on_hang_up(hub, false); }
TEST_F(ExecStream, ClientGoneCancelsThePlainRun) { expect_cancelled_on_hang_up(hub, true); }

TEST_F(ExecStream, PlainAnswerHasDurationAndErrorsStayJson) {
  auto r = hub.api("POST", "/api/v1/exec", exec_body({"runner"}, {"sh", "-c", "sleep 0.3; echo hi"}).dump());
  ASSERT_EQ(r.status, 200) << r.body;
  auto res = json::parse(r.body)["results"][0];
  EXPECT_EQ(res["stdout"], "hi\n");
  EXPECT_EQ(res["exit_code"], 0);
  ASSERT_TRUE(res["duration_ms"].is_number_integer()) << res;
  EXPECT_GE(res["duration_ms"].get<int64_t>(), 300);
  EXPECT_FALSE(res.contains("stdout_bytes"));
  // A request refused before anything runs is a plain JSON error, whatever the client accepts.
  auto bad = http(hub.port(), "POST", "/api/v1/exec", hub.admin_token(), exec_body({"nobody"}, {"true"}).dump(),
                  {{"Accept", "application/x-ndjson"}});
  EXPECT_EQ(bad.status, 404) << bad.body;
  EXPECT_EQ(bad.headers["content-type"], "application/json");
  EXPECT_EQ(json::parse(bad.body)["code"], "not_found");
}

}  // namespace
}  // namespace rx::test

namespace rx::test {
namespace {

// `parallel`: at most N targets run at once, the rest wait their turn. Each command appends "s"
// to a log when it starts and "e" before it ends; the most starts without their ends at any point
// is how many ran at once. The hub opens the next target only after one's CLOSE, which follows its
// "e", so with parallel 2 no point can show a third. Without the limit each command also waits (at
// most 10 s) until all six started: all six ran at once, so the limit is what held them apart.
TEST_F(ExecStream, ParallelBoundsHowManyRunAtOnce) {
  TempDir dir("rexec-parallel");
  std::string log = dir / "log";
  std::vector<std::string> six(6, "runner");
  for (bool streamed : {false, true}) {
    json body = exec_body(six, {"sh", "-c", overlap_command(log, "sleep 1")});
    body["parallel"] = 2;
    std::vector<json> results;
    if (streamed) {
      ExecClient c;
      ASSERT_TRUE(c.start(hub.port(), hub.admin_token(), body));
      while (auto line = c.next_line(60s))
        if (auto j = json::parse(*line); is_result(j)) results.push_back(j);
      ASSERT_TRUE(c.ended());
    } else {
      auto r = hub.api("POST", "/api/v1/exec", body.dump());
      ASSERT_EQ(r.status, 200) << r.body;
      json answer = json::parse(r.body);
      for (const auto& j : answer["results"]) results.push_back(j);
    }
    ASSERT_EQ(results.size(), 6u);
    for (const auto& j : results) EXPECT_EQ(j["exit_code"], 0) << j;
    auto overlap = read_overlap(log);
    EXPECT_EQ(overlap.ends, 6);
    EXPECT_EQ(overlap.most, 2) << "streamed=" << streamed;
  }
  auto all = hub.api("POST", "/api/v1/exec", exec_body(six, {"sh", "-c", overlap_command(log, until_started(log, 6))}).dump());
  ASSERT_EQ(all.status, 200) << all.body;
  auto overlap = read_overlap(log);
  EXPECT_EQ(overlap.ends, 6);
  EXPECT_EQ(overlap.most, 6) << "without parallel every target runs at once";

  // timeout_s is per target, from its own start: three one-second commands one after another
  // take three seconds, over a two-second timeout, and none times out.
  json serial = exec_body({"runner", "runner", "runner"}, {"sleep", "1"}, 2);
  serial["parallel"] = 1;
  auto r = hub.api("POST", "/api/v1/exec", serial.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  int64_t total_ms = 0;
  json answer = json::parse(r.body);
  ASSERT_EQ(answer["results"].size(), 3u);
  for (const auto& j : answer["results"]) {
    EXPECT_EQ(j["exit_code"], 0) << j;
    EXPECT_FALSE(j.contains("error")) << j;
    total_ms += j["duration_ms"].get<int64_t>();
  }
  EXPECT_GE(total_ms, 3000);

  for (json bad : {json(0), json(257), json("2"), json(1.5)}) {
    json b = exec_body({"runner"}, {"true"});
    b["parallel"] = bad;
    auto refused = hub.api("POST", "/api/v1/exec", b.dump());
    EXPECT_EQ(refused.status, 400) << bad;
    auto e = json::parse(refused.body);
    EXPECT_EQ(e["code"], "bad_field") << refused.body;
    EXPECT_TRUE(e["error"].get<std::string>().starts_with("parallel:")) << refused.body;
  }
}

// A client that goes away while targets still wait their turn: the running one is killed and the
// waiting ones never start.
TEST_F(ExecStream, ClientGoneWhileTargetsWaitStartsNoMore) {
  TempDir dir("rexec-parallel-cancel");
  std::string marker = unique_marker();
  json body = exec_body({"runner", "runner", "runner"},
                        {"sh", "-c", ": > " + dir.path() + "/started.$$; sleep 30; : " + marker});
  body["parallel"] = 1;
  ExecClient c;
  ASSERT_TRUE(c.start(hub.port(), hub.admin_token(), body));
  ASSERT_TRUE(eventually([&] { return process_with(marker); }, 10s));
  c.hang_up();
  ASSERT_TRUE(eventually([&] { return !process_with(marker); }, 10s)) << "the running target was not killed";
  // The hub has finished the run once a later request is answered: the loop is serial.
  auto r = hub.api("POST", "/api/v1/exec", exec_body({"runner"}, {"true"}).dump());
  ASSERT_EQ(r.status, 200) << r.body;
  size_t started = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    if (e.path().filename().string().starts_with("started.")) ++started;
  EXPECT_EQ(started, 1u) << "a waiting target started after its client went away";
}

}  // namespace
}  // namespace rx::test
