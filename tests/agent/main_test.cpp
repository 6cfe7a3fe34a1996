// agent/main.cpp: the flags of GPU sharing are checked before the agent starts (exit 2, saying why).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

namespace fs = std::filesystem;

struct Run {
  int code = -1;
  std::string output;
};

Run agent(const std::string& args) {
  std::string cmd = std::string(REXEC_BINARY_DIR) + "/agent/rexec-agent --hub ws://127.0.0.1:1 " + args + " 2>&1";
  Run r;
  FILE* p = ::popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  while (size_t n = std::fread(buf.data(), 1, buf.size(), p)) r.output.append(buf.data(), n);
  int st = ::pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

TEST(AgentMain, BadGpuPolicyExits2) {
  auto r = agent("--gpu-policy strict");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--gpu-policy: \"strict\" is not open or lease-required"), std::string::npos) << r.output;
}

TEST(AgentMain, UserMapWithAnUnknownAccountExits2NamingTheLine) {
  fs::path map = fs::temp_directory_path() / ("rexec-user-map-" + std::to_string(::getpid()));
  std::ofstream(map) << "# users\nalice = root\nbob = no-such-account-here\n";
  auto r = agent("--user-map " + map.string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find(map.string() + " line 3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("no-such-account-here"), std::string::npos) << r.output;
  // The same from the config file's key.
  fs::path conf = map.string() + ".conf";
  std::ofstream(conf) << "user-map = " << map.string() << "\ngpu-policy = lease-required\n";
  r = agent("--config " + conf.string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("line 3"), std::string::npos) << r.output;
  fs::remove(map);
  fs::remove(conf);
}

}  // namespace
