#include "cli/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/failure.h"

namespace rx::cli {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string config_dir() {
  if (auto x = env("XDG_CONFIG_HOME"); !x.empty()) return x + "/rexec";
  if (auto h = env("HOME"); !h.empty()) return h + "/.config/rexec";
  throw Failure("neither HOME nor XDG_CONFIG_HOME is set: no place for the config file");
}

void make_dirs(const std::string& dir) {
  for (size_t pos = 1; pos != std::string::npos;) {
    pos = dir.find('/', pos + 1);
    std::string part = dir.substr(0, pos);
    if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST)
      throw Failure("cannot create " + part + ": " + std::strerror(errno));
  }
}

}  // namespace

std::string config_path() { return config_dir() + "/config.json"; }

Config load_config(const std::string& path) {
  Config c;
  std::ifstream in(path);
  if (!in) return c;
  std::stringstream text;
  text << in.rdbuf();
  auto j = nlohmann::json::parse(text.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Failure(path + " is not valid JSON (fix or delete it)");
  c.current = j.value("current", "");
  if (auto p = j.find("profiles"); p != j.end() && p->is_object())
    for (const auto& [name, v] : p->items())
      if (v.is_object()) c.profiles[name] = Profile{v.value("hub", ""), v.value("token", "")};
  return c;
}

void save_config(const std::string& path, const Config& config) {
  nlohmann::json j{{"current", config.current}, {"profiles", nlohmann::json::object()}};
  for (const auto& [name, p] : config.profiles) j["profiles"][name] = {{"hub", p.hub}, {"token", p.token}};
  std::string dir = path.substr(0, path.rfind('/'));
  make_dirs(dir);
  std::string tmp = path + ".tmp";
  // 0600 from the first byte: the token is never readable by others, not even for a moment.
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) throw Failure("cannot write " + tmp + ": " + std::strerror(errno));
  ::fchmod(fd, 0600);  // an old temp file may have had other bits
  std::string text = j.dump(2) + "\n";
  bool ok = ::write(fd, text.data(), text.size()) == ssize_t(text.size()) && ::fsync(fd) == 0;
  ok = (::close(fd) == 0) && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw Failure("cannot write " + path + ": " + std::strerror(e));
  }
}

std::string normalize_hub_url(const std::string& url) {
  std::string u = url;
  while (!u.empty() && u.back() == '/') u.pop_back();
  size_t scheme = u.find("://");
  std::string s = scheme == std::string::npos ? "" : u.substr(0, scheme);
  std::string rest = scheme == std::string::npos ? "" : u.substr(scheme + 3);
  if ((s != "http" && s != "https") || rest.empty() || rest.front() == ':' || rest.find_first_of(" \t\r\n?#") != std::string::npos)
    throw Failure("bad hub URL '" + url + "': expected http://HOST[:PORT] or https://HOST[:PORT]");
  return u;
}

Profile resolve_profile(const Config& config, const std::optional<std::string>& name) {
  Profile p;
  std::string chosen = name.value_or(config.current);
  if (!chosen.empty()) {
    auto it = config.profiles.find(chosen);
    if (it != config.profiles.end()) p = it->second;
    else if (name) throw Failure("no hub profile '" + chosen + "' (log in with: rexec login --hub-profile " + chosen + " URL)");
  }
  if (auto h = env("REXEC_HUB"); !h.empty()) p.hub = h;
  if (auto t = env("REXEC_TOKEN"); !t.empty()) p.token = t;
  if (p.hub.empty() || p.token.empty()) throw Failure("not logged in (run: rexec login URL, or set REXEC_HUB and REXEC_TOKEN)");
  p.hub = normalize_hub_url(p.hub);
  return p;
}

}  // namespace rx::cli
