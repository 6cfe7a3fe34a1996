// rexec mcp: the JSON-RPC layer on its own (McpServer::handle, no hub), then the real binary
// driven over pipes by a scripted MCP client against a real hub and agent: initialize, the tool
// list, a terminal created, exec'd in, typed into and read, listed and deleted; tool errors for a
// bad token, an unreachable hub and an unknown terminal, with the server answering on after each;
// and (with Docker) the same on a container terminal.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/mcp.h"
#include "protocol/utf8.h"
#include "tests/cli/cli_support.h"
#include "tests/integration/container_support.h"
#include "tests/integration/relay_support.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const std::set<std::string> kTools = {"create_terminal", "exec", "type", "read", "list_terminals", "delete_terminal"};

// ---- the protocol layer, without a hub ----

cli::McpServer offline_server() {
  cli::McpServer::Hub hub{[]() -> cli::HubClient& { throw cli::Failure("no hub configured: run rexec login URL"); }, [] {}};
  return cli::McpServer(std::move(hub), "0.0.0-test");
}

json answer(cli::McpServer& s, const std::string& line) {
  auto out = s.handle(line);
  if (!out) return nullptr;
  EXPECT_EQ(out->find('\n'), std::string::npos) << *out;
  return json::parse(*out);
}

TEST(McpProtocol, InitializeEchoesARevisionItSpeaksElseItsOwn) {
  auto s = offline_server();
  auto r = answer(s, R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})");
  ASSERT_TRUE(r.contains("result")) << r;
  EXPECT_EQ(r["id"], 1);
  EXPECT_EQ(r["result"]["protocolVersion"], "2025-06-18");
  EXPECT_EQ(r["result"]["capabilities"], json({{"tools", json::object()}}));
  EXPECT_EQ(r["result"]["serverInfo"]["name"], "rexec");
  EXPECT_EQ(r["result"]["serverInfo"]["version"], "0.0.0-test");

  r = answer(s, R"({"jsonrpc":"2.0","id":"a","method":"initialize","params":{"protocolVersion":"2025-03-26"}})");
  EXPECT_EQ(r["id"], "a");
  EXPECT_EQ(r["result"]["protocolVersion"], "2025-03-26");

  r = answer(s, R"({"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"1999-01-01"}})");
  EXPECT_EQ(r["result"]["protocolVersion"], cli::kMcpProtocolVersion);
}

TEST(McpProtocol, ErrorsFollowJsonRpc) {
  auto s = offline_server();
  auto r = answer(s, "{not json");
  EXPECT_EQ(r["error"]["code"], -32700) << r;
  EXPECT_TRUE(r["id"].is_null()) << r;
  EXPECT_EQ(r["jsonrpc"], "2.0");

  r = answer(s, R"({"jsonrpc":"2.0","id":7,"method":"resources/list"})");
  EXPECT_EQ(r["error"]["code"], -32601) << r;
  EXPECT_EQ(r["id"], 7);

  r = answer(s, R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])");
  EXPECT_EQ(r["error"]["code"], -32600) << r;
  r = answer(s, R"({"id":3,"method":"ping"})");
  EXPECT_EQ(r["error"]["code"], -32600) << r;
  EXPECT_EQ(r["id"], 3);

  r = answer(s, R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":[1]})");
  EXPECT_EQ(r["error"]["code"], -32602) << r;
  r = answer(s, R"({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"no_such_tool","arguments":{}}})");
  EXPECT_EQ(r["error"]["code"], -32602) << r;
  EXPECT_NE(r["error"]["message"].get<std::string>().find("no_such_tool"), std::string::npos) << r;
  r = answer(s, R"({"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"exec","arguments":{"terminal":"x"}}})");
  EXPECT_EQ(r["error"]["code"], -32602) << "exec without a command: " << r;
  r = answer(s, R"({"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"read","arguments":{"terminal":"x","max_bytes":"lots"}}})");
  EXPECT_EQ(r["error"]["code"], -32602) << r;

  // Notifications and responses get no answer; ping gets an empty result.
  EXPECT_FALSE(s.handle(R"({"jsonrpc":"2.0","method":"notifications/initialized"})"));
  EXPECT_FALSE(s.handle(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}})"));
  EXPECT_FALSE(s.handle(R"({"jsonrpc":"2.0","id":99,"result":{}})"));
  r = answer(s, R"({"jsonrpc":"2.0","id":9,"method":"ping"})");
  EXPECT_EQ(r["result"], json::object()) << r;
}

