// version, completion: completions are generated from the commands' own definitions, so they
// never fall behind a new flag.
#include "cli/commands.h"
#include "cli/failure.h"
#include "protocol/version.h"

namespace rx::cli {

namespace {

struct Command {
  std::string name, help;
  std::vector<std::string> flags;
};

std::vector<Command> commands(CLI::App& app) {
  std::vector<Command> out;
  for (auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    Command c{sub->get_name(), sub->get_description(), {"--help"}};
    for (const auto* opt : sub->get_options([](const CLI::Option* o) { return o->nonpositional(); }))
      for (const auto& l : opt->get_lnames()) c.flags.push_back("--" + l);
    out.push_back(std::move(c));
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

std::string bash_script(CLI::App& app) {
  auto cmds = commands(app);
  std::vector<std::string> names;
  for (const auto& c : cmds) names.push_back(c.name);
  std::string s =
      "# bash completion for rexec: source <(rexec completion bash)\n"
      "_rexec() {\n"
      "  local cur=${COMP_WORDS[COMP_CWORD]} cmd=\"\" i\n"
      "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      "    case ${COMP_WORDS[i]} in --hub-profile) ((i++)) ;; -*) ;; *) cmd=${COMP_WORDS[i]}; break ;; esac\n"
      "  done\n"
      "  case $cmd in\n"
      "    \"\") COMPREPLY=($(compgen -W \"" + join(names) + " --hub-profile --help\" -- \"$cur\")) ;;\n";
  for (const auto& c : cmds) s += "    " + c.name + ") COMPREPLY=($(compgen -W \"" + join(c.flags) + "\" -- \"$cur\")) ;;\n";
  s += "  esac\n}\ncomplete -o default -F _rexec rexec\n";
  return s;
}

std::string zsh_quote(std::string text) {
  std::string out;
  for (char c : text) {
    if (c == '\'') out += "'\\''";
    else if (c == ':') out += "\\:";
    else out += c;
  }
  return out;
}

std::string zsh_script(CLI::App& app) {
  auto cmds = commands(app);
  std::string s =
      "#compdef rexec\n"
      "# zsh completion for rexec: rexec completion zsh > \"${fpath[1]}/_rexec\"\n"
      "_rexec() {\n"
      "  local -a cmds\n"
      "  cmds=(\n";
  for (const auto& c : cmds) s += "    '" + zsh_quote(c.name) + ":" + zsh_quote(c.help) + "'\n";
  s += "  )\n"
       "  if (( CURRENT == 2 )); then _describe 'command' cmds; return; fi\n"
       "  case ${words[2]} in\n";
  for (const auto& c : cmds) s += "    " + c.name + ") compadd -- " + join(c.flags) + " ;;\n";
  s += "  esac\n}\ncompdef _rexec rexec\n";
  return s;
}

}  // namespace

void add_misc_commands(CLI::App& app, Context& /*ctx*/) {
  auto* version = app.add_subcommand("version", "Print rexec's version");
  auto json = std::make_shared<bool>(false);
  version->add_flag("--json", *json, "As JSON");
  version->callback([json] {
    nlohmann::json v{{"rexec", kRexecVersion}};
    if (*json) return print_json(v);
    std::printf("rexec %s\n", kRexecVersion);
  });

  auto* completion = app.add_subcommand("completion", "Print a shell completion script: source <(rexec completion bash)");
  auto shell = std::make_shared<std::string>();
  completion->add_option("shell", *shell, "bash or zsh")->required()->check(CLI::IsMember({"bash", "zsh"}));
  completion->callback([&app, shell] {
    std::string script = *shell == "bash" ? bash_script(app) : zsh_script(app);
    std::fwrite(script.data(), 1, script.size(), stdout);
  });
}

}  // namespace rx::cli
