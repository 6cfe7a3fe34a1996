// exec: one command on many targets at once, its output streamed as it arrives
// (POST /api/v1/exec with Accept: application/x-ndjson, docs/api.md "Exec").
//   rexec exec web-1 web-2 --label role=ci -- sh -c 'uname -m'
// Exit status: 0 when every target exited 0, else 1 + the number of targets that did not
// (offline, timed out, failed to start, non-zero exit), at most 100.
#include <chrono>

#include "cli/commands.h"
#include "cli/failure.h"
#include "cli/interrupt.h"
#include "cli/output.h"
#include "cli/parse.h"
#include "cli/targets.h"
#include "protocol/base64.h"
#include "protocol/viewer.h"

namespace rx::cli {

namespace {

using Clock = std::chrono::steady_clock;

// Kept per stream in --json mode, like the hub's own cap; the rest is counted.
constexpr size_t kKeepPerStream = 1024 * 1024;
// A line longer than this is printed in pieces (a target printing without newlines).
constexpr size_t kMaxLine = 64 * 1024;

struct Stream {
  std::string line;  // text mode: the unfinished line
  std::string kept;  // json mode: what is kept
  uint64_t total = 0;
};

struct Run {
  ExecTarget target;
  Colour colour = Colour::kNone;
  Stream out, err;
  bool done = false;
  nlohmann::json result;
};

enum class Mode { kText, kJson, kJsonStream };

class Fanout {
 public:
  Fanout(Context& ctx, std::vector<ExecTarget> targets, Mode mode) : mode_(mode), out_(ctx.out()), err_(ctx.err()) {
    static constexpr Colour kPalette[] = {Colour::kCyan, Colour::kGreen, Colour::kYellow, Colour::kBlue, Colour::kMagenta};
    for (size_t i = 0; i < targets.size(); ++i) {
      width_ = std::max(width_, targets[i].name.size());
      runs_.push_back(Run{targets[i], kPalette[i % 5], {}, {}, false, {}});
    }
  }