TEST(McpProtocol, ToolsListHasTheSixToolsWithSchemas) {
  auto s = offline_server();
  auto r = answer(s, R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})");
  ASSERT_TRUE(r["result"]["tools"].is_array()) << r;
  std::set<std::string> names;
  for (const auto& t : r["result"]["tools"]) {
    names.insert(t["name"].get<std::string>());
    EXPECT_FALSE(t["description"].get<std::string>().empty()) << t;
    EXPECT_EQ(t["inputSchema"]["type"], "object") << t;
    EXPECT_TRUE(t["inputSchema"]["properties"].is_object()) << t;
  }
  EXPECT_EQ(names, kTools);
  for (const auto& t : r["result"]["tools"]) {
    std::string n = t["name"];
    if (n == "exec") {
      EXPECT_EQ(t["inputSchema"]["required"], json({"command"})) << t;
      EXPECT_EQ(t["outputSchema"]["required"], json({"exit_code", "stdout", "stderr", "truncated"})) << t;
    }
    if (n == "type") {
      EXPECT_EQ(t["inputSchema"]["required"], json({"terminal", "text"})) << t;
    }
    if (n == "read" || n == "delete_terminal") {
      EXPECT_EQ(t["inputSchema"]["required"], json({"terminal"})) << t;
    }
  }
}

TEST(McpProtocol, AToolThatCannotReachAHubIsAToolErrorNotAJsonRpcError) {
  auto s = offline_server();
  auto r = answer(s, R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_terminals","arguments":{}}})");
  ASSERT_TRUE(r.contains("result")) << r;
  EXPECT_EQ(r["result"]["isError"], true);
  EXPECT_EQ(r["result"]["content"][0]["type"], "text");
  EXPECT_NE(r["result"]["content"][0]["text"].get<std::string>().find("rexec login"), std::string::npos) << r;
  EXPECT_FALSE(r["result"].contains("structuredContent")) << r;
}

TEST(McpProtocol, ClippedOutputKeepsHeadAndTailAndIsValidUtf8) {
  auto small = cli::clip_output("hi\n", 100);
  EXPECT_EQ(small.text, "hi\n");
  EXPECT_FALSE(small.cut);

  std::string big = "HEAD" + std::string(10000, 'x') + "TAIL";
  auto c = cli::clip_output(big, 1000);
  EXPECT_TRUE(c.cut);
  EXPECT_TRUE(c.text.starts_with("HEAD")) << c.text.substr(0, 20);
  EXPECT_TRUE(c.text.ends_with("TAIL"));
  EXPECT_LT(c.text.size(), 1100u);
  EXPECT_NE(c.text.find("bytes cut"), std::string::npos);

  // "é" (2 bytes) everywhere: whatever the cut points, no character is split or replaced.
  std::string accents;
  for (int i = 0; i < 3000; ++i) accents += "\xC3\xA9";
  for (size_t limit : {999u, 1000u, 1001u}) {
    auto a = cli::clip_output(accents, limit);
    EXPECT_EQ(a.text.find("\xEF\xBF\xBD"), std::string::npos) << limit;  // no U+FFFD
    EXPECT_EQ(protocol::clean_utf8(a.text), a.text);
  }
  // Bytes that are not UTF-8 at all come out as U+FFFD, never as invalid JSON text.
  EXPECT_EQ(cli::clip_output("a\xFF" "b", 100).text, "a\xEF\xBF\xBD" "b");
}

