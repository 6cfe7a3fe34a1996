#include "agent/settings.h"

#include <fstream>
#include <sstream>
#include <string_view>

namespace rx::agent {
namespace {

constexpr const char* kKnown[] = {"--hub",   "--enroll-token-file", "--credential-file", "--name",
                                  "--ca-file", "--user",            "--shell",           "--proc-root",
                                  "--etc-root", "--nvidia-smi",     "--stats-cgroup",    "--label",
                                  "--user-map", "--gpu-policy"};

bool known(std::string_view flag) {
  for (const char* k : kKnown)
    if (flag == k) return true;
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

Status set(Settings& s, const std::string& flag, const std::string& value, const std::string& where) {
  if (flag == "--label") {
    auto l = protocol::parse_label(value);
    if (!l) return make_error("bad_config", where + l.error().message);
    s.labels[l->first] = l->second;
  } else {
    s.values[flag] = value;
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
    std::string key = "--" + std::string(trim(l.substr(0, eq)));
    std::string_view value = trim(l.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    if (!known(key)) return make_error("bad_config", where + "unknown setting \"" + key.substr(2) + "\"");
    if (auto st = set(s, key, std::string(value), where); !st) return st;
  }
  return Ok{};
}

}  // namespace

Result<Settings> parse_settings(const std::vector<std::string>& args) {
  Settings file, flags;
  std::string config;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& f = args[i];
    if (f == "--help" || f == "-h") {
      flags.help = true;
      return flags;
    }
    if (f == "--token" || f == "--credential")
      return make_error("bad_usage", "secrets are not accepted on the command line; use --enroll-token-file or "
                                     "--credential-file");
    if (f != "--config" && !known(f)) return make_error("bad_usage", "unknown flag " + f);
    if (i + 1 >= args.size()) return make_error("bad_usage", "missing value for " + f);
    const std::string& value = args[++i];
    if (f == "--config") config = value;
    else if (auto st = set(flags, f, value, f + ": "); !st) return st.error();
  }
  if (!config.empty())
    if (auto st = read_file(file, config); !st) return st.error();
  for (auto& [k, v] : flags.values) file.values[k] = v;
  for (auto& [k, v] : flags.labels) file.labels[k] = v;
  if (auto e = protocol::check_labels(file.labels)) return *e;
  return file;
}

}  // namespace rx::agent
