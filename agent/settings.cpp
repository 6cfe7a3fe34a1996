#include "agent/settings.h"

#include <algorithm>
#include <fstream>
#include <string_view>

namespace rx::agent {
namespace {

const SettingOption* find(std::string_view key) {
  for (const auto& o : setting_options())
    if (o.key == key) return &o;
  return nullptr;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// `where` names the flag ("--gpu-policy: ") or the file's line and key.
Status set(Settings& s, const SettingOption& o, const std::string& value, const std::string& where) {
  if (o.check)
    if (auto st = o.check(value); !st) return make_error("bad_config", where + st.error().message);
  if (o.key == "label") {
    auto l = protocol::parse_label(value);
    s.labels[l->first] = l->second;  // checked above
  } else {
    s.values["--" + std::string(o.key)] = value;
  }
  return Ok{};
}

Status read_file(Settings& s, const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error("bad_config", "cannot read config file " + path);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::string_view l = trim(line);
    if (l.empty() || l[0] == '#' || l[0] == ';') continue;
    std::string where = path + " line " + std::to_string(number) + ": ";
    auto eq = l.find('=');
    if (eq == std::string_view::npos) return make_error("bad_config", where + "expected key = value");
    std::string key(trim(l.substr(0, eq)));
    std::string_view value = trim(l.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    const SettingOption* o = find(key);
    if (!o) return make_error("bad_config", where + "unknown setting \"" + key + "\"");
    if (auto st = set(s, *o, std::string(value), where + key + ": "); !st) return st;
  }
  return Ok{};
}

}  // namespace

Result<Settings> parse_settings(const std::vector<std::string>& args) {
  for (const auto& f : args)  // before anything else, even an unknown flag: say why they are refused
    if (f == "--token" || f == "--credential")
      return make_error("bad_usage", "secrets are not accepted on the command line; use --enroll-token-file or "
                                     "--credential-file");
  Settings file, flags;
  std::string config;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& f = args[i];
    if (f == "--help" || f == "-h") {
      flags.help = true;
      return flags;
    }
    // --KEY VALUE or --KEY=VALUE; a value may start with a dash ("-" is stdin for a token file).
    auto eq = f.find('=');
    std::string name = f.substr(0, eq);
    const SettingOption* o = name.starts_with("--") ? find(std::string_view(name).substr(2)) : nullptr;
    if (name != "--config" && !o) return make_error("bad_usage", "unknown flag " + f);
    if (eq == std::string::npos && i + 1 >= args.size()) return make_error("bad_usage", "missing value for " + f);
    std::string value = eq == std::string::npos ? args[++i] : f.substr(eq + 1);
    if (!o) config = value;
    else if (auto st = set(flags, *o, value, name + ": "); !st) return st.error();
  }
  if (!config.empty())
    if (auto st = read_file(file, config); !st) return st.error();
  for (auto& [k, v] : flags.values) file.values[k] = v;
  for (auto& [k, v] : flags.labels) file.labels[k] = v;
  for (const auto& o : setting_options())
    if (!o.fallback.empty()) file.values.try_emplace("--" + std::string(o.key), o.fallback);
  if (auto e = protocol::check_labels(file.labels)) return *e;
  return file;
}

std::string agent_usage() {
  std::string out =
      "usage: rexec-agent [--config FILE] --hub URL [--KEY VALUE]...\n"
      "  Secrets are read from files or stdin, never from the command line.\n";
  auto line = [&out](std::string flag, std::string_view help) {
    flag.resize(std::max<size_t>(flag.size() + 1, 30), ' ');
    out += "  " + flag + std::string(help) + "\n";
  };
  line("--config FILE", "settings file (key = value, keys are these flags without dashes; no secrets);");
  line("", "flags override it. The unit uses /etc/rexec/agent.conf");
  for (const auto& o : setting_options()) {
    std::string help(o.help);
    if (!o.fallback.empty()) help += " (default " + std::string(o.fallback) + ")";
    line("--" + std::string(o.key) + " " + std::string(o.value_name), help);
  }
  line("--version", "print the version and exit");
  return out;
}

}  // namespace rx::agent