TEST(McpProtocol, IncompleteUtf8Tails) {
  EXPECT_EQ(cli::utf8_incomplete_tail(""), 0u);
  EXPECT_EQ(cli::utf8_incomplete_tail("abc"), 0u);
  EXPECT_EQ(cli::utf8_incomplete_tail("a\xC3"), 1u);
  EXPECT_EQ(cli::utf8_incomplete_tail("a\xC3\xA9"), 0u);
  EXPECT_EQ(cli::utf8_incomplete_tail("a\xE2\x82"), 2u);
  EXPECT_EQ(cli::utf8_incomplete_tail("a\xE2\x82\xAC"), 0u);
  EXPECT_EQ(cli::utf8_incomplete_tail("\xF0\x9F\x98"), 3u);
  EXPECT_EQ(cli::utf8_incomplete_tail("\xF0\x9F\x98\x80"), 0u);
}

// ---- the real binary, over pipes ----

// A scripted MCP client: one request at a time, each answer matched by id.
class McpClient {
 public:
  McpClient(const Cli& cli) : child_(cli, {"mcp"}) {}

  json request(const std::string& method, const json& params = json::object(), std::chrono::milliseconds timeout = 90s) {
    int id = next_id_++;
    json msg{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
    if (!params.is_null()) msg["params"] = params;
    EXPECT_TRUE(child_.write(msg.dump() + "\n"));
    return answer_to(id, timeout);
  }
  // A tool's result (the JSON-RPC result member); fails the test on a JSON-RPC error.
  json call(const std::string& tool, const json& args, std::chrono::milliseconds timeout = 90s) {
    auto r = request("tools/call", {{"name", tool}, {"arguments", args}}, timeout);
    EXPECT_TRUE(r.contains("result")) << tool << " " << args << " -> " << r << "\nstderr: " << child_.err();
    return r.value("result", json::object());
  }
  void notify(const std::string& method) { EXPECT_TRUE(child_.write(json{{"jsonrpc", "2.0"}, {"method", method}}.dump() + "\n")); }
  // A raw line in, the next line out.
  json raw(const std::string& line) {
    EXPECT_TRUE(child_.write(line + "\n"));
    return next(10s);
  }
  json initialize() {
    auto r = request("initialize", {{"protocolVersion", "2025-06-18"},
                                    {"capabilities", json::object()},
                                    {"clientInfo", {{"name", "mcp_test"}, {"version", "1"}}}});
    notify("notifications/initialized");
    return r;
  }
  CliChild& child() { return child_; }
  const std::string& transcript() const { return transcript_; }

 private:
  json next(std::chrono::milliseconds timeout) {
    auto line = child_.read_line(timeout);
    if (!line) {
      ADD_FAILURE() << "no answer from rexec mcp; stderr: " << child_.err();
      return json::object();
    }
    transcript_ += *line + "\n";
    auto j = json::parse(*line, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "stdout is protocol messages only: " << *line;
    return j.is_discarded() ? json::object() : j;
  }
  json answer_to(int id, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      json j = next(left);
      if (j.empty()) return j;
      if (j.value("id", json()) == id) return j;
    }
    ADD_FAILURE() << "no answer to request " << id;
    return json::object();
  }

  CliChild child_;
  int next_id_ = 1;
  std::string transcript_;
};

std::string text_of(const json& result) {
  std::string all;
  for (const auto& c : result.value("content", json::array()))
    if (c.value("type", "") == "text") all += c.value("text", "") + "\n";
  return all;
}

bool is_error(const json& result) { return result.value("isError", false); }

// Polls `read` (no wait_for) until `needle` shows; the last output read.
std::string read_until(McpClient& c, const std::string& terminal, const std::string& needle, std::chrono::seconds limit) {
  std::string last;
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = c.call("read", {{"terminal", terminal}});
    EXPECT_FALSE(is_error(r)) << r;
    last = r["structuredContent"].value("output", "");
    if (last.find(needle) != std::string::npos) return last;
    std::this_thread::sleep_for(100ms);
  }
  return last;
}

