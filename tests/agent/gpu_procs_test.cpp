// agent/gpu_procs.cpp and the GPU part of the stats sampler: the compute-apps parser on real
// nvidia-smi output, owners and parent chains from fixture /proc trees and the real /proc, and the
// real sampler running tests/gpu/fake-nvidia-smi with real child processes.
#include "agent/gpu_procs.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "agent/host.h"
#include "agent/process.h"

#include "tests/agent/read_output.h"

namespace rx::agent {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
constexpr uint64_t kMiB = 1024 * 1024;

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    std::string t = (fs::temp_directory_path() / ("rexec-" + tag + "-XXXXXX")).string();
    path = ::mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

TEST(ComputeApps, ParsesNvidiaSmiOutput) {
  auto apps = parse_compute_apps(
      "GPU-aaaa, 4242, python3, 1024\n"
      "GPU-bbbb, 17, /opt/my,odd app, 512\n"  // a comma in the name
      "GPU-aaaa, 99, [N/A], [N/A]\n"          // MIG and some drivers
      "garbage\n"
      "GPU-cccc, notapid, x, 1\n"
      ", 5, x, 1\n"
      "\n");
  ASSERT_EQ(apps.size(), 3u);
  EXPECT_EQ(apps[0], (ComputeApp{"GPU-aaaa", 4242, "python3", 1024 * kMiB}));
  EXPECT_EQ(apps[1], (ComputeApp{"GPU-bbbb", 17, "/opt/my,odd app", 512 * kMiB}));
  EXPECT_EQ(apps[2], (ComputeApp{"GPU-aaaa", 99, "[N/A]", 0}));
}

TEST(ProcTree, OwnerAndParentFromAFixtureTree) {
  TempDir proc("proc");
  auto add = [&](uint32_t pid, uint32_t ppid, uint32_t uid, const std::string& comm) {
    fs::create_directories(proc.path / std::to_string(pid));
    std::ofstream(proc.path / std::to_string(pid) / "status") << "Name:\t" << comm << "\nUid:\t" << uid << "\t" << uid + 1
                                                              << "\t0\t0\n";
    std::ofstream(proc.path / std::to_string(pid) / "stat") << pid << " (" << comm << ") S " << ppid << " 1 1 0\n";
  };
  add(100, 1, 0, "bash");
  add(200, 100, 1001, "weird) S 7 (name");  // comm may hold ") " and digits
  add(300, 200, 1001, "python3");
  add(400, 400, 0, "self-parent");  // a broken tree must not loop
  EXPECT_EQ(process_uid(proc.path.string(), 300), 1001u);  // the real uid, not the effective
  EXPECT_EQ(parent_pid(proc.path.string(), 200), 100u);
  EXPECT_FALSE(process_uid(proc.path.string(), 999));
  ChannelPids channels{{100, 7}};
  EXPECT_EQ(channel_of(proc.path.string(), 300, channels), 7u);
  EXPECT_EQ(channel_of(proc.path.string(), 100, channels), 7u);
  EXPECT_EQ(channel_of(proc.path.string(), 400, channels), 0u);
  EXPECT_EQ(channel_of(proc.path.string(), 999, channels), 0u);

  TempDir etc("etc");
  std::ofstream(etc.path / "passwd") << "root:x:0:0::/root:/bin/sh\nalice:x:1001:1001::/home/alice:/bin/sh\n";
  std::ofstream(etc.path / "group") << "";
  GpuProcessContext ctx{proc.path.string(), etc.path.string(), {{"alice", "al"}}, channels};
  EXPECT_EQ(describe_process({"GPU-a", 300, "python3", 5}, ctx), (protocol::GpuProcess{300, "python3", 5, "alice", "al", 7}));
  add(500, 1, 4242, "nameless");
  EXPECT_EQ(describe_process({"GPU-a", 500, "x", 0}, ctx).account, "#4242");
  EXPECT_EQ(describe_process({"GPU-a", 999, "gone", 0}, ctx), (protocol::GpuProcess{999, "gone", 0, "", "", 0}));
}

TEST(ProcTree, RealProcOfThisProcess) {
  EXPECT_EQ(process_uid("/proc", uint32_t(::getpid())), ::getuid());
  EXPECT_EQ(parent_pid("/proc", uint32_t(::getpid())), uint32_t(::getppid()));
}

// --- the real sampler against the fake nvidia-smi ------------------------------------------

using test::read_until;

class FakeSmi : public testing::Test {
 protected:
  void SetUp() override {
    fs::copy_file(fs::path(REXEC_SOURCE_DIR) / "tests/gpu/fake-nvidia-smi", dir_.path / "nvidia-smi");
    fs::create_directories(dir_.path / "state");
    std::ofstream(dir_.path / "state/gpus.csv") << "0, GPU-aaaa, NVIDIA A100, 81920, 10, 1024\n"
                                                   "1, GPU-bbbb, NVIDIA A100, 81920, 95, 40960\n"
                                                   "2, GPU-cccc, NVIDIA A100, 81920, 0, 0\n";
  }
  std::string smi() const { return (dir_.path / "nvidia-smi").string(); }
  void apps(const std::string& csv) { std::ofstream(dir_.path / "state/apps.csv") << csv; }
  TempDir dir_{"smi"};
};

TEST_F(FakeSmi, AnswersBothQueriesAndRefusesOthers) {
  EXPECT_NE(run_nvidia_smi(smi()).find("GPU-bbbb"), std::string::npos);
  EXPECT_EQ(run_nvidia_smi(smi(), compute_apps_args()), "");  // no apps.csv: no output, exit 0
  apps("GPU-aaaa, 1, x, 1\n");
  EXPECT_EQ(run_nvidia_smi(smi(), compute_apps_args()), "GPU-aaaa, 1, x, 1\n");
  // Exit 6 for anything else: run_nvidia_smi reports failure as no output.
  EXPECT_EQ(run_nvidia_smi(smi(), {"-L"}), "");
  struct stat st {};
  ASSERT_EQ(::stat((fs::path(REXEC_SOURCE_DIR) / "tests/gpu/fake-nvidia-smi").c_str(), &st), 0);
  EXPECT_TRUE(st.st_mode & S_IXUSR) << "the committed script must be executable";
}

TEST_F(FakeSmi, SamplerAttributesRealProcessesToGpusAccountsAndChannels) {
  // A "terminal": a shell whose child sleeps (the shell is the channel's child pid).
  SpawnOptions term;
  term.argv = {"/bin/sh", "-c", "sleep 30 & echo sleeper=$!; wait"};
  auto channel = ExecProcess::spawn(term);
  ASSERT_TRUE(channel.ok()) << channel.error().message;
  auto out = read_until((*channel)->stdout_fd(), "\n");
  auto pos = out.find("sleeper=");
  ASSERT_NE(pos, std::string::npos) << out;
  uint32_t in_channel = uint32_t(std::stoul(out.substr(pos + 8)));
  // A process of no channel.
  SpawnOptions lone;
  lone.argv = {"/bin/sleep", "30"};
  auto outside = ExecProcess::spawn(lone);
  ASSERT_TRUE(outside.ok());
  uint32_t outside_pid = uint32_t((*outside)->child().pid());

  apps("GPU-bbbb, " + std::to_string(in_channel) + ", python3, 2048\n"
       "GPU-cccc, " + std::to_string(outside_pid) + ", /usr/bin/sleep, [N/A]\n"
       "GPU-zzzz, " + std::to_string(outside_pid) + ", unknown-gpu, 1\n");
  StatsSampler sampler({"/proc", "/etc", smi(), ""}, {{current_account().name, "ops"}});
  auto s = sampler.sample({{uint32_t((*channel)->child().pid()), 5}});
  ASSERT_EQ(s.gpus.size(), 3u);
  EXPECT_TRUE(s.gpus[0].processes.empty());
  ASSERT_EQ(s.gpus[1].processes.size(), 1u);
  const auto& p = s.gpus[1].processes[0];
  EXPECT_EQ(p.pid, in_channel);
  EXPECT_EQ(p.name, "python3");
  EXPECT_EQ(p.memory_used, 2048 * kMiB);
  EXPECT_EQ(p.account, current_account().name);  // root when the suite runs as root
  EXPECT_EQ(p.user, "ops");
  EXPECT_EQ(p.channel, 5u);
  ASSERT_EQ(s.gpus[2].processes.size(), 1u);
  EXPECT_EQ(s.gpus[2].processes[0], (protocol::GpuProcess{outside_pid, "/usr/bin/sleep", 0, current_account().name, "ops", 0}));
  EXPECT_EQ(s.gpus[1].memory_used, 40960 * kMiB);  // the --query-gpu part is unchanged

  // Without the channel registered, the same process belongs to none.
  EXPECT_EQ(sampler.sample().gpus[1].processes.at(0).channel, 0u);
}

}  // namespace
}  // namespace rx::agent