  void on_line(const nlohmann::json& j) {
    Run* run = find(field(j, "target"));
    if (!run) return;
    if (mode_ == Mode::kJsonStream) {
      nlohmann::json copy = j;
      copy["name"] = run->target.name;
      std::printf("%s\n", copy.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      std::fflush(stdout);
    }
    if (j.contains("stream")) return on_chunk(*run, j);
    finish(*run, j);
  }

  // Targets the stream never gave a result for (the hub went away mid-run).
  void finish_missing(const std::string& why) {
    for (auto& r : runs_)
      if (!r.done) finish(r, {{"target", r.target.id}, {"exit_code", nullptr}, {"error", {{"code", "no_result"}, {"error", why}}}});
  }

  // "3 ok, 1 failed (exit 7), 1 offline" on stderr; the exit status.
  int summary() const {
    size_t ok = 0, offline = 0;
    std::vector<std::string> failed;
    for (const auto& r : runs_) {
      const auto& res = r.result;
      std::string code = res.contains("error") && res["error"].is_object() ? field(res["error"], "code") : "";
      if (code == "agent_offline") ++offline;
      else if (code.empty() && res.value("exit_code", nlohmann::json()).is_number() && res["exit_code"] == 0) ++ok;
      else if (!code.empty()) failed.push_back(code);
      else if (!field(res, "signal").empty()) failed.push_back("signal " + field(res, "signal"));
      else failed.push_back("exit " + cell(res.value("exit_code", nlohmann::json())));
    }
    std::string line = std::to_string(ok) + " ok";
    if (!failed.empty()) {
      line += ", " + std::to_string(failed.size()) + " failed (";
      for (size_t i = 0; i < failed.size() && i < 5; ++i) line += (i ? ", " : "") + failed[i];
      if (failed.size() > 5) line += ", ...";
      line += ")";
    }
    if (offline) line += ", " + std::to_string(offline) + " offline";
    std::fprintf(stderr, "%s\n", err_.paint(failed.empty() && !offline ? Colour::kGreen : Colour::kRed, line).c_str());
    size_t bad = runs_.size() - ok;
    return bad == 0 ? 0 : int(1 + std::min<size_t>(bad, 99));
  }

 private:
  Run* find(const std::string& id) {
    for (auto& r : runs_)
      if (r.target.id == id) return &r;
    return nullptr;
  }

  static std::string chunk_bytes(const nlohmann::json& j) {
    std::string data = field(j, "data");
    if (field(j, "encoding") != "base64") return data;
    auto bytes = protocol::base64_decode(data);
    return bytes ? std::string(bytes->begin(), bytes->end()) : std::string();
  }

  void on_chunk(Run& run, const nlohmann::json& j) {
    bool is_err = field(j, "stream") == "stderr";
    Stream& s = is_err ? run.err : run.out;
    std::string bytes = chunk_bytes(j);
    s.total += bytes.size();
    if (mode_ == Mode::kJson) {
      s.kept.append(bytes, 0, std::min(bytes.size(), kKeepPerStream - std::min(kKeepPerStream, s.kept.size())));
      return;
    }
    if (mode_ != Mode::kText) return;
    s.line += bytes;
    size_t start = 0;
    for (size_t nl; (nl = s.line.find('\n', start)) != std::string::npos; start = nl + 1)
      print_line(run, is_err, std::string_view(s.line).substr(start, nl - start));
    s.line.erase(0, start);
    while (s.line.size() > kMaxLine) {
      print_line(run, is_err, std::string_view(s.line).substr(0, kMaxLine));
      s.line.erase(0, kMaxLine);
    }
  }

  void print_line(const Run& run, bool is_err, std::string_view text) {
    FILE* f = is_err ? stderr : stdout;
    const Style& style = is_err ? err_ : out_;
    std::string name = run.target.name + std::string(width_ - run.target.name.size(), ' ');
    std::string prefix = style.paint(run.colour, name) + style.paint(Colour::kDim, " | ");
    std::fprintf(f, "%s%.*s\n", prefix.c_str(), int(text.size()), text.data());
    std::fflush(f);
  }

  static void put_stream(nlohmann::json& r, const char* name, const Stream& s) {
    std::string_view kept = s.kept;
    if (protocol::viewer::valid_utf8(kept)) {
      r[name] = s.kept;
    } else {
      r[name] = protocol::base64_encode({reinterpret_cast<const uint8_t*>(kept.data()), kept.size()});
      r[std::string(name) + "_encoding"] = "base64";
    }
    if (s.total > s.kept.size()) r[std::string(name) + "_truncated"] = s.total - s.kept.size();
  }

  void finish(Run& run, const nlohmann::json& j) {
    if (run.done) return;
    run.done = true;
    run.result = j;
    if (mode_ == Mode::kText) {
      for (bool is_err : {false, true}) {
        Stream& s = is_err ? run.err : run.out;
        if (!s.line.empty()) print_line(run, is_err, s.line);
        s.line.clear();
      }
      if (j.contains("error") && j["error"].is_object())
        print_line(run, true, err_.paint(Colour::kRed, "rexec: " + field(j["error"], "error")));
      else if (j.value("exit_code", nlohmann::json()).is_number() && j["exit_code"] != 0)
        print_line(run, true, err_.paint(Colour::kRed, "exit " + j["exit_code"].dump()));
    }
    if (mode_ == Mode::kJson) {
      nlohmann::json r{{"target", run.target.id}, {"name", run.target.name}};
      for (const char* k : {"agent", "exit_code", "signal", "error", "duration_ms"})
        if (j.contains(k)) r[k] = j[k];
      if (!r.contains("exit_code")) r["exit_code"] = nullptr;
      put_stream(r, "stdout", run.out);
      put_stream(r, "stderr", run.err);
      std::printf("%s\n", r.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      std::fflush(stdout);
    }
  }

  Mode mode_;
  Style out_, err_;
  size_t width_ = 0;
  std::vector<Run> runs_;
};

}  // namespace

void add_exec_command(CLI::App& app, Context& ctx) {
  auto* exec = app.add_subcommand("exec", "Run a command on many machines and containers at once: exec TARGETS -- CMD ARGS...");
  exec->footer(
      "Targets: ids or names of machines (rexec agents) and terminals (rexec ls), --all, --kind, --label.\n"
      "Output is streamed as it arrives, each line after its target's name. Exit status: 0 when every\n"
      "target exits 0, else 1 + the number of targets that did not (offline, timeout, non-zero), at most 100.");
  struct Opts {
    TargetQuery query;
    std::vector<std::string> labels;
    std::string timeout = "30";
    int parallel = 16;
    bool json = false, json_stream = false;
  };
  auto o = std::make_shared<Opts>();
  exec->add_option("targets", o->query.names, "Machine or terminal ids or names");
  exec->add_flag("--all", o->query.all, "Every machine and running container terminal you can reach");
  exec->add_option("--kind", o->query.kind, "Only machines (agent) or container terminals (container)")
      ->check(CLI::IsMember({"agent", "container"}));
  exec->add_option("--label", o->labels, "KEY=VALUE: only targets with this label (repeatable: all must match)");
  exec->add_option("--timeout", o->timeout, "Per target, from its start: 90s, 5m, 1h (default 30s; at most 1h)");
  exec->add_option("-j,--parallel", o->parallel, "At most N targets run at once, the rest wait their turn (default 16; 1..256)")
      ->check(CLI::Range(1, 256));
  auto* json = exec->add_flag("--json", o->json, "One JSON object per target as it finishes: target, exit_code, stdout, stderr, duration_ms");
  auto* stream = exec->add_flag("--json-stream", o->json_stream, "The hub's stream as it comes: one JSON object per output chunk and per result");
  json->excludes(stream);
  exec->callback([&ctx, o] {
    if (ctx.command_argv.empty()) throw Failure("exec needs a command after --, e.g. rexec exec --all -- uname -a");
    for (const auto& l : o->labels) o->query.labels.insert(parse_label(l));
    int64_t timeout = parse_duration(o->timeout);
    if (timeout < 1 || timeout > 3600) throw Failure("bad --timeout '" + o->timeout + "': 1s to 1h");
    auto targets = select_targets(ctx.hub(), o->query);
    if (targets.size() > 256) throw Failure(std::to_string(targets.size()) + " targets: at most 256 per exec (narrow with --kind or --label)");
    nlohmann::json body{{"targets", nlohmann::json::array()}, {"argv", ctx.command_argv}, {"timeout_s", timeout},
                        {"parallel", o->parallel}};
    for (const auto& t : targets) body["targets"].push_back(t.id);

    Fanout fanout(ctx, targets, o->json_stream ? Mode::kJsonStream : o->json ? Mode::kJson : Mode::kText);
    InterruptGuard guard;
    bool completed = false;
    try {
      completed = ctx.hub().post_stream("/api/v1/exec", body, [&fanout](const nlohmann::json& j) { fanout.on_line(j); },
                                        [&guard] { return guard.raised(); });
    } catch (const HubError& e) {
      if (e.http_status() != 0 && e.http_status() != 200) throw;  // refused before anything ran
      fanout.finish_missing(e.what());
      completed = true;
    }
    if (!completed) {
      // The transfer was cut: the hub sees the client gone and kills what still runs.
      fanout.finish_missing("interrupted");
      fanout.summary();
      throw Failure("interrupted: the runs still going were cancelled on the hub", 130);
    }
    fanout.finish_missing("the hub's answer ended before this target's result");
    ctx.status = fanout.summary();
  });
}

}  // namespace rx::cli