// The whole session an agent would have, on one terminal: exec, type, read, list, delete.
void drive_a_terminal(McpClient& c, const std::string& terminal, const std::string& id) {
  auto r = c.call("exec", {{"terminal", terminal}, {"command", "echo hi"}});
  ASSERT_FALSE(is_error(r)) << r;
  EXPECT_EQ(r["structuredContent"], json({{"exit_code", 0}, {"stdout", "hi\n"}, {"stderr", ""}, {"truncated", false}})) << r;
  EXPECT_NE(text_of(r).find("exit code: 0"), std::string::npos) << r;

  r = c.call("exec", {{"terminal", id}, {"command", "echo oops >&2; exit 7"}});
  EXPECT_FALSE(is_error(r)) << "a command that fails is still a tool that worked: " << r;
  EXPECT_EQ(r["structuredContent"]["exit_code"], 7) << r;
  EXPECT_EQ(r["structuredContent"]["stderr"], "oops\n") << r;

  // 200,000 bytes of stdout: cut to the limit, and said so.
  r = c.call("exec", {{"terminal", terminal}, {"command", "head -c 200000 /dev/zero | tr '\\0' a; echo; echo LAST"}});
  ASSERT_FALSE(is_error(r)) << r.dump().substr(0, 500);
  EXPECT_EQ(r["structuredContent"]["truncated"], true);
  std::string out = r["structuredContent"]["stdout"];
  EXPECT_LE(out.size(), cli::kMcpExecOutputLimit + 100);
  EXPECT_TRUE(out.starts_with("aaaa")) << out.substr(0, 50);
  EXPECT_TRUE(out.ends_with("LAST\n")) << out.substr(out.size() - 50);

  // Keystrokes into the shell, then its output; the echo of the typed line shows MARK$((1+1)),
  // only the shell's answer shows MARK2.
  r = c.call("type", {{"terminal", terminal}, {"text", "echo MARK$((1+1))\n"}});
  ASSERT_FALSE(is_error(r)) << r;
  std::string seen = read_until(c, terminal, "MARK2", 30s);
  ASSERT_NE(seen.find("MARK2"), std::string::npos) << seen;

  // Reading on from where the last read ended, waiting for the next answer: only new output.
  r = c.call("read", {{"terminal", terminal}});
  uint64_t end = r["structuredContent"]["end"];
  EXPECT_NE(text_of(r).find("since=" + std::to_string(end)), std::string::npos) << r;
  ASSERT_FALSE(is_error(c.call("type", {{"terminal", terminal}, {"text", "echo NEXT$((2+3))\n"}})));
  r = c.call("read", {{"terminal", terminal}, {"since", end}, {"wait_for", "NEXT5"}, {"timeout_s", 30}});
  ASSERT_FALSE(is_error(r)) << r;
  EXPECT_EQ(r["structuredContent"]["found"], true) << r;
  std::string next = r["structuredContent"]["output"];
  EXPECT_NE(next.find("NEXT5"), std::string::npos) << next;
  EXPECT_EQ(next.find("MARK2"), std::string::npos) << "since leaves out what was read: " << next;
  EXPECT_EQ(r["structuredContent"]["start"], end) << r;

  r = c.call("read", {{"terminal", terminal}, {"max_bytes", 4}});
  EXPECT_LE(r["structuredContent"]["output"].get<std::string>().size(), 4u) << r;

  r = c.call("list_terminals", json::object());
  ASSERT_FALSE(is_error(r)) << r;
  bool listed = false;
  for (const auto& t : r["structuredContent"]["terminals"])
    if (t["id"] == id) {
      listed = true;
      EXPECT_TRUE(t.contains("status") && t.contains("kind") && t.contains("name")) << t;
    }
  EXPECT_TRUE(listed) << r;

  r = c.call("delete_terminal", {{"terminal", terminal}});
  ASSERT_FALSE(is_error(r)) << r;
  r = c.call("list_terminals", json::object());
  EXPECT_EQ(r.dump().find(id), std::string::npos) << r;
  r = c.call("exec", {{"terminal", id}, {"command", "true"}});
  EXPECT_TRUE(is_error(r)) << "a deleted terminal is unknown: " << r;
}

