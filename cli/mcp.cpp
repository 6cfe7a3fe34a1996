#include "cli/output.h"
#include "cli/mcp.h"

#include <uv.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <limits>
#include <thread>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/targets.h"
#include "cli/viewer_link.h"
#include "protocol/base64.h"
#include "protocol/utf8.h"

namespace rx::cli {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// JSON-RPC 2.0 error codes (MCP uses them as they are).
constexpr int kParseError = -32700;
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;
constexpr int kInvalidParams = -32602;
constexpr int kInternalError = -32603;

// Revisions whose messages this server can speak; the first is ours. The older two lack
// structuredContent, outputSchema and titles, which are then left out.
constexpr const char* kRevisions[] = {kMcpProtocolVersion, "2025-03-26", "2024-11-05"};

constexpr auto kAttachTimeout = 15s;
constexpr auto kCloseGrace = 2s;
constexpr auto kStartingWait = 30s;
constexpr int kExecTimeoutDefault = 30;
constexpr int kReadTimeoutDefault = 10;

// Malformed parameters: answered as JSON-RPC -32602 (the caller's mistake, not the tool's).
class BadParams : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::optional<uint64_t> u64(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return std::nullopt;
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  int64_t v = it->get<int64_t>();
  return v < 0 ? std::nullopt : std::optional<uint64_t>(uint64_t(v));
}

std::optional<std::string> opt_string(const json& args, const char* key) {
  auto it = args.find(key);
  if (it == args.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) throw BadParams(std::string("`") + key + "` must be a string");
  return it->get<std::string>();
}

std::string need_string(const json& args, const char* key, const std::string& what) {
  auto v = opt_string(args, key);
  if (!v || v->empty()) throw BadParams("`" + std::string(key) + "` is required: " + what);
  return *v;
}

std::optional<int64_t> opt_int(const json& args, const char* key, int64_t lo, int64_t hi) {
  auto it = args.find(key);
  if (it == args.end() || it->is_null()) return std::nullopt;
  int64_t v = 0;
  if (it->is_number_integer()) {
    if (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) v = hi + 1;
    else v = it->get<int64_t>();
  } else if (it->is_number_float() && it->get<double>() == double(int64_t(it->get<double>()))) {
    v = int64_t(it->get<double>());  // 30.0 from a client that has only doubles
  } else {
    throw BadParams(std::string("`") + key + "` must be an integer");
  }
  if (v < lo || v > hi)
    throw BadParams(std::string("`") + key + "` must be " + std::to_string(lo) + ".." + std::to_string(hi));
  return v;
}

// A terminal as the tools show it: what an agent needs to pick one and talk about it.
json terminal_summary(const json& t) {
  json s = json::object();
  for (const char* key : {"id", "name", "kind", "status", "image", "agent_name", "exit_code", "reason", "gpus"}) {
    auto it = t.find(key);
    if (it != t.end() && !it->is_null()) s[key] = *it;
  }
  return s;
}

std::string terminal_label(const json& t) {
  std::string id = field(t, "id"), name = field(t, "name");
  return name.empty() || name == id ? id : name + " (" + id + ")";
}

bool takes_no_input(const std::string& status) { return status == "exited" || status == "lost" || status == "stopped"; }

// Leading bytes that continue a character begun before the cut (at most 3).
size_t utf8_orphans(std::string_view s) {
  size_t n = 0;
  while (n < 3 && n < s.size() && (uint8_t(s[n]) & 0xC0) == 0x80) ++n;
  return n;
}

// ---- tool result shapes ----

struct ToolResult {
  std::vector<std::string> texts;  // content blocks
  json structured;                 // null: none
  bool error = false;
};

ToolResult failed(const std::string& message) { return {{message}, nullptr, true}; }

// ---- one attach to a terminal, on a loop of its own ----

// A ViewerLink on a private uv loop, run until a hook calls finish(), the socket ends or the
// deadline passes. Hooks run on the loop (inside lws callbacks): they record and never throw.
class Attachment {
 public:
  Attachment(Profile hub, const std::string& terminal_id) {
    uv_loop_init(&loop_);
    uv_timer_init(&loop_, &deadline_);
    uv_timer_init(&loop_, &soon_);
    deadline_.data = this;
    soon_.data = this;
    ViewerLink::Handlers h;
    h.on_open = [this] {
      opened = true;
      guard([this] {
        if (on_open) on_open();
      });
    };
    h.on_output = [this](uint64_t offset, std::span<const uint8_t> bytes) {
      guard([&] {
        if (on_output && !done_) on_output(offset, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
      });
    };
    h.on_event = [this](const json& event) {
      guard([&] {
        if (on_event && !done_) on_event(event);
      });
    };
    h.on_closed = [this](int code, const std::string& reason, long http_status) {
      closed = true;
      close_code = code;
      close_reason = reason;
      this->http_status = http_status;
      done_ = true;
    };
    try {
      link_ = std::make_unique<ViewerLink>(&loop_, std::move(hub), terminal_id, std::move(h));
    } catch (...) {
      free_loop();
      throw;
    }
  }

  ~Attachment() {
    // Close the socket and let lws finish with it, then free the loop with nothing left on it.
    if (link_ && !closed) {
      link_->close();
      done_ = false;
      uv_timer_start(&deadline_, [](uv_timer_t* t) { static_cast<Attachment*>(t->data)->done_ = true; },
                     uint64_t(std::chrono::milliseconds(kCloseGrace).count()), 0);
      while (!closed && !done_ && uv_run(&loop_, UV_RUN_ONCE) != 0) {
      }
    }
    link_.reset();
    free_loop();
  }
  Attachment(const Attachment&) = delete;
  Attachment& operator=(const Attachment&) = delete;

  std::function<void()> on_open;
  std::function<void(uint64_t offset, std::string_view bytes)> on_output;
  std::function<void(const json& event)> on_event;

  // Until finish(), the socket's end, or `timeout` (then timed_out).
  void run(std::optional<uint64_t> since, std::chrono::milliseconds timeout) {
    uv_timer_start(&deadline_, [](uv_timer_t* t) {
      auto* self = static_cast<Attachment*>(t->data);
      self->timed_out = !self->done_;
      self->done_ = true;
    }, uint64_t(timeout.count()), 0);
    link_->open(since);
    while (!done_ && uv_run(&loop_, UV_RUN_ONCE) != 0) {
    }
    uv_timer_stop(&deadline_);
    uv_timer_stop(&soon_);
  }
  void finish() { done_ = true; }
  // finish() in `delay`, or sooner if an earlier call said so.
  void finish_after(std::chrono::milliseconds delay) {
    if (uv_is_active(reinterpret_cast<uv_handle_t*>(&soon_)) && uv_timer_get_due_in(&soon_) <= uint64_t(delay.count())) return;
    uv_timer_start(&soon_, [](uv_timer_t* t) { static_cast<Attachment*>(t->data)->done_ = true; }, uint64_t(delay.count()), 0);
  }
  ViewerLink& link() { return *link_; }

  bool opened = false, closed = false, timed_out = false;
  int close_code = 0;
  long http_status = 0;
  std::string close_reason;
  std::string hook_failure;  // an exception a hook threw (then the attach is over)

  // Why the attach did not open, as a HubError (a 401 makes the server read its config again).
  [[noreturn]] void fail_to_attach(const HubClient& hub, const std::string& label) const {
    std::string why = !hook_failure.empty() ? hook_failure
                      : closed              ? (close_reason.empty() ? "the connection closed" : close_reason)
                                            : "no answer within " + std::to_string(std::chrono::seconds(kAttachTimeout).count()) + " s";
    if (http_status == 401)
      throw HubError("the hub " + hub.profile().hub + " refused the token (401: " + why + "); log in again with: rexec login " +
                         hub.profile().hub,
                     401, "unauthorized");
    throw HubError("cannot attach to terminal " + label + ": " + why, http_status, "");
  }

 private:
  void free_loop() {
    uv_close(reinterpret_cast<uv_handle_t*>(&deadline_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&soon_), nullptr);
    for (int turn = 0; turn < 100 && uv_loop_alive(&loop_); ++turn) uv_run(&loop_, UV_RUN_NOWAIT);
    if (uv_loop_close(&loop_) == UV_EBUSY) {
      // Handles lws kept (it leaks its context rather than free it under them): closed, not run.
      uv_walk(&loop_, [](uv_handle_t* h, void*) { if (!uv_is_closing(h)) uv_close(h, nullptr); }, nullptr);
      uv_run(&loop_, UV_RUN_DEFAULT);
      uv_loop_close(&loop_);
    }
  }

  template <typename F>
  void guard(F&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      hook_failure = e.what();
      done_ = true;
    } catch (...) {
      hook_failure = "unexpected error";
      done_ = true;
    }
  }

