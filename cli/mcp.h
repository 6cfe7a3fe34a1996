// McpServer: `rexec mcp`, a Model Context Protocol server (revision 2025-06-18) on stdio for AI
// coding agents: JSON-RPC 2.0, one message a line, answered in order. Its six tools create, list
// and delete the user's terminals, run a command on one (POST /api/v1/exec), type into one and
// read its recent output (a ViewerLink on a uv loop of its own, per call). A tool that fails (the
// hub refused, no such terminal, the hub unreachable, a bad token) is a tool result with isError
// and the hub's one-line message, never a JSON-RPC error and never the end of the server. It acts
// with the user's own token only, and writes that token nowhere. docs/mcp.md is its manual.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cli/hub_client.h"

namespace rx::cli {

inline constexpr const char* kMcpProtocolVersion = "2025-06-18";
// A line (one message) longer than this is refused as a parse error and skipped.
inline constexpr size_t kMcpMaxLine = 4 * 1024 * 1024;
// What one tool result may carry: exec output per stream, read output, typed text per call.
inline constexpr size_t kMcpExecOutputLimit = 64 * 1024;
inline constexpr size_t kMcpReadDefault = 16 * 1024;
inline constexpr size_t kMcpReadMax = 256 * 1024;
inline constexpr size_t kMcpTypeMax = 64 * 1024;

class McpServer {
 public:
  // How the server reaches the hub: `get` returns the client of the chosen profile (a Failure
  // that says how to log in when there is none); `forget` drops it after a 401, so the next call
  // reads the saved config again (the user may have run `rexec login` meanwhile).
  struct Hub {
    std::function<HubClient&()> get;
    std::function<void()> forget;
  };
  McpServer(Hub hub, std::string version);
  ~McpServer();
  McpServer(const McpServer&) = delete;
  McpServer& operator=(const McpServer&) = delete;

  // One JSON-RPC message in; the reply (one line of JSON, no newline), or nothing for a
  // notification or a response. Never throws.
  std::optional<std::string> handle(std::string_view line);
  // Answers messages from `in_fd` on `out_fd` until `in_fd` ends. 0, or 1 when `out_fd` failed.
  int serve(int in_fd, int out_fd);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Output as a tool result shows it: valid UTF-8 (a character cut at either end is left out, any
// other bad byte becomes U+FFFD), and when longer than `limit`, its head and tail around a line
// saying how much was cut.
struct ClippedText {
  std::string text;
  bool cut = false;
};
ClippedText clip_output(std::string_view bytes, size_t limit);

// How many bytes at the end of `bytes` are the start of a UTF-8 character still incomplete (0-3).
size_t utf8_incomplete_tail(std::string_view bytes);

}  // namespace rx::cli
