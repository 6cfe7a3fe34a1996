// The shipped rexec-agent: the static-agent preset's binary must be fully static (no ELF
// interpreter, no shared libraries), stripped, at most 6 MiB, and work against a real hub.
// make test builds it first and sets REXEC_REQUIRE_STATIC_AGENT=1, so there it cannot be skipped.
#include <elf.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/integration/relay_support.h"

namespace rx::test {
namespace {

using namespace std::chrono_literals;

std::string static_agent() { return std::string(REXEC_SOURCE_DIR) + "/build/static-agent/agent/rexec-agent"; }

void require_static_agent() {
  if (std::filesystem::exists(static_agent())) return;
  if (std::getenv("REXEC_REQUIRE_STATIC_AGENT")) FAIL() << static_agent() << " was not built";
  GTEST_SKIP() << "build it with: cmake --preset static-agent && cmake --build --preset static-agent";
}

TEST(StaticAgent, IsStaticStrippedAndSmall) {
  require_static_agent();
  if (testing::Test::IsSkipped() || testing::Test::HasFailure()) return;
  std::string elf = read_file(static_agent());
  ASSERT_GT(elf.size(), sizeof(Elf64_Ehdr));
  EXPECT_LE(elf.size(), 6u * 1024 * 1024) << "binary size " << elf.size();
  auto* eh = reinterpret_cast<const Elf64_Ehdr*>(elf.data());
  ASSERT_EQ(std::string(reinterpret_cast<const char*>(eh->e_ident), 4), "\x7f" "ELF");
  for (int i = 0; i < eh->e_phnum; ++i) {
    auto* ph = reinterpret_cast<const Elf64_Phdr*>(elf.data() + eh->e_phoff + size_t(i) * eh->e_phentsize);
    EXPECT_NE(ph->p_type, uint32_t(PT_INTERP)) << "has an ELF interpreter: dynamically linked";
    EXPECT_NE(ph->p_type, uint32_t(PT_DYNAMIC)) << "has a dynamic section";
  }
  bool symtab = false;
  for (int i = 0; i < eh->e_shnum; ++i) {
    auto* sh = reinterpret_cast<const Elf64_Shdr*>(elf.data() + eh->e_shoff + size_t(i) * eh->e_shentsize);
    symtab = symtab || sh->sh_type == SHT_SYMTAB;
  }
  EXPECT_FALSE(symtab) << "not stripped";
}

TEST(StaticAgent, RunsTerminalsAgainstARealHub) {
  require_static_agent();
  if (testing::Test::IsSkipped() || testing::Test::HasFailure()) return;
  HubFixture hub;
  TempDir dir("rexec-static");
  std::string cred = dir / "credential";
  Process agent({static_agent(), "--hub", "ws://127.0.0.1:" + std::to_string(hub.port()), "--enroll-token-file", "-",
                 "--credential-file", cred, "--name", "static", "--shell", "/bin/sh"},
                {{"PATH", "/usr/bin:/bin"}}, dir / "agent.log", hub.enroll() + "\n");
  ASSERT_TRUE(wait_online(hub, "static", 5s)) << agent.log();
  auto id = create_terminal(hub, "static");
  ASSERT_FALSE(id.empty());
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  v.type("echo $((6*7))\n");
  EXPECT_TRUE(v.until([](const Viewer& v) { return v.saw("42\r\n"); }, 10s)) << v.output << agent.log();
}

}  // namespace
}  // namespace rx::test
