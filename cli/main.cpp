// rexec: the command line for a Rexec hub (docs/cli.md).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <curl/curl.h>

#include "cli/commands.h"
#include "cli/failure.h"

namespace rx::cli {

HubClient& Context::hub() {
  if (!hub_) hub_ = std::make_unique<HubClient>(resolve_profile(load_config(config_file()), profile_name));
  return *hub_;
}

std::string Context::config_file() const { return config_path(); }

}  // namespace rx::cli

int main(int argc, char** argv) {
  using namespace rx::cli;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  Context ctx;
  // Everything after the first "--" is the command of `exec`, taken verbatim (CLI11 would read
  // its flags as ours).
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) {
      ctx.command_argv.assign(argv + i + 1, argv + argc);
      break;
    }
    args.emplace_back(argv[i]);
  }
  std::reverse(args.begin(), args.end());  // CLI11 parses a reversed vector

  CLI::App app{"rexec: terminals on your machines and containers, from your own terminal"};
  app.name("rexec");
  app.require_subcommand(1);
  app.add_option("--hub-profile", ctx.profile_name, "Use this saved hub (rexec login --hub-profile NAME URL)");
  add_auth_commands(app, ctx);
  add_terminal_commands(app, ctx);
  add_agent_commands(app, ctx);
  add_exec_command(app, ctx);
  add_cp_command(app, ctx);
  add_misc_commands(app, ctx);
  add_connect_command(app, ctx);
  add_mcp_command(app, ctx);

  int status = 0;
  try {
    app.parse(args);
    status = ctx.status;
  } catch (const CLI::ParseError& e) {
    status = app.exit(e);
  } catch (const Failure& f) {
    std::fprintf(stderr, "rexec: %s\n", f.what());
    status = f.status();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rexec: %s\n", e.what());
    status = 1;
  }
  std::fflush(stdout);
  curl_global_cleanup();
  return status;
}
