// The agent's settings table: each flag and file key written once, with its help line, default
// and check. main.cpp reads the values by these names.
#include <array>

#include "agent/settings.h"

namespace rx::agent {
namespace {

Status label(std::string_view value) {
  auto l = protocol::parse_label(std::string(value));
  if (!l) return l.error();
  return Ok{};
}

Status gpu_policy(std::string_view value) {
  if (value == "open" || value == "lease-required") return Ok{};
  return make_error("bad_config", "\"" + std::string(value) + "\" is not open or lease-required");
}

}  // namespace

std::span<const SettingOption> setting_options() {
  static constexpr std::array<SettingOption, 14> options{{
      {"hub", "URL", "ws://HOST:PORT, wss://HOST:PORT, or a unix socket path (required)", ""},
      {"enroll-token-file", "FILE|-", "first run only: the one-time enrollment token (- reads stdin)", ""},
      {"credential-file", "FILE", "where the agent keeps its own credential (mode 0600)",
       "/var/lib/rexec-agent/credential"},
      {"name", "NAME", "shown with the agent on the hub (default: the hostname)", ""},
      {"label", "KEY=VALUE", "shown with the agent on the hub; repeatable", "", label, true},
      {"ca-file", "FILE", "PEM CA the hub's certificate is checked against (default: the system's)", ""},
      {"user", "USER", "the local account terminals run as (needs root unless it is the agent's own)", ""},
      {"shell", "PATH", "the shell of that account's terminals (default: its login shell)", ""},
      {"proc-root", "DIR", "where /proc is (a container's agent reads the host's)", "/proc"},
      {"etc-root", "DIR", "where passwd and group are read from", "/etc"},
      {"nvidia-smi", "PATH", "nvidia-smi, for GPU inventory (absent: no GPUs)", "/usr/bin/nvidia-smi"},
      {"stats-cgroup", "DIR", "report this cgroup's CPU and memory instead of the host's", ""},
      {"user-map", "FILE", "REXEC_USER = LOCAL_ACCOUNT lines: whom a terminal runs as; every account must exist",
       ""},
      {"gpu-policy", "POLICY",
       "open or lease-required: a terminal without a GPU lease gets CUDA_VISIBLE_DEVICES= and "
       "NVIDIA_VISIBLE_DEVICES=void",
       "open", gpu_policy},
  }};
  return options;
}

}  // namespace rx::agent