  uv_loop_t loop_{};
  uv_timer_t deadline_{}, soon_{};
  bool done_ = false;
  std::unique_ptr<ViewerLink> link_;
};

// ---- the tools ----

struct Tool {
  const char* name;
  const char* title;
  const char* description;
  json input_schema;
  json output_schema;  // null: none
  json annotations;
};

std::vector<Tool> make_tools() {
  auto terminal_prop = json{{"type", "string"},
                            {"description", "The terminal's id (t_...) or name, as create_terminal or list_terminals gave it."}};
  std::vector<Tool> tools;
  tools.push_back(
      {"create_terminal", "Create a terminal",
       "Create a terminal the user owns: a fresh sandbox container from a Docker image (the default: rexec/debian:12), "
       "or a shell on one of the user's machines (give `agent`, not `image`). Returns the terminal as JSON "
       "(id, name, kind, status); the other tools take its id or name. Delete it with delete_terminal when done.",
       {{"type", "object"},
        {"properties",
         {{"image",
           {{"type", "string"},
            {"description",
             "Docker image of the container, e.g. rexec/debian:12 (bash, coreutils, apt) or rexec/busybox:latest "
             "(tiny). Default rexec/debian:12. Leave out when giving agent."}}},
          {"agent",
           {{"type", "string"},
            {"description", "Name or id of a machine running rexec-agent, to open a shell on it instead of a container."}}},
          {"name", {{"type", "string"}, {"description", "A name for the terminal, to refer to it by later."}}}}}},
       nullptr,
       {{"readOnlyHint", false}, {"destructiveHint", false}, {"idempotentHint", false}, {"openWorldHint", false}}});
  tools.push_back(
      {"exec", "Run a command",
       "Run a shell command (as sh -c COMMAND) to completion and return its exit code, stdout and stderr. It runs as a "
       "new process in the terminal's container or on its machine, not inside the terminal's interactive shell (no "
       "shared working directory or variables: use type and read for that). Each stream is cut to 64 KiB (head and "
       "tail kept) with truncated: true.",
       {{"type", "object"},
        {"properties",
         {{"terminal", {{"type", "string"}, {"description", "Id or name of the terminal to run in. Give this or target."}}},
          {"target", {{"type", "string"}, {"description", "Instead of terminal: the name or id of a machine (rexec agents)."}}},
          {"command", {{"type", "string"}, {"description", "The shell command, e.g. \"uname -a && ls /\"."}}},
          {"timeout_s",
           {{"type", "integer"}, {"minimum", 1}, {"maximum", 3600}, {"default", kExecTimeoutDefault},
            {"description", "Seconds before the command is killed (then it is an error, with the output so far)."}}}}},
        {"required", {"command"}}},
       {{"type", "object"},
        {"properties",
         {{"exit_code", {{"type", {"integer", "null"}}, {"description", "null when killed by a signal"}}},
          {"signal", {{"type", "string"}}},
          {"stdout", {{"type", "string"}}},
          {"stderr", {{"type", "string"}}},
          {"truncated", {{"type", "boolean"}, {"description", "some output is not shown (over 64 KiB a stream)"}}}}},
        {"required", {"exit_code", "stdout", "stderr", "truncated"}}},
       {{"readOnlyHint", false}, {"destructiveHint", true}, {"idempotentHint", false}, {"openWorldHint", false}}});
  tools.push_back(
      {"type", "Type into a terminal",
       "Send keystrokes to the terminal's interactive shell, exactly as given: end a command with \\n (Enter). "
       "Control keys as characters: \\u0003 is Ctrl-C, \\u0004 Ctrl-D, \\u001b Escape. At most 64 KiB a call. "
       "Use read afterwards to see what the shell printed.",
       {{"type", "object"},
        {"properties", {{"terminal", terminal_prop}, {"text", {{"type", "string"}, {"description", "The keystrokes."}}}}},
        {"required", {"terminal", "text"}}},
       nullptr,
       {{"readOnlyHint", false}, {"destructiveHint", true}, {"idempotentHint", false}, {"openWorldHint", false}}});
  tools.push_back(
      {"read", "Read a terminal's output",
       "Return the terminal's recent output (what its screen showed, escape sequences and all): the last max_bytes "
       "bytes, or only what came after offset `since` (the `end` of a previous read). With wait_for, waits up to "
       "timeout_s for that text to appear first (the echo of a typed command contains it too: type "
       "`echo DONE$((1+1))` and wait for DONE2).",
       {{"type", "object"},
        {"properties",
         {{"terminal", terminal_prop},
          {"max_bytes",
           {{"type", "integer"}, {"minimum", 1}, {"maximum", kMcpReadMax}, {"default", kMcpReadDefault},
            {"description", "At most this many bytes, the most recent ones."}}},
          {"since",
           {{"type", "integer"}, {"minimum", 0},
            {"description", "Only output from this stream offset on (the `end` a previous read returned)."}}},
          {"wait_for", {{"type", "string"}, {"description", "Wait until this text appears in the output read."}}},
          {"timeout_s",
           {{"type", "integer"}, {"minimum", 1}, {"maximum", 300}, {"default", kReadTimeoutDefault},
            {"description", "How long wait_for waits."}}}}},
        {"required", {"terminal"}}},
       {{"type", "object"},
        {"properties",
         {{"output", {{"type", "string"}}},
          {"start", {{"type", "integer"}, {"description", "stream offset of the first byte of output"}}},
          {"end", {{"type", "integer"}, {"description", "stream offset after the last byte: pass it as since next time"}}},
          {"status", {{"type", "string"}}},
          {"found", {{"type", "boolean"}, {"description", "with wait_for: whether the text appeared"}}},
          {"gap", {{"type", "boolean"}, {"description", "output between since and start is gone or was left out"}}}}},
        {"required", {"output", "start", "end", "status"}}},
       {{"readOnlyHint", true}, {"openWorldHint", false}}});
  tools.push_back({"list_terminals", "List terminals",
                   "List the user's terminals: id, name, kind (container or agent), status (starting, running, offline, "
                   "exited, lost, stopped) and image or machine.",
                   {{"type", "object"}, {"properties", json::object()}},
                   {{"type", "object"},
                    {"properties", {{"terminals", {{"type", "array"}, {"items", {{"type", "object"}}}}}}},
                    {"required", {"terminals"}}},
                   {{"readOnlyHint", true}, {"openWorldHint", false}}});
  tools.push_back({"delete_terminal", "Delete a terminal",
                   "Delete a terminal: its shell is ended and a container terminal's container removed.",
                   {{"type", "object"}, {"properties", {{"terminal", terminal_prop}}}, {"required", {"terminal"}}},
                   nullptr,
                   {{"readOnlyHint", false}, {"destructiveHint", true}, {"idempotentHint", true}, {"openWorldHint", false}}});
  return tools;
}

}  // namespace

