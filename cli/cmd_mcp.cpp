// rexec mcp: the Model Context Protocol server (cli/mcp.h) on stdin and stdout, until stdin ends.
// stdout carries protocol messages only; anything else goes to stderr.
#include <csignal>
#include <memory>

#include "cli/commands.h"
#include "cli/mcp.h"
#include "protocol/version.h"

namespace rx::cli {

void add_mcp_command(CLI::App& app, Context& ctx) {
  auto* mcp = app.add_subcommand("mcp", "Serve the Model Context Protocol on stdin/stdout, for AI coding agents (docs/mcp.md)");
  mcp->footer("Tools: create_terminal, exec, type, read, list_terminals, delete_terminal. They act with the token of\n"
              "`rexec login` (or REXEC_HUB / REXEC_TOKEN), nothing more.");
  mcp->callback([&ctx] {
    std::signal(SIGPIPE, SIG_IGN);  // a client gone mid-answer is a write error, not a kill
    // The profile's client, read again after a 401 so that a `rexec login` meanwhile takes effect.
    std::unique_ptr<HubClient> client;
    McpServer::Hub hub{[&]() -> HubClient& {
                         if (!client)
                           client = std::make_unique<HubClient>(resolve_profile(load_config(ctx.config_file()), ctx.profile_name));
                         return *client;
                       },
                       [&] { client.reset(); }};
    McpServer server(std::move(hub), kRexecVersion);
    ctx.status = server.serve(0, 1);
  });
}

}  // namespace rx::cli
