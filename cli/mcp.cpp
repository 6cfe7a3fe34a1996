// McpServer itself: JSON-RPC 2.0 over stdio, initialize, tools/list and tools/call's dispatch.
// The tools are apart (mcp_tools.cpp, mcp_attach.cpp, mcp_catalogue.cpp): this file is the protocol.
#include "cli/output.h"
#include "cli/mcp.h"
#include "cli/mcp_impl.h"

#include <cerrno>
#include <unistd.h>

#include "protocol/utf8.h"

namespace rx::cli {

using namespace mcp_detail;

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

}  // namespace

std::string McpServer::Impl::write(const json& message) const {
  std::string line = message.dump(-1, ' ', false, json::error_handler_t::replace);
  if (secret.size() >= 8)
    for (size_t at; (at = line.find(secret)) != std::string::npos;) line.replace(at, secret.size(), "[token]");
  return line;
}

std::string McpServer::Impl::reply(const json& id, json result) const {
  return write({{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}});
}

std::string McpServer::Impl::error(const json& id, int code, const std::string& message) const {
  return write({{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", code}, {"message", message}}}});
}

json McpServer::Impl::initialize(const json& params) {
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

json McpServer::Impl::list_tools() const {
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

json McpServer::Impl::call_tool(const json& params) {
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

std::optional<std::string> McpServer::Impl::handle(std::string_view line) {
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