size_t utf8_incomplete_tail(std::string_view s) {
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    uint8_t c = uint8_t(s[s.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back for its lead
    size_t need = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

ClippedText clip_output(std::string_view bytes, size_t limit) {
  if (bytes.size() <= limit) return {protocol::clean_utf8(bytes), false};
  size_t head_len = limit / 4;
  size_t tail_len = limit - head_len;
  std::string_view head = bytes.substr(0, head_len);
  head.remove_suffix(utf8_incomplete_tail(head));
  std::string_view tail = bytes.substr(bytes.size() - tail_len);
  tail.remove_prefix(utf8_orphans(tail));
  size_t cut = bytes.size() - head.size() - tail.size();
  std::string text = protocol::clean_utf8(head);
  text += "\n[... rexec: " + std::to_string(cut) + " bytes cut here ...]\n";
  text += protocol::clean_utf8(tail);
  return {std::move(text), true};
}

struct McpServer::Impl {
  Hub hub_access;
  std::string version;
  std::string revision = kMcpProtocolVersion;  // what initialize agreed on
  std::string secret;                          // the token, scrubbed from everything written
  std::vector<Tool> tools = make_tools();

  bool modern() const { return revision >= std::string("2025-06-18"); }

  HubClient& hub() {
    HubClient& h = hub_access.get();
    secret = h.profile().token;
    return h;
  }

  std::string write(const json& message) const {
    std::string line = message.dump(-1, ' ', false, json::error_handler_t::replace);
    if (secret.size() >= 8)
      for (size_t at; (at = line.find(secret)) != std::string::npos;) line.replace(at, secret.size(), "[token]");
    return line;
  }

  std::string reply(const json& id, json result) const { return write({{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}}); }
  std::string error(const json& id, int code, const std::string& message) const {
    return write({{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", code}, {"message", message}}}});
  }

  json initialize(const json& params) {
    std::string asked = field(params, "protocolVersion");
    revision = kMcpProtocolVersion;
    for (const char* r : kRevisions)
      if (asked == r) revision = r;
    json info{{"name", "rexec"}, {"version", version}};
    if (modern()) info["title"] = "Rexec";
    json result{{"protocolVersion", revision}, {"capabilities", {{"tools", json::object()}}}, {"serverInfo", info}};
    if (revision >= std::string("2025-03-26"))
      result["instructions"] =
          "Rexec gives you terminals: sandbox containers and shells on the user's machines, reached through their Rexec "
          "hub with their own token. create_terminal makes one; exec runs a command to completion (exit code, stdout, "
          "stderr); type and read drive its interactive shell; list_terminals and delete_terminal tidy up.";
    return result;
  }

  json list_tools() const {
    json list = json::array();
    for (const auto& t : tools) {
      json j{{"name", t.name}, {"description", t.description}, {"inputSchema", t.input_schema}};
      if (modern()) {
        j["title"] = t.title;
        if (!t.output_schema.is_null()) j["outputSchema"] = t.output_schema;
      }
      if (revision >= std::string("2025-03-26")) {
        json a = t.annotations;
        if (modern()) a["title"] = t.title;
        j["annotations"] = a;
      }
      list.push_back(std::move(j));
    }
    return {{"tools", list}};
  }

  json call_tool(const json& params) {
    auto name_it = params.find("name");
    if (name_it == params.end() || !name_it->is_string()) throw BadParams("tools/call needs params.name, a tool's name");
    std::string name = name_it->get<std::string>();
    json args = json::object();
    if (auto a = params.find("arguments"); a != params.end() && !a->is_null()) {
      if (!a->is_object()) throw BadParams("params.arguments must be an object");
      args = *a;
    }
    ToolResult r;
    try {
      if (name == "create_terminal") r = create_terminal(args);
      else if (name == "exec") r = exec(args);
      else if (name == "type") r = type(args);
      else if (name == "read") r = read(args);
      else if (name == "list_terminals") r = list_terminals();
      else if (name == "delete_terminal") r = delete_terminal(args);
      else throw BadParams("Unknown tool: " + name);
    } catch (const BadParams&) {
      throw;
    } catch (const HubError& e) {
      if (e.http_status() == 401 && hub_access.forget) hub_access.forget();
      r = failed(e.what());
    } catch (const Failure& e) {
      r = failed(e.what());
    } catch (const std::exception& e) {
      r = failed(std::string("rexec: ") + e.what());
    }
    json content = json::array();
    for (const auto& t : r.texts) content.push_back({{"type", "text"}, {"text", protocol::clean_utf8(t)}});
    json out{{"content", content}, {"isError", r.error}};
    if (!r.error && modern() && !r.structured.is_null()) out["structuredContent"] = r.structured;
    return out;
  }

  // ---- tools ----

  ToolResult create_terminal(const json& args) {
    auto image = opt_string(args, "image");
    auto agent = opt_string(args, "agent");
    auto name = opt_string(args, "name");
    if (image && agent) throw BadParams("give `image` (a container) or `agent` (a machine), not both");
    json body = agent ? json{{"kind", "agent"}, {"agent", *agent}}
                      : json{{"kind", "container"}, {"image", image && !image->empty() ? *image : "rexec/debian:12"}};
    if (name && !name->empty()) body["name"] = *name;
    HubClient& h = hub();
    json t = h.post("/api/v1/terminals", body);
    // A container starts in a moment; answer once it runs so the next call finds a shell.
    std::string id = field(t, "id");
    for (auto until = std::chrono::steady_clock::now() + kStartingWait;
         !id.empty() && field(t, "status") == "starting" && std::chrono::steady_clock::now() < until;) {
      std::this_thread::sleep_for(200ms);
      t = h.get("/api/v1/terminals/" + id);
    }
    json s = terminal_summary(t);
    return {{s.dump(2)}, s, false};
  }

  ToolResult exec(const json& args) {
    auto terminal = opt_string(args, "terminal");
    auto target = opt_string(args, "target");
    std::string command = need_string(args, "command", "the shell command to run");
    int64_t timeout = opt_int(args, "timeout_s", 1, 3600).value_or(kExecTimeoutDefault);
    if (bool(terminal) == bool(target) || (terminal && terminal->empty()) || (target && target->empty()))
      throw BadParams("give `terminal` (a terminal's id or name) or `target` (a machine), one of them");
    HubClient& h = hub();
    std::string where = target ? *target : field(find_terminal(h, *terminal), "id");
    json res = h.post("/api/v1/exec", {{"targets", {where}}, {"argv", {"sh", "-c", command}}, {"timeout_s", timeout}});
    auto results = res.find("results");
    if (results == res.end() || !results->is_array() || results->empty() || !results->front().is_object())
      throw Failure("the hub " + h.profile().hub + " answered the exec without a result");
    const json& r = results->front();

    bool truncated = false;
    auto stream = [&](const char* key) {
      std::string bytes = field(r, key);
      if (field(r, (std::string(key) + "_encoding").c_str()) == "base64") {
        auto decoded = protocol::base64_decode(bytes);
        if (decoded) bytes.assign(decoded->begin(), decoded->end());
      }
      if (u64(r, (std::string(key) + "_truncated").c_str()).value_or(0) > 0) truncated = true;
      auto clipped = clip_output(bytes, kMcpExecOutputLimit);
      truncated = truncated || clipped.cut;
      return clipped.text;
    };
    std::string out = stream("stdout"), err = stream("stderr");
    json exit_code = r.contains("exit_code") && r["exit_code"].is_number_integer() ? r["exit_code"] : json(nullptr);
    std::string signal = field(r, "signal");

    std::string text;
    if (exit_code.is_number_integer()) text = "exit code: " + std::to_string(exit_code.get<int64_t>()) + "\n";
    else if (!signal.empty()) text = "killed by signal " + signal + " (no exit code)\n";
    bool failed_run = r.contains("error") && r["error"].is_object();
    if (failed_run) {
      const json& e = r["error"];
      std::string code = field(e, "code");
      text = "exec on " + (target ? *target : *terminal) + " failed: " + field(e, "error") + (code.empty() ? "" : " (" + code + ")") +
             "\n" + text;
    }
    if (truncated) text += "(output truncated: some bytes are not shown)\n";
    text += out.empty() ? "--- stdout (empty) ---\n" : "--- stdout ---\n" + out + (out.back() == '\n' ? "" : "\n");
    text += err.empty() ? "--- stderr (empty) ---\n" : "--- stderr ---\n" + err + (err.back() == '\n' ? "" : "\n");

    json s{{"exit_code", exit_code}, {"stdout", out}, {"stderr", err}, {"truncated", truncated}};
    if (!signal.empty()) s["signal"] = signal;
    return {{text}, s, failed_run};
  }

  ToolResult type(const json& args) {
    std::string name = need_string(args, "terminal", "the id or name of the terminal to type into");
    auto text = opt_string(args, "text");
    if (!text || text->empty()) throw BadParams("`text` is required: the keystrokes to send");
    if (text->size() > kMcpTypeMax)
      throw BadParams("`text` is " + std::to_string(text->size()) + " bytes; at most " + std::to_string(kMcpTypeMax) +
                      " a call (send the rest in another)");
    HubClient& h = hub();
    json t = find_terminal(h, name);
    std::string label = terminal_label(t), status = field(t, "status");
    if (takes_no_input(status)) throw Failure("terminal " + label + " is " + status + ": it takes no input");

    // Attached at the end of the output: nothing old is replayed, and the echo of what we type
    // (or a refusal) tells us the hub has taken the input.
    Attachment a(h.profile(), field(t, "id"));
    bool sent = false;
    std::vector<std::string> refusals;
    a.on_open = [&] {
      std::string_view rest = *text;
      while (!rest.empty()) {
        size_t n = std::min<size_t>(rest.size(), 32 * 1024);
        if (!a.link().send_input(std::span(reinterpret_cast<const uint8_t*>(rest.data()), n))) break;
        rest.remove_prefix(n);
      }
      sent = rest.empty();
      if (!sent) a.finish();
      a.finish_after(1500ms);  // a shell that echoes nothing (a password prompt) still gets its keys
    };
    a.on_output = [&](uint64_t, std::string_view) {
      if (sent) a.finish_after(100ms);  // a refusal would have come before the echo
    };
    a.on_event = [&](const json& e) {
      if (field(e, "type") != "error") return;
      refusals.push_back(field(e, "message").empty() ? field(e, "code") : field(e, "message") + " (" + field(e, "code") + ")");
      a.finish();
    };
    auto since = u64(t, "output_offset");
    a.run(since ? since : std::optional<uint64_t>(std::numeric_limits<uint64_t>::max() / 2), kAttachTimeout);
    if (!a.opened) a.fail_to_attach(h, label);
    if (!refusals.empty()) {
      std::string m = "the hub did not take the input for terminal " + label + ": ";
      for (size_t i = 0; i < refusals.size(); ++i) m += (i ? "; " : "") + refusals[i];
      return failed(m);
    }
    if (!sent) throw Failure("the connection to terminal " + label + " closed before the input was sent");
    return {{"typed " + std::to_string(text->size()) + " bytes into terminal " + label}, nullptr, false};
  }

  ToolResult read(const json& args) {
    std::string name = need_string(args, "terminal", "the id or name of the terminal to read");
    uint64_t max = uint64_t(opt_int(args, "max_bytes", 1, kMcpReadMax).value_or(kMcpReadDefault));
    auto since_arg = opt_int(args, "since", 0, std::numeric_limits<int64_t>::max());
    auto wait_for = opt_string(args, "wait_for");
    if (wait_for && wait_for->empty()) wait_for.reset();
    int64_t timeout_s = opt_int(args, "timeout_s", 1, 300).value_or(kReadTimeoutDefault);
    HubClient& h = hub();
    json t = find_terminal(h, name);
    std::string label = terminal_label(t), status = field(t, "status");

    // Ask only for the window wanted: the last max_bytes of what there is now (the listing's
    // output_offset), or from `since` when that is nearer the end.
    auto known_end = u64(t, "output_offset");
    uint64_t from = since_arg ? uint64_t(*since_arg) : 0;
    if (known_end && *known_end > from + max && !wait_for) from = *known_end - max;
    if (known_end && *known_end > from + kMcpReadMax * 4) from = *known_end - kMcpReadMax * 4;

    std::string buf;  // output bytes from buf_start on
    uint64_t buf_start = from;
    bool have_start = false, found = false;
    std::optional<uint64_t> replay_end, found_at;
    const size_t keep = size_t(max) + (wait_for ? wait_for->size() : 0);
    Attachment a(h.profile(), field(t, "id"));
    auto check = [&] {
      if (wait_for) {
        size_t at = buf.find(*wait_for);
        if (at != std::string::npos) {
          found = true;
          found_at = buf_start + at;
          return a.finish();
        }
      } else if (replay_end && buf_start + buf.size() >= *replay_end) {
        return a.finish();  // all there was when we asked
      }
      if (buf.size() > keep + 64 * 1024) {  // bounded, however much streams past while we wait
        size_t drop = buf.size() - keep;
        buf.erase(0, drop);
        buf_start += drop;
      }
    };
    a.on_event = [&](const json& e) {
      std::string type = field(e, "type");
      if (type == "replay") {
        replay_end = u64(e, "end");
        check();
      } else if (type == "status") {
        status = field(e, "status");
      }
    };
    a.on_output = [&](uint64_t offset, std::string_view bytes) {
      if (!have_start) {  // past `from` when the ring no longer holds it (a gap event said so)
        buf_start = offset;
        have_start = true;
      }
      uint64_t next = buf_start + buf.size();
      if (offset > next) {  // bytes skipped: keep what follows on its own
        buf.clear();
        buf_start = next = offset;
      }
      if (offset + bytes.size() <= next) return;  // had these already
      bytes.remove_prefix(size_t(next - offset));
      buf.append(bytes);
      check();
    };
    a.run(from, wait_for ? std::chrono::milliseconds(std::chrono::seconds(timeout_s)) : std::chrono::milliseconds(kAttachTimeout));
    if (!a.opened) a.fail_to_attach(h, label);
    if (!a.hook_failure.empty()) throw Failure("reading terminal " + label + ": " + a.hook_failure);

    // The window to show: the last `max` bytes, or `max` from the match when that is older.
    uint64_t end = buf_start + buf.size();
    uint64_t start = end - std::min<uint64_t>(end - buf_start, max);
    if (found_at && *found_at < start) {
      start = *found_at;
      end = std::min(end, start + max);
    }
    bool gap = since_arg && start > uint64_t(*since_arg);
    std::string_view window(buf.data() + (start - buf_start), size_t(end - start));
    size_t orphans = start > 0 ? utf8_orphans(window) : 0;
    window.remove_prefix(orphans);
    start += orphans;
    if (!takes_no_input(status)) {  // a character still being written comes whole next time
      size_t tail = utf8_incomplete_tail(window);
      window.remove_suffix(tail);
      end -= tail;
    }
    std::string output = protocol::clean_utf8(window);

    std::string note = "[rexec: output bytes " + std::to_string(start) + ".." + std::to_string(end) + " of terminal " +
                       label + " (" + status + "); read with since=" + std::to_string(end) + " for what comes next";
    if (gap) note += "; earlier output is not shown";
    if (wait_for && !found) note += "; \"" + *wait_for + "\" did not appear within " + std::to_string(timeout_s) + " s";
    else if (!wait_for && a.timed_out) note += "; the hub sent less than it had within the time allowed";
    note += "]";
    json s{{"output", output}, {"start", start}, {"end", end}, {"status", status}};
    if (wait_for) s["found"] = found;
    if (gap) s["gap"] = true;
    return {{output, note}, s, false};
  }

  ToolResult list_terminals() {
    json list = json::array();
    for (const auto& t : hub().get("/api/v1/terminals").value("terminals", json::array())) list.push_back(terminal_summary(t));
    json s{{"terminals", list}};
    return {{list.empty() ? std::string("no terminals (create_terminal makes one)") : s.dump(2)}, s, false};
  }

  ToolResult delete_terminal(const json& args) {
    std::string name = need_string(args, "terminal", "the id or name of the terminal to delete");
    HubClient& h = hub();
    json t = find_terminal(h, name);
    std::string id = field(t, "id");
    h.del("/api/v1/terminals/" + id);
    return {{"deleted terminal " + terminal_label(t)}, json{{"id", id}, {"deleted", true}}, false};
  }

  // ---- JSON-RPC ----

  std::optional<std::string> handle(std::string_view line) {
    json id = nullptr;
    try {
      json msg = json::parse(line.begin(), line.end(), nullptr, false);
      if (msg.is_discarded()) return error(nullptr, kParseError, "Parse error: the line is not JSON");
      if (!msg.is_object())
        return error(nullptr, kInvalidRequest, "Invalid Request: expected one JSON-RPC message, an object (no batches)");
      auto id_it = msg.find("id");
      bool has_id = id_it != msg.end();
      bool id_ok = has_id && (id_it->is_string() || id_it->is_number());
      if (id_ok) id = *id_it;
      auto method = msg.find("method");
      if (method == msg.end()) {
        if (msg.contains("result") || msg.contains("error")) return std::nullopt;  // we send no requests
        return error(id, kInvalidRequest, "Invalid Request: no method");
      }
      auto jsonrpc = msg.find("jsonrpc");
      if (jsonrpc == msg.end() || *jsonrpc != "2.0") return error(id, kInvalidRequest, "Invalid Request: jsonrpc must be \"2.0\"");
      if (!method->is_string()) return error(id, kInvalidRequest, "Invalid Request: method must be a string");
      if (has_id && !id_ok) return error(nullptr, kInvalidRequest, "Invalid Request: id must be a string or a number");
      std::string m = method->get<std::string>();
      if (!has_id) return std::nullopt;  // notifications/initialized, notifications/cancelled...: nothing to answer
      json params = json::object();
      if (auto p = msg.find("params"); p != msg.end() && !p->is_null()) {
        if (!p->is_object()) return error(id, kInvalidParams, "Invalid params: params must be an object");
        params = *p;
      }
      if (m == "initialize") return reply(id, initialize(params));
      if (m == "ping") return reply(id, json::object());
      if (m == "tools/list") return reply(id, list_tools());
      if (m == "tools/call") return reply(id, call_tool(params));
      return error(id, kMethodNotFound, "Method not found: " + m);
    } catch (const BadParams& e) {
      return error(id, kInvalidParams, std::string("Invalid params: ") + e.what());
    } catch (const std::exception& e) {
      return error(id, kInternalError, std::string("Internal error: ") + e.what());
    }
  }
};

McpServer::McpServer(Hub hub, std::string version) : impl_(std::make_unique<Impl>()) {
  impl_->hub_access = std::move(hub);
  impl_->version = std::move(version);
}

McpServer::~McpServer() = default;

std::optional<std::string> McpServer::handle(std::string_view line) {
  try {
    return impl_->handle(line);
  } catch (...) {  // only an allocation failure gets here
    return std::nullopt;
  }
}

int McpServer::serve(int in_fd, int out_fd) {
  auto write_all = [out_fd](std::string text) {
    text += '\n';
    for (size_t done = 0; done < text.size();) {
      ssize_t n = ::write(out_fd, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      done += size_t(n);
    }
    return true;
  };
  std::string buf;
  bool skipping = false;  // inside a line over kMcpMaxLine, answered already
  char chunk[65536];
  for (;;) {
    ssize_t n = ::read(in_fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buf.append(chunk, size_t(n));
    size_t start = 0;
    for (size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1) {
      if (skipping) {
        skipping = false;
        continue;
      }
      std::string_view line(buf.data() + start, nl - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
      if (auto out = handle(line); out && !write_all(std::move(*out))) return 1;
    }
    buf.erase(0, start);
    if (buf.size() > kMcpMaxLine) {
      if (!skipping && !write_all(impl_->error(nullptr, kParseError, "Parse error: a message over " +
                                                                   std::to_string(kMcpMaxLine) + " bytes")))
        return 1;
      skipping = true;
      buf.clear();
    }
  }
  return 0;
}

}  // namespace rx::cli
