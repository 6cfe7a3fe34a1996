// The hub's command line, parsed by CLI11 (as the `rexec` CLI's is):
//   rexec-hub serve [--config FILE] [--KEY VALUE]...   (every key of config_options())
//   rexec-hub user add NAME [--admin] --data-dir DIR
//   rexec-hub token create --data-dir DIR --name NAME
// serve's flags and its --help come from config_options(), so a new setting is a flag, a file
// key and a help line at once. Values are checked here, before main opens or binds anything.
#pragma once

#include <string>
#include <vector>

#include "hub/base/config.h"

namespace rx::hub {

struct HubCommand {
  enum class Kind { serve, user_add, token_create, help };
  Kind kind = Kind::help;
  HubConfig config;      // serve: the file, then the flags over it
  std::string name;      // user add NAME, token create --name NAME
  bool admin = false;    // user add --admin
  std::string data_dir;  // user add, token create
  std::string help;      // Kind::help: what --help asked for
};

// `args` is argv without argv[0]. Errors (unknown flags, missing values, bad values) say which
// flag or key and, for a bad value, the value.
Result<HubCommand> parse_command_line(std::vector<std::string> args);

// Every subcommand with its flags: the usage text.
std::string hub_usage();

}  // namespace rx::hub
