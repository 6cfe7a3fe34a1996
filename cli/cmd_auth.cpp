// login, logout, whoami: which hub and token the other commands use (config.h).
#include <termios.h>
#include <unistd.h>

#include <fcntl.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/failure.h"

namespace rx::cli {

namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  size_t i = s.find_first_not_of(" \t");
  return i == std::string::npos ? "" : s.substr(i);
}

// Echo off while the token is typed, restored however we leave (Ctrl-C included: the prompt runs
// in cooked mode, so ^C kills us with the terminal still non-echoing unless restored here).
class NoEcho {
 public:
  explicit NoEcho(int fd) : fd_(fd) {
    if (::tcgetattr(fd_, &saved_) != 0) return;
    termios t = saved_;
    t.c_lflag &= ~tcflag_t(ECHO);
    t.c_lflag |= ECHONL;
    active_ = ::tcsetattr(fd_, TCSAFLUSH, &t) == 0;
  }
  ~NoEcho() {
    if (active_) ::tcsetattr(fd_, TCSAFLUSH, &saved_);
  }

 private:
  int fd_;
  termios saved_{};
  bool active_ = false;
};

// The token: typed at a prompt on the terminal with echo off, or the first line of stdin when
// stdin is not a terminal (`printf '%s\n' "$TOKEN" | rexec login URL`). Never an argument.
std::string read_token(const std::string& hub) {
  if (::isatty(0) != 1) {
    std::string line;
    std::getline(std::cin, line);
    return trim(line);
  }
  std::fprintf(stderr, "API token for %s: ", hub.c_str());
  std::fflush(stderr);
  std::string line;
  {
    NoEcho quiet(0);
    std::getline(std::cin, line);
  }
  return trim(line);
}

std::string user_line(const nlohmann::json& s) {
  const auto& u = s["user"];
  std::string line = u.value("name", "?");
  if (u.value("admin", false)) line += " (admin)";
  return line;
}

}  // namespace

void add_auth_commands(CLI::App& app, Context& ctx) {
  auto* login = app.add_subcommand("login", "Save a hub and an API token (prompted with echo off, or read from stdin)");
  auto url = std::make_shared<std::string>();
  login->add_option("url", *url, "The hub's URL, e.g. https://hub.example:8080");
  login->callback([&ctx, url] {
    std::string path = ctx.config_file();
    Config config = load_config(path);
    std::string name = ctx.profile_name.value_or(config.current.empty() ? "default" : config.current);
    std::string hub = *url;
    if (hub.empty()) {
      auto it = config.profiles.find(name);
      if (it == config.profiles.end()) throw Failure("which hub? run: rexec login URL");
      hub = it->second.hub;
    }
    hub = normalize_hub_url(hub);
    std::string token = read_token(hub);
    if (token.empty()) throw Failure("no token given (create one in the dashboard, or: rexec-hub token create)");
    HubClient client(Profile{hub, token});
    auto session = client.get("/api/v1/sessions/current");
    if (!session.contains("user") || !session["user"].is_object())
      throw Failure("the hub " + hub + " did not accept the token");
    config.profiles[name] = Profile{hub, token};
    config.current = name;
    save_config(path, config);
    std::printf("Logged in to %s as %s (profile %s, saved in %s)\n", hub.c_str(), user_line(session).c_str(),
                name.c_str(), path.c_str());
  });

  auto* logout = app.add_subcommand("logout", "Forget the saved token of a hub profile (the token itself stays valid until revoked)");
  logout->callback([&ctx] {
    std::string path = ctx.config_file();
    Config config = load_config(path);
    std::string name = ctx.profile_name.value_or(config.current);
    auto it = config.profiles.find(name);
    if (name.empty() || it == config.profiles.end()) throw Failure("not logged in" + (name.empty() ? "" : " with profile " + name));
    std::string hub = it->second.hub;
    config.profiles.erase(it);
    if (config.current == name) config.current = config.profiles.empty() ? "" : config.profiles.begin()->first;
    save_config(path, config);
    std::printf("Logged out of %s (profile %s)\n", hub.c_str(), name.c_str());
  });

  auto* whoami = app.add_subcommand("whoami", "Who the saved token is, and on which hub");
  auto json = std::make_shared<bool>(false);
  whoami->add_flag("--json", *json, "The hub's answer as JSON");
  whoami->callback([&ctx, json] {
    auto session = ctx.hub().get("/api/v1/sessions/current");
    if (*json) return print_json(session);
    if (!session["user"].is_object()) throw Failure("the hub does not know this token; log in again with: rexec login " + ctx.hub().profile().hub);
    std::printf("%s on %s (scopes: %s)\n", user_line(session).c_str(), ctx.hub().profile().hub.c_str(),
                session.value("scopes", "").c_str());
  });
}

}  // namespace rx::cli
