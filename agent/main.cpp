// rexec-agent: dials out to a hub and runs terminals there.
//   rexec-agent [--config FILE] --hub URL [--KEY VALUE]...   (rexec-agent --help; agent/setting_options.cpp)
// Secrets are read from files or stdin, never from the command line (where `ps` shows them).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <vector>
#include <string>
#include <string_view>

#include "agent/agent.h"
#include "protocol/log_line.h"
#include "agent/secrets.h"
#include "agent/settings.h"
#include "protocol/version.h"

namespace {

using namespace rx::agent;
using rx::log;  // not ::log of <cmath>

// The flags' help comes from the settings table (agent/settings.h).
int usage(const char* why) {
  if (why) std::fprintf(stderr, "rexec-agent: %s\n", why);
  std::fputs(agent_usage().c_str(), stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // First, before anything opens a file: the terminals a predecessor handed over (handover.h).
  InheritedFds inherited = InheritedFds::take_from_environment();
  for (int i = 1; i < argc; ++i)  // before the settings: --version needs no --hub or config file
    if (std::string_view(argv[i]) == "--version") return std::printf("rexec-agent %s\n", rx::kRexecVersion) < 0;
  auto settings = parse_settings(std::vector<std::string>(argv + 1, argv + argc));
  if (!settings) return usage(settings.error().message.c_str());
  if (settings->help) return usage(nullptr);
  auto& flags = settings->values;
  if (!flags.count("--hub")) return usage("--hub is required (a flag or hub = URL in the --config file)");

  AgentOptions o;
  o.hub = flags["--hub"];
  o.credential_file = flags["--credential-file"];  // settings with a default always have a value
  o.name = flags["--name"];
  o.labels = settings->labels;
  o.ca_file = flags["--ca-file"];
  o.host.proc = flags["--proc-root"];
  o.host.etc = flags["--etc-root"];
  if (flags.count("--stats-cgroup")) o.host.cgroup = flags["--stats-cgroup"];
  o.host.nvidia_smi = flags["--nvidia-smi"];
  o.channels.shell = flags["--shell"];
  o.argv.assign(argv, argv + argc);
  char self[4096];
  if (ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1); n > 0) o.self_path.assign(self, size_t(n));
  if (flags.count("--user")) {
    auto account = find_account(flags["--user"]);
    if (!account) return log("error", "agent.bad_user", {{"reason", account.error().message}}), 2;
    if (::getuid() != 0 && account->uid != ::getuid())
      return log("error", "agent.bad_user", {{"reason", "--user needs the agent to run as root"}}), 2;
    o.channels.account = *account;
  }
  o.channels.etc = o.host.etc;
  if (flags.count("--user-map")) {
    auto map = UserMap::load(flags["--user-map"], o.host.etc);
    if (!map) return log("error", "agent.bad_user_map", {{"reason", map.error().message}}), 2;
    o.channels.user_map = std::move(map).value();
  }
  o.channels.gpu_policy = flags["--gpu-policy"];  // checked by parse_settings

  // Our own credential if we have one; otherwise the one-time enrollment token.
  struct stat st {};
  if (::stat(o.credential_file.c_str(), &st) == 0) {
    auto c = read_secret(o.credential_file, true);
    if (!c) return log("error", "agent.credential_unreadable", {{"reason", c.error().message}}), 2;
    o.token = *c;
  } else if (flags.count("--enroll-token-file")) {
    auto t = read_secret(flags["--enroll-token-file"], false);
    if (!t) return log("error", "agent.enroll_token_unreadable", {{"reason", t.error().message}}), 2;
    o.token = *t;
  } else {
    return usage(("no credential at " + o.credential_file + " and no --enroll-token-file").c_str());
  }

  lws_set_log_level(std::getenv("REXEC_LWS_DEBUG") ? (LLL_ERR | LLL_WARN | LLL_NOTICE | LLL_INFO) : LLL_ERR,
                    [](int, const char* line) {
                      std::string l(line);
                      while (!l.empty() && (l.back() == '\n' || l.back() == ' ')) l.pop_back();
                      log("error", "lws", {{"message", l}});
                    });
  auto agent = Agent::create(std::move(o), std::move(inherited));
  if (!agent) return log("error", "agent.start_failed", {{"reason", agent.error().message}}), 1;
  return (*agent)->run();
}
