// The .deb packages (make deb: cmake/packaging.cmake, installers/deb/) as an operator meets them:
// installed with apt on a clean Debian 12 container, both binaries run, the postinst made the
// hub's user, every path the units name is there; and the packaged hub, unpacked, finds the
// static agent it was installed with and runs container terminals with it, no flag given.
// make test builds the packages first (scripts/deb.sh) and sets REXEC_REQUIRE_DEB.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/integration/container_support.h"
#include "tests/support/api_expect.h"

namespace rx::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string deb_dir() { return std::string(REXEC_SOURCE_DIR) + "/build/deb"; }

// The one package file called NAME_*.deb in build/deb, or "".
std::string deb(const std::string& name) {
  std::string found;
  if (!fs::is_directory(deb_dir())) return found;
  for (const auto& e : fs::directory_iterator(deb_dir())) {
    std::string f = e.path().filename().string();
    if (f.rfind(name + "_", 0) == 0 && f.ends_with(".deb")) found = e.path().string();
  }
  return found;
}

// `sh -c SCRIPT`: exit status and output (stdout and stderr).
std::pair<int, std::string> sh(const std::string& script) {
  std::string out;
  std::FILE* p = ::popen(("(" + script + ") 2>&1").c_str(), "r");
  if (!p) return {-1, ""};
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

class DebPackages : public ContainerTest {
 protected:
  void SetUp() override {
    ContainerTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (deb("rexec-hub").empty() || deb("rexec-agent").empty()) {
      if (std::getenv("REXEC_REQUIRE_DEB")) FAIL() << "no packages in " << deb_dir() << " (make deb)";
      GTEST_SKIP() << "no packages in " << deb_dir() << " (make deb)";
    }
  }
};

TEST_F(DebPackages, InstallOnACleanDebianContainerAndRun) {
  // The host's network namespace: apt reaches the mirror this machine is configured with.
  std::string script = R"SH(set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq /debs/)SH" + fs::path(deb("rexec-hub")).filename().string() +
                       " /debs/" + fs::path(deb("rexec-agent")).filename().string() + R"SH( >/dev/null
rexec-hub --version
rexec-agent --version
echo "groups: $(id -nG rexec)"
echo "agent: $(od -An -c -N4 /usr/bin/rexec-agent | tr -d ' ')"
if ldd /usr/bin/rexec-agent >/dev/null 2>&1; then echo "agent: dynamic"; else echo "agent: static"; fi
cd /usr/lib/rexec/agents && sha256sum -c ./*.sha256
for u in /lib/systemd/system/rexec-hub.service /lib/systemd/system/rexec-agent.service; do
  test -f "$u" || { echo "MISSING unit $u"; continue; }
  grep -q /usr/local "$u" && echo "STALE /usr/local in $u"
  for p in $(grep -ho '/usr/[a-z/]*rexec-[a-z]*' "$u" | sort -u); do
    if [ -x "$p" ]; then echo "unit path ok: $p"; else echo "MISSING unit path $p"; fi
  done
done
)SH";
  // The script goes in as a file (read-only mount): no shell quoting of it on the way.
  TempDir work("rexec-deb-script");
  std::ofstream(work / "check.sh") << script;
  auto [rc, out] = sh("docker run --rm --network host -v " + deb_dir() + ":/debs:ro -v " + work.path() +
                      ":/check:ro rexec/debian:12 sh /check/check.sh");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("rexec-hub 0."), std::string::npos) << out;
  EXPECT_NE(out.find("rexec-agent 0."), std::string::npos) << out;
  EXPECT_NE(out.find("groups: rexec"), std::string::npos) << "the postinst made the hub's user\n" << out;
  EXPECT_NE(out.find("agent: 177ELF"), std::string::npos) << out;
  EXPECT_NE(out.find("agent: static"), std::string::npos) << "the packaged agent is the static one\n" << out;
  EXPECT_NE(out.find("rexec-agent-linux-amd64: OK"), std::string::npos) << out;
  EXPECT_NE(out.find("rexec-agent-linux-arm64: OK"), std::string::npos) << out;
  EXPECT_NE(out.find("unit path ok: /usr/bin/rexec-hub"), std::string::npos) << out;
  EXPECT_NE(out.find("unit path ok: /usr/bin/rexec-agent"), std::string::npos) << out;
  EXPECT_EQ(out.find("MISSING"), std::string::npos) << out;
  EXPECT_EQ(out.find("STALE"), std::string::npos) << out;
}

TEST_F(DebPackages, ThePackagedHubFindsItsAgentAndRunsContainers) {
  TempDir root("rexec-deb-root");
  auto [rc, out] = sh("dpkg-deb -x " + deb("rexec-hub") + " " + root.path());
  ASSERT_EQ(rc, 0) << out;
  std::string hub_bin = root / "usr/bin/rexec-hub";
  ASSERT_TRUE(fs::exists(hub_bin));
  HubFixture hub(HubFixture::relaxed_limits(), {}, hub_bin);  // no --agent-binary: the default
  json h = body(hub.api("GET", "/healthz"));
  EXPECT_EQ(h["containers"].value("agent_binary", ""), root / "usr/lib/rexec/rexec-agent") << h;
  EXPECT_EQ(h["containers"].value("usable", false), true) << h;
  std::string id = create(hub, {{"kind", "container"}, {"image", "rexec/busybox:latest"}});
  ASSERT_TRUE(wait_status(hub, id, "running")) << hub.log();
  auto r = exec(hub, id, {"echo", "from-the-package"});
  EXPECT_EQ(r.value("stdout", ""), "from-the-package\n") << r;
}

}  // namespace
}  // namespace rx::test
