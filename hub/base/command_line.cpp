#include "hub/base/command_line.h"

#include <CLI/CLI.hpp>

#include <algorithm>

namespace rx::hub {
namespace {

// The CLI11 parser and where each of its flags lands. Built the same way for parsing and for
// the usage text, so the two cannot drift apart.
struct Parser {
  CLI::App app{"rexec-hub: the Rexec hub. Settings: docs/configuration.md", "rexec-hub"};
  CLI::App* serve = nullptr;
  CLI::App* user_add = nullptr;
  CLI::App* token_create = nullptr;
  std::string config_path;
  std::vector<std::pair<std::string_view, CLI::Option*>> settings;  // config key -> its flag
  HubCommand command;

  Parser() {
    // A flag given twice: the last one wins, as it always has (and as the file's last line does).
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app.require_subcommand(1);
    // main answers --version before parsing; listed here so --help shows it.
    app.add_flag("--version")->description("print the version and exit");

    serve = app.add_subcommand("serve", "run the hub; every KEY of the config file is also a --KEY flag");
    serve->add_option("--config", config_path, "a `key = value` file of these settings; flags override it")
        ->type_name("FILE");
    const HubConfig defaults;
    for (const auto& o : config_options()) {
      std::string help(o.help);
      if (auto d = o.show(defaults); !d.empty()) help += " (default " + d + ")";
      // Unbound: the values are applied after the file, through the same apply_setting.
      auto* flag = serve->add_option("--" + std::string(o.key))->description(help)->type_name(std::string(o.value_name));
      settings.emplace_back(o.key, flag);
    }

    auto* user = app.add_subcommand("user", "manage users offline (the hub may be running)");
    user->require_subcommand(1);
    user_add = user->add_subcommand("add", "create a user; prints its first API token, once");
    user_add->add_option("NAME", command.name, "the user's name")->required();
    user_add->add_flag("--admin", command.admin, "make the user an admin");
    user_add->add_option("--data-dir", command.data_dir, "the hub's data directory")->required()->type_name("DIR");

    auto* token = app.add_subcommand("token", "manage API tokens offline");
    token->require_subcommand(1);
    token_create = token->add_subcommand("create", "print a new admin API token, once");
    token_create->add_option("--data-dir", command.data_dir, "the hub's data directory")->required()->type_name("DIR");
    token_create->add_option("--name", command.name, "the token's name")->required()->type_name("NAME");
  }
};

}  // namespace

Result<HubCommand> parse_command_line(std::vector<std::string> args) {
  Parser p;
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last first
  try {
    p.app.parse(args);
  } catch (const CLI::CallForHelp&) {
    p.command.kind = HubCommand::Kind::help;
    p.command.help = p.app.help();  // the help of the subcommand it was asked of
    return std::move(p.command);
  } catch (const CLI::ParseError& e) {
    return make_error("bad_usage", std::string(e.what()) + " (rexec-hub --help lists the flags)");
  }
  if (p.user_add->parsed()) {
    p.command.kind = HubCommand::Kind::user_add;
  } else if (p.token_create->parsed()) {
    p.command.kind = HubCommand::Kind::token_create;
  } else {
    std::vector<std::pair<std::string, std::string>> flags;
    for (const auto& [key, flag] : p.settings)
      if (flag->count() > 0) flags.emplace_back(key, flag->results().back());
    auto config = load_config(p.config_path, flags);
    if (!config) return config.error();
    if (config->data_dir.empty())
      return make_error("bad_usage", "serve needs --data-dir DIR (or data-dir = DIR in the --config file)");
    p.command.kind = HubCommand::Kind::serve;
    p.command.config = std::move(*config);
  }
  return std::move(p.command);
}

std::string hub_usage() {
  Parser p;
  return p.app.help("", CLI::AppFormatMode::All);
}

}  // namespace rx::hub
