#include "tests/integration/relay_support.h"

#include <algorithm>
#include <fstream>
#include <filesystem>

#include <cctype>

#include <sstream>
#include <thread>

#include <cstring>

#include <gtest/gtest.h>

#include "protocol/viewer.h"

namespace rx::test {

using nlohmann::json;
namespace viewer = protocol::viewer;


AgentProcess::AgentProcess(HubFixture& hub, const std::string& name, std::vector<std::string> extra, std::string hub_url)
    : hub_(hub),
      name_(name),
      extra_(std::move(extra)),
      hub_url_(hub_url.empty() ? "ws://127.0.0.1:" + std::to_string(hub.port()) : hub_url),
      credential_file_(hub.data_dir() + "/" + name + ".credential") {
  // /bin/sh unless the test says otherwise: root's login bash here runs the machine's ~/.bashrc
  // (pyenv init: ~3 s, and a shell killed inside its rehash leaves a lock that stalls every later
  // bash for 60 s). A test of Rexec must not depend on the account's rc files.
  if (std::find(extra_.begin(), extra_.end(), "--shell") == extra_.end()) extra_.insert(extra_.end(), {"--shell", "/bin/sh"});
  std::vector<std::string> argv{binary("agent/rexec-agent"), "--hub", hub_url_,
                                "--enroll-token-file", "-", "--credential-file", credential_file_, "--name", name_};
  argv.insert(argv.end(), extra_.begin(), extra_.end());
  process_ = Process(argv, child_env(), hub.data_dir() + "/agent-" + name_ + "-0.log", hub.enroll() + "\n");
  runs_ = 1;
}

AgentProcess::~AgentProcess() {
  process_.kill_and_wait();
  std::string all = log();
  for (const char* needle : {"ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"})
    if (all.find(needle) != std::string::npos) ADD_FAILURE() << "rexec-agent reported a sanitizer error:\n" << all;
}

std::string AgentProcess::log() const {
  std::string all;
  for (int i = 0; i < runs_; ++i) all += read_file(hub_.data_dir() + "/agent-" + name_ + "-" + std::to_string(i) + ".log");
  return all;
}

void AgentProcess::start() {
  std::vector<std::string> argv{binary("agent/rexec-agent"), "--hub", hub_url_, "--credential-file", credential_file_,
                                "--name", name_};
  argv.insert(argv.end(), extra_.begin(), extra_.end());
  process_ = Process(argv, child_env(),
                     hub_.data_dir() + "/agent-" + name_ + "-" + std::to_string(runs_++) + ".log");
}

std::string AgentProcess::id() const {
  auto agents = json::parse(hub_.api("GET", "/api/v1/agents").body)["agents"];
  for (const auto& a : agents)
    if (a["name"] == name_) return a["id"];
  return "";
}

std::vector<double> echo_times(Viewer& v, int count, const std::function<bool()>& going) {
  std::vector<double> ms;
  for (int i = 0; i < count && going(); ++i) {
    std::string key(1, char('a' + i % 26));
    size_t before = v.output.size();
    auto sent = std::chrono::steady_clock::now();
    v.type(key);
    if (!v.until([&](const Viewer& v) { return v.output.find(key, before) != std::string::npos; }, std::chrono::seconds(10)))
      break;
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent).count());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::sort(ms.begin(), ms.end());
  return ms;
}

double percentile(const std::vector<double>& ms, int pct) { return ms.empty() ? 0.0 : ms[ms.size() * size_t(pct) / 100]; }

bool Viewer::attach(HubFixture& hub, const std::string& terminal, std::optional<uint64_t> since) {
  std::string path = "/api/v1/terminals/" + terminal + "/attach";
  if (since) {
    path += "?since=" + std::to_string(*since);
    next_offset = *since;
  }
  return ws.connect(hub.port(), path, "rexec.term.v1", {{"Authorization", "Bearer " + hub.admin_token()}});
}

void Viewer::type(const std::string& text) {
  ws.send_binary(viewer::encode_input(std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size())));
}

void Viewer::resize(uint16_t cols, uint16_t rows) { ws.send_binary(viewer::encode_resize(cols, rows)); }

bool Viewer::until(const std::function<bool(const Viewer&)>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done(*this)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    auto m = ws.receive(left);
    if (!m) return false;
    auto d = viewer::decode_server(m->data);
    if (!d) return false;
    if (auto* o = std::get_if<viewer::Output>(&*d)) {
      uint64_t end = o->offset + o->bytes.size();
      if (o->offset > next_offset) gaps += o->offset - next_offset;
      size_t skip = o->offset < next_offset ? size_t(std::min(end, next_offset) - o->offset) : 0;
      duplicates += skip;
      if (end > next_offset) {
        output.append(reinterpret_cast<const char*>(o->bytes.data()) + skip, o->bytes.size() - skip);
        next_offset = end;
      }
    } else if (auto* e = std::get_if<viewer::Event>(&*d)) {
      events.push_back(json::parse(e->json));
    }
  }
  return true;
}

std::optional<json> Viewer::event(const std::string& type) const {
  for (auto it = events.rbegin(); it != events.rend(); ++it)
    if ((*it)["type"] == type) return *it;
  return std::nullopt;
}


std::string pid_after(const std::string& output, size_t from) {
  for (auto p = output.find("PID=", from); p != std::string::npos; p = output.find("PID=", p + 1)) {
    auto end = p + 4;
    while (end < output.size() && std::isdigit(static_cast<unsigned char>(output[end]))) ++end;
    if (end > p + 4 && end < output.size() && output[end] == '\r') return output.substr(p + 4, end - p - 4);
  }
  return "";
}

void expect_every_line_once(const std::string& output, int lines) {
  auto begin = output.find(kBegin);
  ASSERT_NE(begin, std::string::npos);
  begin += std::strlen(kBegin);
  auto end = output.find(kEnd, begin);
  ASSERT_NE(end, std::string::npos);
  std::istringstream in(output.substr(begin, end - begin));
  int expected = 1;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    ASSERT_EQ(line, std::to_string(expected)) << "line " << expected << " is wrong or missing";
    ++expected;
  }
  EXPECT_EQ(expected - 1, lines);
}

std::string ask_pid(Viewer& v) {
  EXPECT_TRUE(v.wait_prompt()) << "the shell never printed a prompt";
  size_t mark = v.output.size();
  v.type("echo PID=$$\n");
  EXPECT_TRUE(v.until([&](const Viewer& v) { return !pid_after(v.output, mark).empty(); }, std::chrono::seconds(10)))
      << v.output.substr(mark);
  return pid_after(v.output, mark);
}

std::string start_printing(Viewer& v, int lines) {
  std::string pid = ask_pid(v);
  v.type("echo B''EGIN; i=1; while [ $i -le " + std::to_string(lines) + " ]; do echo $i; i=$((i+1)); done; echo E''ND\n");
  return pid;
}

std::string overlap_command(const std::string& log, const std::string& wait) {
  return "echo s >> " + log + "; " + wait + "; echo e >> " + log;
}

std::string until_started(const std::string& log, int n) {
  return "i=0; while [ $(grep -c s " + log + ") -lt " + std::to_string(n) +
         " ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done";
}

Overlap read_overlap(const std::string& log) {
  Overlap o;
  std::ifstream in(log);
  int now = 0;
  for (std::string ev; in >> ev;) {
    now += ev == "s" ? 1 : -1;
    o.ends += ev == "e";
    o.most = std::max(o.most, now);
  }
  std::filesystem::remove(log);
  return o;
}

}  // namespace rx::test
