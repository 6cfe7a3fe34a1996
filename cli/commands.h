// The rexec commands, one add_* per file (cmd_*.cpp), registered on the CLI11 app by main.cpp.
// A command's callback does its work through the Context and reports by exit status and
// Failure (failure.h); it prints only what its user asked for.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/config.h"
#include "cli/hub_client.h"
#include "cli/output.h"

namespace rx::cli {

class Context {
 public:
  std::optional<std::string> profile_name;  // --hub-profile
  std::vector<std::string> command_argv;    // what came after "--" (exec)
  int status = 0;                           // the exit status a command chose

  // The hub of the chosen profile (REXEC_HUB / REXEC_TOKEN on top), created on first use.
  HubClient& hub();
  std::string config_file() const;
  Style out() const { return Style::for_stream(stdout); }
  Style err() const { return Style::for_stream(stderr); }

 private:
  std::unique_ptr<HubClient> hub_;
};

void add_auth_commands(CLI::App& app, Context& ctx);      // login, logout, whoami
void add_terminal_commands(CLI::App& app, Context& ctx);  // ls, create, rm, stop, start, share
void add_agent_commands(CLI::App& app, Context& ctx);     // agents, enroll
void add_exec_command(CLI::App& app, Context& ctx);       // exec
void add_misc_commands(CLI::App& app, Context& ctx);      // version, completion
void add_connect_command(CLI::App& app, Context& ctx);    // connect
void add_mcp_command(CLI::App& app, Context& ctx);        // mcp
void add_cp_command(CLI::App& app, Context& ctx);         // cp

// Attaches to a terminal like ssh (cmd_connect.cpp); `create --connect` uses it too. Returns the
// exit status: the shell's exit code, or 0 after a detach.
int connect_terminal(Context& ctx, const nlohmann::json& terminal);

}  // namespace rx::cli
