// connect: attach to a terminal like ssh (connect.h has the session itself).
#include <algorithm>

#include "cli/commands.h"
#include "cli/connect.h"
#include "cli/failure.h"
#include "cli/output.h"
#include "cli/targets.h"

namespace rx::cli {

namespace {

// The attach was refused before the upgrade, where lws sees the status but not the hub's words:
// the REST API says the same thing in full (a 401 with how to log in again, a 404 naming the
// terminal), or tells what became of a terminal that has no live session to attach to.
[[noreturn]] void explain_refusal(Context& ctx, const std::string& id, const std::string& label, const SessionEnd& end) {
  if (end.http_status == 401 || end.http_status == 403 || end.http_status == 404) {
    auto t = ctx.hub().get("/api/v1/terminals/" + id);  // throws the hub's own message
    std::string status = field(t, "status");
    if (status == "exited" && t.contains("exit_code") && t["exit_code"].is_number_integer())
      throw Failure("terminal " + label + " has exited (exit code " + std::to_string(t["exit_code"].get<int>()) +
                    "): there is no shell to attach to");
    if (!status.empty() && status != "running")
      throw Failure("terminal " + label + " is " + status + ": there is no shell to attach to");
  }
  throw Failure(end.message, end.status);
}

}  // namespace

int connect_terminal(Context& ctx, const nlohmann::json& terminal) {
  std::string id = field(terminal, "id");
  if (id.empty()) throw Failure("the hub described a terminal without an id");
  std::string label = field(terminal, "name").empty() ? id : field(terminal, "name");
  SessionEnd end = run_session(ctx.hub().profile(), id, label);
  switch (end.kind) {
    case SessionEnd::Kind::kDetached:
      return 0;
    case SessionEnd::Kind::kExited:
      if (end.exit_code_unknown) {
        auto t = ctx.hub().get("/api/v1/terminals/" + id);
        if (t.contains("exit_code") && t["exit_code"].is_number_integer()) return std::clamp(t["exit_code"].get<int>(), 0, 255);
      }
      return end.status;
    case SessionEnd::Kind::kFailed:
      break;
  }
  explain_refusal(ctx, id, label, end);
}

void add_connect_command(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("connect", "Attach to a terminal like ssh (~. detaches, ~? lists the escapes)");
  auto name = std::make_shared<std::string>();
  cmd->add_option("terminal", *name, "The terminal's id or name")->required();
  cmd->footer(
      "Escapes, after a newline: ~. detaches (the terminal keeps running), ~? lists them, ~~ sends a ~.\n"
      "A dropped connection is resumed by itself; nothing is shown twice.\n"
      "Exit status: the shell's exit code; 0 after a detach; 1 when the attach fails.");
  cmd->callback([&ctx, name] {
    auto terminal = find_terminal(ctx.hub(), *name);
    ctx.status = connect_terminal(ctx, terminal);
  });
}

}  // namespace rx::cli
