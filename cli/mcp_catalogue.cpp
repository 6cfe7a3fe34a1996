// The catalogue tools/list serves: each tool's name, title, description, input and output schemas
// and annotations. Apart from the code that runs the tools because it is data, long and read alone.
#include "cli/mcp_impl.h"

namespace rx::cli::mcp_detail {

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

}  // namespace rx::cli::mcp_detail