TEST(McpServer, DrivesAnAgentTerminalEndToEnd) {
  HubFixture hub;
  AgentProcess agent(hub, "mcp-box", {"--shell", "/bin/sh"});
  ASSERT_TRUE(wait_online(hub, "mcp-box", 30s)) << agent.log();
  Cli cli(hub, hub.admin_token());
  McpClient c(cli);

  auto init = c.initialize();
  ASSERT_EQ(init["result"]["protocolVersion"], "2025-06-18") << init;
  auto list = c.request("tools/list");
  std::set<std::string> names;
  for (const auto& t : list["result"]["tools"]) {
    names.insert(t["name"].get<std::string>());
    EXPECT_EQ(t["inputSchema"]["type"], "object") << t;
  }
  EXPECT_EQ(names, kTools);

  auto r = c.call("create_terminal", {{"agent", "mcp-box"}, {"name", "mcp-shell"}});
  ASSERT_FALSE(is_error(r)) << r;
  std::string id = r["structuredContent"].value("id", "");
  ASSERT_TRUE(id.starts_with("t_")) << r;
  EXPECT_EQ(r["structuredContent"]["name"], "mcp-shell");
  EXPECT_EQ(r["structuredContent"]["kind"], "agent");
  EXPECT_EQ(r["structuredContent"]["status"], "running") << r;
  EXPECT_NE(text_of(r).find(id), std::string::npos);

  // Mistakes on the way leave the server answering.
  r = c.call("exec", {{"terminal", "mcp-shel"}, {"command", "true"}});
  EXPECT_TRUE(is_error(r)) << r;
  EXPECT_NE(text_of(r).find("no terminal 'mcp-shel'"), std::string::npos) << r;
  EXPECT_NE(text_of(r).find("mcp-shell"), std::string::npos) << "a close name is suggested: " << r;
  r = c.call("read", {{"terminal", "no-such-terminal"}});
  EXPECT_TRUE(is_error(r)) << r;
  r = c.call("type", {{"terminal", "no-such-terminal"}, {"text", "x"}});
  EXPECT_TRUE(is_error(r)) << r;
  r = c.call("exec", {{"target", "no-such-machine"}, {"command", "true"}});
  EXPECT_TRUE(is_error(r)) << r;
  r = c.call("create_terminal", {{"agent", "no-such-machine"}});
  EXPECT_TRUE(is_error(r)) << r;
  auto bad = c.raw("{\"jsonrpc\":\"2.0\",\"id\":");
  EXPECT_EQ(bad["error"]["code"], -32700) << bad;
  EXPECT_TRUE(bad.contains("id") && bad["id"].is_null()) << bad;
  auto unknown = c.request("sampling/createMessage");
  EXPECT_EQ(unknown["error"]["code"], -32601) << unknown;
  EXPECT_EQ(c.request("ping")["result"], json::object());

  // exec on the machine itself, by its name.
  r = c.call("exec", {{"target", "mcp-box"}, {"command", "echo on-the-box"}});
  ASSERT_FALSE(is_error(r)) << r;
  EXPECT_EQ(r["structuredContent"]["stdout"], "on-the-box\n");

  drive_a_terminal(c, "mcp-shell", id);

  c.child().close_stdin();
  std::string rest;
  EXPECT_EQ(c.child().wait(20s, &rest), 0) << c.child().err();
  EXPECT_EQ(c.transcript().find(hub.admin_token()), std::string::npos) << "the token is never written";
  EXPECT_EQ(c.child().err().find(hub.admin_token()), std::string::npos);
}

