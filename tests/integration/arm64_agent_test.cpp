// The arm64 rexec-agent (preset static-agent-arm64, cross-built with g++-aarch64-linux-gnu) under
// qemu-user: it must be a static aarch64 ELF, enroll against a real hub on loopback, connect, run a
// terminal, and run `uname -m` -> "aarch64" through POST /api/v1/exec.
//
// The agent runs as `qemu-aarch64-static rexec-agent`. For `uname -m` to answer aarch64 the
// program the agent starts must be an aarch64 one under qemu too (an amd64 uname would say
// x86_64): the agent runs inside its own user and mount namespace with a private binfmt_misc
// (Linux >= 6.7 gives each user namespace its own) that hands aarch64 ELFs to qemu, and the exec's
// PATH names Debian's busybox-static:arm64 as `uname` (scripts/install-deps.sh unpacks it; dpkg
// cannot install it beside the amd64 one). Nothing of the machine's own binfmt setup is touched.
// make test builds the agent first and sets REXEC_REQUIRE_STATIC_AGENT=1: there it cannot skip.
#include <elf.h>
#include <gtest/gtest.h>
#include <sys/utsname.h>

#include <filesystem>

#include "tests/integration/relay_support.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string arm64_agent() { return std::string(REXEC_SOURCE_DIR) + "/build/static-agent-arm64/agent/rexec-agent"; }
constexpr const char* kQemu = "/usr/bin/qemu-aarch64-static";
constexpr const char* kBusybox = "/usr/local/lib/aarch64-linux-gnu/busybox";  // from scripts/install-deps.sh

void require_arm64() {
  for (const std::string& path : {arm64_agent(), std::string(kQemu), std::string(kBusybox)}) {
    if (fs::exists(path)) continue;
    if (std::getenv("REXEC_REQUIRE_STATIC_AGENT")) FAIL() << path << " is missing";
    GTEST_SKIP() << path << " is missing: scripts/install-deps.sh, then cmake --preset static-agent-arm64 && "
                            "cmake --build --preset static-agent-arm64";
  }
}

// binfmt_misc registration of aarch64 ELF executables (Debian's qemu-user-static magic and mask),
// 'F': qemu is opened now, so it needs no path inside whatever the agent's children see.
constexpr const char* kBinfmtRule =
    ":rexec-aarch64:M::\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7"
    "\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:"
    "/usr/bin/qemu-aarch64-static:F";

TEST(Arm64Agent, IsAStaticAarch64Executable) {
  require_arm64();
  if (testing::Test::IsSkipped() || testing::Test::HasFailure()) return;
  std::string elf = read_file(arm64_agent());
  ASSERT_GT(elf.size(), sizeof(Elf64_Ehdr));
  auto* eh = reinterpret_cast<const Elf64_Ehdr*>(elf.data());
  ASSERT_EQ(std::string(reinterpret_cast<const char*>(eh->e_ident), 4), "\x7f" "ELF");
  EXPECT_EQ(eh->e_machine, EM_AARCH64);
  for (int i = 0; i < eh->e_phnum; ++i) {
    auto* ph = reinterpret_cast<const Elf64_Phdr*>(elf.data() + eh->e_phoff + size_t(i) * eh->e_phentsize);
    EXPECT_NE(ph->p_type, uint32_t(PT_INTERP)) << "has an ELF interpreter: dynamically linked";
  }
  EXPECT_LE(elf.size(), 6u * 1024 * 1024) << "binary size " << elf.size();
  std::printf("arm64 agent: %zu bytes\n", elf.size());
}

TEST(Arm64Agent, EnrollsConnectsAndRunsUnameUnderQemu) {
  require_arm64();
  if (testing::Test::IsSkipped() || testing::Test::HasFailure()) return;
  HubFixture hub;
  TempDir dir("rexec-arm64");
  fs::create_directories(dir / "bin");
  fs::create_directories(dir / "binfmt");
  fs::create_symlink(kBusybox, dir / "bin/uname");
  std::string hub_url = "ws://127.0.0.1:" + std::to_string(hub.port());
  // The enrollment token arrives on stdin, which `exec` hands on to the agent.
  std::string script = "mount -t binfmt_misc binfmt_misc " + dir / "binfmt" + " && printf '%s' '" + kBinfmtRule +
                       "' > " + dir / "binfmt/register" + " && echo binfmt=ok >&2;\nexec " + kQemu + " " +
                       arm64_agent() + " --hub " + hub_url + " --enroll-token-file - --credential-file " +
                       dir / "credential" + " --name arm64 --shell /bin/sh";
  Process agent({"/usr/bin/unshare", "--user", "--map-root-user", "--mount", "/bin/sh", "-c", script}, child_env(),
                dir / "agent.log", hub.enroll() + "\n");
  ASSERT_TRUE(wait_online(hub, "arm64", 60s)) << agent.log();

  json listed;
  auto agents = json::parse(hub.api("GET", "/api/v1/agents").body)["agents"];
  for (const auto& a : agents)
    if (a["name"] == "arm64") listed = a;
  EXPECT_EQ(listed["host"]["arch"], "aarch64") << listed.dump();

  // A terminal works too: PTYs and their ioctls through qemu's syscall translation.
  auto id = create_terminal(hub, "arm64");
  ASSERT_FALSE(id.empty());
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  v.type("echo $((6*7))\n");
  EXPECT_TRUE(v.until([](const Viewer& v) { return v.saw("42\r\n"); }, 20s)) << v.output << agent.log();

  utsname u{};
  ::uname(&u);
  bool binfmt = agent.log().find("binfmt=ok") != std::string::npos;
  int major = 0, minor = 0;
  std::sscanf(u.release, "%d.%d", &major, &minor);
  if (!binfmt) {
    // Before Linux 6.7 a user namespace cannot have its own binfmt_misc, so the agent's children
    // are amd64 programs: `uname -m` would say x86_64. The agent's own arch (above) still shows qemu.
    ASSERT_TRUE(major < 6 || (major == 6 && minor < 7)) << "binfmt_misc in a user namespace failed on " << u.release
                                                         << ":\n" << agent.log();
    GTEST_SKIP() << "kernel " << u.release << " has no per-namespace binfmt_misc: exec of uname not checked";
  }
  json body = {{"targets", {"arm64"}}, {"argv", {"uname", "-m"}}, {"env", {{"PATH", dir / "bin"}}}, {"timeout_s", 60}};
  auto r = hub.api("POST", "/api/v1/exec", body.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  auto results = json::parse(r.body)["results"];
  ASSERT_EQ(results.size(), 1u) << r.body;
  EXPECT_EQ(results[0]["exit_code"], 0) << r.body;
  EXPECT_EQ(results[0]["stdout"], "aarch64\n") << r.body;
}

}  // namespace
}  // namespace rx::test
