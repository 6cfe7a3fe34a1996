#include "hub/channel/exec_fanout.h"

#include <algorithm>

#include "hub/base/json_text.h"
#include "hub/base/timer.h"
#include "hub/channel/frame_errors.h"
#include "protocol/base64.h"
#include "protocol/limits.h"
#include "protocol/log_line.h"
#include "protocol/viewer.h"

namespace rx::hub {

using namespace protocol;

namespace {

// Exec output as JSON: text when it is UTF-8, else base64 (the response says which).
void put_output(nlohmann::json& out, const std::string& name, const std::string& bytes, uint64_t total) {
  if (viewer::valid_utf8(bytes)) {
    out[name] = bytes;
  } else {
    out[name] = base64_encode(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
    out[name + "_encoding"] = "base64";
  }
  if (total > bytes.size()) out[name + "_truncated"] = total - bytes.size();
}

}  // namespace

struct ExecFanout::Target {
  Run* run = nullptr;
  std::string target;
  std::string agent_id;
  std::string agent_name;  // for the agent_offline message of a target that waited its turn
  uint32_t channel = 0;  // 0 until its OPEN went out
  std::string out, err;  // kept for the plain answer (nothing when streamed)
  uint64_t out_total = 0, err_total = 0;
  ReceiveCursor out_cursor{kDefaultWindow}, err_cursor{kDefaultWindow};
  Utf8Carry out_carry, err_carry;  // streamed: a character split across DATA frames
  std::optional<int32_t> exit_code;
  std::string signal;
  std::optional<Error> error;
  bool started = false;  // its OPEN went out (or it was refused): no longer waiting its turn
  bool done = false;
  std::unique_ptr<Timer> timeout;  // from its OPEN: the per-target timeout_s
  // Hub-measured: from the OPEN (or the refusal) to the end.
  std::chrono::steady_clock::time_point opened = std::chrono::steady_clock::now(), ended = opened;
};

struct ExecFanout::Run {
  std::shared_ptr<ExecClient> client;
  std::string user_id;
  bool streaming = false;
  bool held = false;       // streamed: ACKs held back while the client is behind
  bool cancelled = false;  // the client went away
  bool opening = true;     // start() has not finished opening: the run cannot be complete yet
  bool starting = false;   // inside start_targets (a send may finish a target re-entrantly)
  size_t kept = 0;  // output bytes kept over all targets
  ExecRequest request;  // what every target runs (the waiting ones open from it later)
  bool fits = true;     // the request fits an OPEN frame
  size_t running = 0;   // started and not done
  std::vector<std::unique_ptr<Target>> targets;
  bool replied = false;
};

ExecFanout::ExecFanout(Store& store, uv_loop_t* loop, AgentRegistry& agents)
    : store_(store), loop_(loop), agents_(agents) {}
ExecFanout::~ExecFanout() = default;

Status ExecFanout::open_ok(const ExecRequest& r) {
  return as_request_error(check_limits(Open{1, ChannelKind::kExec, r.argv, r.env, 80, 24, kDefaultWindow}), "argv and env");
}

bool ExecFanout::on_data(AgentLink& link, const DataView& d) {
  auto it = targets_.find({link.agent().id, d.channel});
  if (it == targets_.end()) return false;
  on_target_data(link, *it->second, d);
  return true;
}

bool ExecFanout::on_frame(AgentLink& link, uint32_t channel, const Frame& frame) {
  auto it = targets_.find({link.agent().id, channel});
  if (it == targets_.end()) return false;
  on_target_frame(*it->second, frame);
  return true;
}

void ExecFanout::agent_gone(const std::string& agent_id) {
  // Runs on this agent cannot finish now.
  std::vector<Target*> failed;
  for (auto& [key, target] : targets_) {
    if (key.first != agent_id || target->done) continue;
    target->error = make_error("agent_offline", "the agent disconnected before the command finished");
    failed.push_back(target);
  }
  for (auto* t : failed) finish_target(*t);
}

ExecFanout::Handle ExecFanout::add(std::vector<AgentRecord> targets, const ExecRequest& request,
                                    std::shared_ptr<ExecClient> client) {
  std::erase_if(runs_, [](const auto& r) { return r->replied; });
  auto run = std::make_shared<Run>();
  run->client = std::move(client);
  run->user_id = request.user_id;
  run->streaming = request.stream;
  run->request = request;
  run->fits = open_ok(request).ok();
  // Every target is listed before any opens: a cancel meanwhile must see them all, and the
  // answer keeps the request's order.
  for (size_t i = 0; i < targets.size(); ++i) {
    auto target = std::make_unique<Target>();
    target->run = run.get();
    target->target = request.targets[i];
    target->agent_id = targets[i].id;
    target->agent_name = targets[i].name;
    run->targets.push_back(std::move(target));
  }
  runs_.push_back(run);
  return run;
}

void ExecFanout::start(const Handle& handle) {
  auto run = handle.lock();
  if (!run || !run->opening) return;
  start_targets(*run);
  run->opening = false;
  maybe_reply(*run);
}

void ExecFanout::cancel(const Handle& handle) {
  if (auto run = handle.lock()) cancel_run(*run);
}

void ExecFanout::resume(const Handle& handle) {
  if (auto run = handle.lock()) resume_run(*run);
}

void ExecFanout::start_targets(Run& run) {
  if (run.starting) return;  // the loop below is already at it, and re-checks the count
  run.starting = true;
  size_t limit = run.request.parallel > 0 ? size_t(run.request.parallel) : run.targets.size();
  for (auto& target : run.targets) {
    if (run.running >= limit) break;
    Target& t = *target;
    if (t.started) continue;
    t.started = true;
    if (open_target(t)) continue;
    // Refused at once: what was taken for it ends now, and a stream says so now.
    if (run.request.on_target_done) run.request.on_target_done(t.agent_id);
    emit(run, json_text(result(t)) + "\n");
  }
  run.starting = false;
}

bool ExecFanout::open_target(Target& t) {
  Run& run = *t.run;
  const ExecRequest& request = run.request;
  AgentLink* link = agents_.link(t.agent_id);
  if (run.cancelled) t.error = make_error("cancelled", "the client went away");
  else if (!run.fits) t.error = open_ok(request).error();
  else if (!link) t.error = make_error("agent_offline", "agent " + t.agent_name + " is not connected");
  else if (auto ch = store_.next_channel(t.agent_id); !ch) t.error = ch.error();
  else t.channel = *ch;
  t.opened = t.ended = std::chrono::steady_clock::now();
  if (t.error) {
    t.done = true;
    return false;
  }
  ++run.running;
  targets_[{t.agent_id, t.channel}] = &t;
  Open open{t.channel, ChannelKind::kExec, request.argv, request.env, 80, 24, kDefaultWindow};
  if (auto e = request.target_env.find(t.agent_id); e != request.target_env.end())
    for (const auto& [k, v] : e->second) open.env[k] = v;
  if (auto a = request.target_as.find(t.agent_id); a != request.target_as.end()) {
    open.user = a->second.user;
    open.account = a->second.account;
  }
  // Made before the send: a send that closes the link finishes the target, which stops it.
  t.timeout = std::make_unique<Timer>(loop_, [this, &t] {
    if (t.done) return;
    t.error = make_error("timeout", "the command did not finish within the timeout");
    kill_target(t, "exec timed out");
    finish_target(t);
  });
  t.timeout->start(uint64_t(request.timeout_s) * 1000);
  // A send that closes the link finishes the target (and unregisters the link): `link` stays
  // valid meanwhile, its session is freed later.
  link->send(open);
  if (!t.done) link->send(Data{t.channel, Stream::kInput, 0, {}});  // no stdin: close it at once
  return true;
}

void ExecFanout::on_target_data(AgentLink& link, Target& t, const DataView& d) {
  if (d.stream == Stream::kInput) return;
  bool is_err = d.stream == Stream::kStderr;
  auto& cursor = is_err ? t.err_cursor : t.out_cursor;
  auto& buf = is_err ? t.err : t.out;
  auto& total = is_err ? t.err_total : t.out_total;
  auto accept = cursor.on_data(d.offset, d.bytes.size());
  cursor.on_consumed(cursor.received());
  if (accept.skip < d.bytes.size()) {
    size_t n = d.bytes.size() - accept.skip;
    const char* bytes = reinterpret_cast<const char*>(d.bytes.data() + accept.skip);
    total += n;
    if (t.run->streaming) {
      // Out now; nothing kept. The write may find the client gone and cancel this very target.
      std::string text = (is_err ? t.err_carry : t.out_carry).take(std::string_view(bytes, n));
      if (!text.empty()) emit(*t.run, chunk_line(t.target, t.agent_id, is_err, text));
      if (t.done) return;
    } else {
      // Kept: what fits under every cap (stream, request, user); the rest is only counted.
      size_t& user_kept = kept_by_user_[t.run->user_id];
      size_t room = std::min({kExecStreamCap - std::min(kExecStreamCap, buf.size()),
                              kExecRequestCap - std::min(kExecRequestCap, t.run->kept),
                              kExecUserCap - std::min(kExecUserCap, user_kept)});
      size_t keep = std::min(n, room);
      buf.append(bytes, keep);
      t.run->kept += keep;
      user_kept += keep;
    }
  }
  // Plain: nobody waits on exec output, ACKed as it arrives. Streamed: not while the client is
  // behind (resume_run ACKs it all once it caught up), so the agent stops reading the command.
  if (t.run->held) return;
  if (auto ack = cursor.take_ack(true)) link.send(Ack{t.channel, d.stream, *ack});
}

void ExecFanout::on_target_frame(Target& t, const Frame& frame) {
  if (auto* e = std::get_if<Exit>(&frame)) {
    t.exit_code = e->code;
    t.signal = e->signal;
  } else if (auto* err = std::get_if<ErrorFrame>(&frame)) {
    t.error = agent_error(*err);
  } else if (std::holds_alternative<Close>(frame)) {
    finish_target(t);  // CLOSE follows the last DATA and EXIT: the run is complete
  }
}

void ExecFanout::finish_target(Target& t) {
  if (t.done) return;
  bool was_running = t.started;  // else it was still waiting its turn (a cancel ends it too)
  t.done = true;
  t.started = true;
  t.ended = std::chrono::steady_clock::now();
  if (t.timeout) t.timeout->stop();
  if (was_running) {
    --t.run->running;
    targets_.erase({t.agent_id, t.channel});
  } else {
    t.opened = t.ended;  // it never ran
  }
  if (t.run->streaming) {
    // An output that ended inside a character: those bytes go as they are (base64).
    for (bool is_err : {false, true})
      if (auto rest = (is_err ? t.err_carry : t.out_carry).rest(); !rest.empty())
        emit(*t.run, chunk_line(t.target, t.agent_id, is_err, rest));
    emit(*t.run, json_text(result(t)) + "\n");
  }
  if (t.run->request.on_target_done) t.run->request.on_target_done(t.agent_id);
  if (!t.run->cancelled) start_targets(*t.run);  // the next waiting target takes its place
  maybe_reply(*t.run);
}

void ExecFanout::kill_target(Target& t, const std::string& why) {
  AgentLink* link = agents_.link(t.agent_id);
  if (t.done || t.channel == 0 || !link) return;
  link->send(Signal{t.channel, "KILL"});
  link->send(Close{t.channel, why});
}

void ExecFanout::cancel_run(Run& run) {
  if (run.replied || run.cancelled) return;
  run.cancelled = true;
  size_t running = 0;
  for (auto& t : run.targets) {
    if (t->done) continue;
    ++running;
    t->error = make_error("cancelled", "the client went away");
    kill_target(*t, "exec cancelled");
    finish_target(*t);
  }
  log("info", "exec.cancelled", {{"user", run.user_id}, {"running", std::to_string(running)}});
}

void ExecFanout::emit(Run& run, const std::string& line) {
  if (!run.streaming || run.client->gone()) return;
  run.client->line(line);  // may drain at once (on_drain) or find the client gone (on_gone)
  if (run.client->backlog() > kExecStreamBacklog) run.held = true;
}

void ExecFanout::ack(Target& t) {
  AgentLink* link = agents_.link(t.agent_id);
  if (t.done || !link) return;
  for (Stream s : {Stream::kOutput, Stream::kStderr})
    if (auto ack = (s == Stream::kStderr ? t.err_cursor : t.out_cursor).take_ack(true))
      link->send(Ack{t.channel, s, *ack});
}

void ExecFanout::resume_run(Run& run) {
  if (!run.held) return;
  run.held = false;
  for (auto& t : run.targets) ack(*t);
}

nlohmann::json ExecFanout::result(const Target& t) {
  nlohmann::json r{{"target", t.target}, {"agent", t.agent_id}};
  r["exit_code"] = t.exit_code ? nlohmann::json(*t.exit_code) : nlohmann::json(nullptr);
  if (!t.signal.empty()) r["signal"] = t.signal;
  if (t.error) r["error"] = {{"code", t.error->code}, {"error", t.error->message}};
  r["duration_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(t.ended - t.opened).count();
  if (t.run->streaming) {
    r["stdout_bytes"] = t.out_total;
    r["stderr_bytes"] = t.err_total;
  }
  return r;
}

void ExecFanout::maybe_reply(Run& run) {
  if (run.replied || run.opening) return;
  for (const auto& t : run.targets)
    if (!t->done) return;
  run.replied = true;  // the run itself is freed by the next exec() (never from its own callbacks)
  if (run.streaming) return run.client->done(nullptr);  // every result line is out already
  nlohmann::json results = nlohmann::json::array();
  for (const auto& t : run.targets) {
    nlohmann::json r = result(*t);
    put_output(r, "stdout", t->out, t->out_total);
    put_output(r, "stderr", t->err, t->err_total);
    results.push_back(std::move(r));
  }
  // The output is in the response now: the user's share of the cap is free again.
  if (auto it = kept_by_user_.find(run.user_id); it != kept_by_user_.end()) {
    it->second -= std::min(it->second, run.kept);
    if (it->second == 0) kept_by_user_.erase(it);
  }
  run.client->done({{"results", results}});
  // Its kept output is not needed any more (the response holds it); only the shell of the run waits.
  for (auto& t : run.targets) {
    std::string().swap(t->out);
    std::string().swap(t->err);
  }
}

}  // namespace rx::hub
