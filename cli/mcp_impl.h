// Private to cli/mcp*.cpp: McpServer::Impl and what its parts share (tool results, argument
// readers, the catalogue), so the server can be split by job without touching cli/mcp.h.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/mcp.h"

namespace rx::cli {

using nlohmann::json;

namespace mcp_detail {

constexpr int kExecTimeoutDefault = 30;
constexpr int kReadTimeoutDefault = 10;

// Malformed parameters: answered as JSON-RPC -32602 (the caller's mistake, not the tool's).
class BadParams : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Readers of JSON fields (mcp_tools.cpp): u64 says nullopt for a missing or bad one; the others
// read tool arguments and throw BadParams for a bad one.
std::optional<uint64_t> u64(const json& j, const char* key);
std::optional<std::string> opt_string(const json& args, const char* key);
std::string need_string(const json& args, const char* key, const std::string& what);
std::optional<int64_t> opt_int(const json& args, const char* key, int64_t lo, int64_t hi);

std::string terminal_label(const json& t);

// Leading bytes that continue a character begun before the cut (at most 3).
size_t utf8_orphans(std::string_view s);

// ---- tool result shapes ----

struct ToolResult {
  std::vector<std::string> texts;  // content blocks
  json structured;                 // null: none
  bool error = false;
};

inline ToolResult failed(const std::string& message) { return {{message}, nullptr, true}; }

// ---- the tools (their schemas: mcp_catalogue.cpp) ----

struct Tool {
  const char* name;
  const char* title;
  const char* description;
  json input_schema;
  json output_schema;  // null: none
  json annotations;
};

std::vector<Tool> make_tools();

}  // namespace mcp_detail

struct McpServer::Impl {
  Hub hub_access;
  std::string version;
  std::string revision = kMcpProtocolVersion;  // what initialize agreed on
  std::string secret;                          // the token, scrubbed from everything written
  std::vector<mcp_detail::Tool> tools = mcp_detail::make_tools();

  bool modern() const { return revision >= std::string("2025-06-18"); }

  HubClient& hub() {
    HubClient& h = hub_access.get();
    secret = h.profile().token;
    return h;
  }

  // ---- JSON-RPC (mcp.cpp) ----

  std::string write(const json& message) const;
  std::string reply(const json& id, json result) const;
  std::string error(const json& id, int code, const std::string& message) const;
  json initialize(const json& params);
  json list_tools() const;
  json call_tool(const json& params);
  std::optional<std::string> handle(std::string_view line);

  // ---- tools: over REST (mcp_tools.cpp), attached to the terminal (mcp_attach.cpp) ----

  mcp_detail::ToolResult create_terminal(const json& args);
  mcp_detail::ToolResult exec(const json& args);
  mcp_detail::ToolResult list_terminals();
  mcp_detail::ToolResult delete_terminal(const json& args);
  mcp_detail::ToolResult type(const json& args);
  mcp_detail::ToolResult read(const json& args);
};

}  // namespace rx::cli
