// Helpers for whole-system tests: a real agent process enrolled into a HubFixture, and a viewer
// that collects output by offset and events.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "tests/support/hub_fixture.h"

namespace rx::test {

class AgentProcess {
 public:
  // Enrolls (the token goes in on stdin) and starts rexec-agent against `hub`.
  // `hub_url` overrides the hub's address (e.g. a TcpProxy in front of it).
  AgentProcess(HubFixture& hub, const std::string& name, std::vector<std::string> extra = {}, std::string hub_url = "");
  ~AgentProcess();  // fails the test if a sanitizer reported anything in any run's log
  std::string log() const;
  void start();  // again, with the stored credential
  void kill9() { process_.kill_and_wait(); }
  Process& process() { return process_; }
  const std::string& credential_file() const { return credential_file_; }
  std::string id() const;  // the hub's id of this agent (once online)

 private:
  HubFixture& hub_;
  std::string name_;
  std::vector<std::string> extra_;
  std::string hub_url_;
  std::string credential_file_;
  int runs_ = 0;
  Process process_;
};

// The shell's PID as printed by `echo PID=$$` (the typed line shows "PID=$$", the answer digits).
std::string pid_after(const std::string& output, size_t from = 0);
// Markers typed as B''EGIN and E''ND, so only the shell's output contains BEGIN and END (the tty
// may echo a typed line before the shell prints its previous prompt).
inline constexpr const char* kBegin = "BEGIN\r\n";
inline constexpr const char* kEnd = "END\r\n";
// Checks that the numbered lines 1..lines appear once each, in order, between the markers.
void expect_every_line_once(const std::string& output, int lines);

struct Viewer {
  WsClient ws;
  std::string output;
  uint64_t next_offset = 0;
  std::vector<nlohmann::json> events;
  bool attach(HubFixture& hub, const std::string& terminal, std::optional<uint64_t> since = std::nullopt);
  void type(const std::string& text);
  // Until the terminal printed anything (a fresh shell's prompt): a shell that never starts then
  // fails here, saying so, rather than as a missing answer to what was typed.
  bool wait_prompt(std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    return until([](const Viewer& v) { return !v.output.empty(); }, timeout);
  }
  void resize(uint16_t cols, uint16_t rows);
  // Pumps messages until `done` holds; false on timeout or close.
  bool until(const std::function<bool(const Viewer&)>& done, std::chrono::milliseconds timeout);
  bool saw(const std::string& text) const { return output.find(text) != std::string::npos; }
  std::optional<nlohmann::json> event(const std::string& type) const;
  uint64_t duplicates = 0;  // bytes received twice (must stay 0)
  uint64_t gaps = 0;        // bytes skipped (must stay 0)
};

// Echo round trips, in ms and sorted, of up to `count` single keys typed into `cat` running in
// `v`'s terminal, 10 ms apart, while `going()` holds; a key that never comes back ends it early
// (the caller checks the count).
std::vector<double> echo_times(Viewer& v, int count, const std::function<bool()>& going = [] { return true; });
// The pct-th percentile of sorted `ms` (0 when empty).
double percentile(const std::vector<double>& ms, int pct);

// The shell's PID, from `echo PID=$$` typed now (empty on timeout).
std::string ask_pid(Viewer& v);
// Has the shell print its PID (returned; empty on timeout), then lines 1..lines between the
// markers, with a shell loop rather than `seq`: slow enough (seconds) for a disconnect to land
// mid-stream.
std::string start_printing(Viewer& v, int lines);

// How many exec commands ran at once. Each command, made by overlap_command, appends "s" to `log`
// when it starts and "e" before it ends (`wait` between); read_overlap gives the most started and
// not yet ended at any point, and how many ended, and removes the log for the next round.
struct Overlap {
  int most = 0;
  int ends = 0;
};
std::string overlap_command(const std::string& log, const std::string& wait);
// A `wait` for overlap_command: until `n` commands have started (at most 10 s).
std::string until_started(const std::string& log, int n);
Overlap read_overlap(const std::string& log);

}  // namespace rx::test
