// The tools that are REST calls to the hub (create_terminal, exec, list_terminals, delete_terminal),
// the argument readers all tools use, and output clipping. Apart from type/read, which attach.
#include "cli/mcp_impl.h"

#include <chrono>
#include <cstdint>
#include <limits>
#include <thread>

#include "cli/output.h"
#include "cli/targets.h"
#include "protocol/base64.h"
#include "protocol/utf8.h"

namespace rx::cli {

using namespace mcp_detail;
using namespace std::chrono_literals;

namespace {

constexpr auto kStartingWait = 30s;

// A terminal as the tools show it: what an agent needs to pick one and talk about it.
json terminal_summary(const json& t) {
  json s = json::object();
  for (const char* key : {"id", "name", "kind", "status", "image", "agent_name", "exit_code", "reason", "gpus"}) {
    auto it = t.find(key);
    if (it != t.end() && !it->is_null()) s[key] = *it;
  }
  return s;
}

}  // namespace

namespace mcp_detail {

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

std::string terminal_label(const json& t) {
  std::string id = field(t, "id"), name = field(t, "name");
  return name.empty() || name == id ? id : name + " (" + id + ")";
}

// Leading bytes that continue a character begun before the cut (at most 3).
size_t utf8_orphans(std::string_view s) {
  size_t n = 0;
  while (n < 3 && n < s.size() && (uint8_t(s[n]) & 0xC0) == 0x80) ++n;
  return n;
}

}  // namespace mcp_detail

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

ToolResult McpServer::Impl::create_terminal(const json& args) {
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

ToolResult McpServer::Impl::exec(const json& args) {
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

ToolResult McpServer::Impl::list_terminals() {
  json list = json::array();
  for (const auto& t : hub().get("/api/v1/terminals").value("terminals", json::array())) list.push_back(terminal_summary(t));
  json s{{"terminals", list}};
  return {{list.empty() ? std::string("no terminals (create_terminal makes one)") : s.dump(2)}, s, false};
}

ToolResult McpServer::Impl::delete_terminal(const json& args) {
  std::string name = need_string(args, "terminal", "the id or name of the terminal to delete");
  HubClient& h = hub();
  json t = find_terminal(h, name);
  std::string id = field(t, "id");
  h.del("/api/v1/terminals/" + id);
  return {{"deleted terminal " + terminal_label(t)}, json{{"id", id}, {"deleted", true}}, false};
}

}  // namespace rx::cli