TEST(McpServer, ABadTokenIsAToolErrorAndTheServerAnswersOn) {
  HubFixture hub;
  const std::string bad = "rxk_thisisnotatokenthehubknows0000000000000";
  Cli cli(hub, bad);
  McpClient c(cli);
  ASSERT_TRUE(c.initialize().contains("result"));
  for (const auto& [tool, args] : std::vector<std::pair<std::string, json>>{
           {"list_terminals", json::object()},
           {"create_terminal", {{"image", "rexec/busybox:latest"}}},
           {"exec", {{"terminal", "t_x"}, {"command", "true"}}},
           {"read", {{"terminal", "t_x"}}},
           {"type", {{"terminal", "t_x"}, {"text", "x"}}},
           {"delete_terminal", {{"terminal", "t_x"}}}}) {
    auto r = c.call(tool, args);
    EXPECT_TRUE(is_error(r)) << tool << ": " << r;
    std::string text = text_of(r);
    EXPECT_NE(text.find("401"), std::string::npos) << tool << ": " << text;
    EXPECT_NE(text.find("rexec login"), std::string::npos) << tool << ": " << text;
    EXPECT_EQ(c.request("ping")["result"], json::object()) << "still answering after " << tool;
  }
  c.child().close_stdin();
  EXPECT_EQ(c.child().wait(20s), 0) << c.child().err();
  EXPECT_EQ(c.transcript().find(bad), std::string::npos) << c.transcript();
  EXPECT_EQ(c.child().err().find(bad), std::string::npos);
}

TEST(McpServer, AnUnreachableHubIsAToolErrorNamingIt) {
  std::string url = "http://127.0.0.1:" + std::to_string(free_port());
  Cli cli(url, "rxk_whatever000000000000000000000000000000");
  McpClient c(cli);
  ASSERT_TRUE(c.initialize().contains("result"));
  auto r = c.call("list_terminals", json::object());
  EXPECT_TRUE(is_error(r)) << r;
  EXPECT_NE(text_of(r).find("cannot reach the hub at " + url), std::string::npos) << r;
  EXPECT_EQ(c.request("ping")["result"], json::object());
}

TEST(McpServer, NoLoginIsAToolErrorSayingHowToLogIn) {
  HubFixture hub;
  Cli cli(hub, "");
  cli.env().erase("REXEC_HUB");
  McpClient c(cli);
  ASSERT_TRUE(c.initialize().contains("result"));
  auto r = c.call("list_terminals", json::object());
  EXPECT_TRUE(is_error(r)) << r;
  EXPECT_NE(text_of(r).find("rexec login"), std::string::npos) << r;
}

class McpContainer : public ContainerTest {};

TEST_F(McpContainer, DrivesADebianContainerTerminal) {
  HubFixture hub(container_hub_flags());
  Cli cli(hub, hub.admin_token());
  McpClient c(cli);
  ASSERT_TRUE(c.initialize().contains("result"));
  auto r = c.call("create_terminal", {{"name", "mcp-sandbox"}}, 120s);  // the default image
  ASSERT_FALSE(is_error(r)) << r;
  std::string id = r["structuredContent"].value("id", "");
  ASSERT_TRUE(id.starts_with("t_")) << r;
  created_.push_back(id);
  EXPECT_EQ(r["structuredContent"]["image"], "rexec/debian:12");
  EXPECT_EQ(r["structuredContent"]["status"], "running") << r;
  r = c.call("exec", {{"terminal", "mcp-sandbox"}, {"command", ". /etc/os-release; echo $ID"}});
  EXPECT_EQ(r["structuredContent"]["stdout"], "debian\n") << r;
  drive_a_terminal(c, "mcp-sandbox", id);
}

}  // namespace
}  // namespace rx::test
