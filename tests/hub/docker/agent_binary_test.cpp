// check_agent_binary (hub/docker/agent_binary.h): the real static agent passes; everything a container
// could not run is refused with agent_binary_missing and a reason naming the path.
#include "hub/docker/agent_binary.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

namespace rx::hub {
namespace {

namespace fs = std::filesystem;

class AgentBinary : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "rexec-agent-binary-" + std::to_string(::getpid());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes, mode_t mode) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p, std::ios::binary) << bytes;
    ::chmod(p.c_str(), mode);
    return p;
  }
  static std::string read(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  static void expect_refused(const std::string& path, const std::string& why) {
    auto s = check_agent_binary(path);
    ASSERT_FALSE(s) << path;
    EXPECT_EQ(s.error().code, "agent_binary_missing");
    EXPECT_NE(s.error().message.find(path), std::string::npos) << s.error().message;
    EXPECT_NE(s.error().message.find(why), std::string::npos) << s.error().message;
  }
  std::string dir_;
};

std::string static_agent() { return std::string(REXEC_SOURCE_DIR) + "/build/static-agent/agent/rexec-agent"; }

TEST_F(AgentBinary, TheStaticAgentIsUsable) {
  if (!fs::exists(static_agent())) {
    if (std::getenv("REXEC_REQUIRE_STATIC_AGENT")) FAIL() << "no static agent at " << static_agent();
    GTEST_SKIP() << "no static agent (cmake --preset static-agent)";
  }
  auto s = check_agent_binary(static_agent());
  EXPECT_TRUE(s) << (s ? "" : s.error().message);
  // A copy of it without the execute bits is not.
  expect_refused(write("agent-0644", read(static_agent()), 0644), "not executable");
}

TEST_F(AgentBinary, WhatAContainerCannotRunIsRefused) {
  expect_refused(dir_ + "/absent", "No such file");
  expect_refused(dir_, "not a regular file");
  expect_refused(write("script", "#!/bin/sh\nexit 0\n", 0755), "not an ELF");
  expect_refused(write("empty", "", 0755), "not an ELF");
  expect_refused("/bin/ls", "dynamically linked");  // Debian's ls: PT_INTERP /lib64/ld-linux-x86-64.so.2
  std::string ls = read("/bin/ls");
  ASSERT_GT(ls.size(), 64u);
  expect_refused(write("cut", ls.substr(0, 64), 0755), "program headers");  // the ELF header and nothing more
  std::string other = ls;
  other[18] = char(0xb7);  // e_machine = EM_AARCH64 (on x86_64) / anything else on arm64
  other[19] = 0;
#if defined(__aarch64__)
  other[18] = 62;  // EM_X86_64
#endif
  expect_refused(write("other-cpu", other, 0755), "another CPU");
}

TEST(AgentBinaryDefault, IsBesideTheHubsPrefix) {
  std::string p = default_agent_binary();
  EXPECT_TRUE(p.ends_with("/lib/rexec/rexec-agent")) << p;
}

}  // namespace
}  // namespace rx::hub
