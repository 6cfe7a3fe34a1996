// agent/host.cpp: parsers on fixture text (real formats), a fake nvidia-smi (no GPU here: the
// fixture is the external program, not our code), and the real /proc of this machine.
#include "agent/host.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace rx::agent {
namespace {

namespace fs = std::filesystem;

const char* kInformation =
    "Model: \t\t NVIDIA GeForce RTX 3090\n"
    "IRQ:   \t\t 150\n"
    "GPU UUID: \t GPU-8f6a2c1e-3b4d-4e5f-9a0b-1c2d3e4f5a6b\n"
    "Video BIOS: \t 94.02.42.00.a9\n"
    "Bus Type: \t PCIe\n"
    "DMA Size: \t 47 bits\n"
    "DMA Mask: \t 0x7fffffffffff\n"
    "Bus Location: \t 0000:41:00.0\n"
    "Device Minor: \t 1\n"
    "GPU Excluded:\t No\n";

TEST(Host, ParsesOsRelease) {
  EXPECT_EQ(parse_os_release("NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)");
  EXPECT_EQ(parse_os_release("PRETTY_NAME='Alpine \\\"edge\\\"'\n"), "Alpine \"edge\"");
  EXPECT_EQ(parse_os_release("PRETTY_NAME=Plain\n"), "Plain");
  EXPECT_EQ(parse_os_release("garbage\n\n"), "");
}

TEST(Host, CpuPermilleFromTwoProcStatSamples) {
  auto a = parse_proc_stat("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n");
  auto b = parse_proc_stat("cpu  250 0 150 800 100 0 0 0 0 0\n");
  ASSERT_TRUE(a && b);
  // busy went 200 -> 400, total 1000 -> 1300: 200 of 300 jiffies busy = 666 per mille
  EXPECT_EQ((b->busy - a->busy) * 1000 / (b->total - a->total), 666u);
  EXPECT_FALSE(parse_proc_stat("intr 1 2 3\n"));
  EXPECT_FALSE(parse_proc_stat("cpu 1 2\n"));
}

TEST(Host, SamplerUsesDeltasNotLoadAverage) {
  auto dir = fs::temp_directory_path() / ("rexec-proc-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "meminfo") << "MemTotal:       1000 kB\nMemFree:  100 kB\nMemAvailable:    400 kB\n";
  std::ofstream(dir / "loadavg") << "99.00 99.00 99.00 1/1 1\n";  // must be ignored
  std::ofstream(dir / "stat") << "cpu  100 0 100 800 0 0 0 0\n";
  StatsSampler s({dir.string(), "/etc", "", ""});
  auto first = s.sample();
  EXPECT_EQ(first.cpu_permille, 0u);  // no interval yet
  EXPECT_EQ(first.memory_total, 1000u * 1024);
  EXPECT_EQ(first.memory_used, 600u * 1024);
  std::ofstream(dir / "stat", std::ios::trunc) << "cpu  150 0 150 900 0 0 0 0\n";
  EXPECT_EQ(s.sample().cpu_permille, 500u);  // 100 busy of 200
  // A new sampler read the CPU when it was made: its first sample already has an interval.
  StatsSampler fresh({dir.string(), "/etc", "", ""});
  std::ofstream(dir / "stat", std::ios::trunc) << "cpu  250 0 150 1000 0 0 0 0\n";
  EXPECT_EQ(fresh.sample().cpu_permille, 500u);
  fs::remove_all(dir);
}

// Inside a container /proc is the host's: the container's own cgroup gives its CPU time and
// memory. Both cgroup versions, from fixture files, at chosen times.
TEST(Host, InAContainerTheCgroupIsReportedNotTheHost) {
  auto dir = fs::temp_directory_path() / ("rexec-cgroup-" + std::to_string(::getpid()));
  fs::create_directories(dir / "proc");
  std::ofstream(dir / "proc/meminfo") << "MemTotal: 1048576 kB\nMemAvailable: 524288 kB\n";
  std::ofstream(dir / "proc/stat") << "cpu 900 0 0 100 0 0 0 0\n";  // a busy host: must not show
  // v2, quota of half a CPU, 64 MiB limit.
  auto v2 = dir / "v2";
  fs::create_directories(v2);
  std::ofstream(v2 / "cpu.stat") << "usage_usec 1000000\nuser_usec 900000\n";
  std::ofstream(v2 / "memory.current") << "8388608\n";
  std::ofstream(v2 / "memory.max") << "67108864\n";
  std::ofstream(v2 / "cpu.max") << "50000 100000\n";
  StatsSampler s2({(dir / "proc").string(), "/etc", "", v2.string()});
  auto first = s2.sample_at(1'000'000'000);  // (before the reading taken at construction: no interval)
  EXPECT_EQ(first.cpu_permille, 0u);
  EXPECT_EQ(first.memory_used, 8u << 20);
  EXPECT_EQ(first.memory_total, 64u << 20);
  std::ofstream(v2 / "cpu.stat", std::ios::trunc) << "usage_usec 1250000\n";  // +0.25 s of CPU in 1 s
  EXPECT_EQ(s2.sample_at(2'000'000'000).cpu_permille, 500u);  // half of its half-CPU quota
  // v1, no quota (all CPUs), no memory limit (the kernel's huge number): the host's total.
  auto v1 = dir / "v1";
  fs::create_directories(v1 / "cpuacct");
  fs::create_directories(v1 / "memory");
  fs::create_directories(v1 / "cpu");
  std::ofstream(v1 / "cpuacct/cpuacct.usage") << "0\n";
  std::ofstream(v1 / "memory/memory.usage_in_bytes") << "4096\n";
  std::ofstream(v1 / "memory/memory.limit_in_bytes") << "9223372036854771712\n";
  std::ofstream(v1 / "cpu/cpu.cfs_quota_us") << "-1\n";
  std::ofstream(v1 / "cpu/cpu.cfs_period_us") << "100000\n";
  StatsSampler s1({(dir / "proc").string(), "/etc", "", v1.string()});
  auto a = s1.sample_at(0 + 1);
  EXPECT_EQ(a.memory_used, 4096u);
  EXPECT_EQ(a.memory_total, 1048576ull * 1024);
  long cpus = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
  std::ofstream(v1 / "cpuacct/cpuacct.usage", std::ios::trunc) << uint64_t(cpus) * 1'000'000'000ull << "\n";
  EXPECT_EQ(s1.sample_at(1'000'000'001).cpu_permille, 1000u);  // every CPU busy for the whole second
  // Not a cgroup at all: the host's /proc, as before.
  StatsSampler none({(dir / "proc").string(), "/etc", "", (dir / "nothing").string()});
  EXPECT_EQ(none.sample_at(1).memory_used, 512u * 1024 * 1024);
  EXPECT_FALSE(read_cgroup((dir / "nothing").string()));
  fs::remove_all(dir);
}

TEST(Host, ParsesNvidiaInformation) {
  auto g = parse_nvidia_information(kInformation);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->model, "NVIDIA GeForce RTX 3090");
  EXPECT_EQ(g->uuid, "GPU-8f6a2c1e-3b4d-4e5f-9a0b-1c2d3e4f5a6b");
  EXPECT_EQ(g->index, 1u);
  EXPECT_FALSE(parse_nvidia_information("IRQ: 5\n"));
}

TEST(Host, ParsesNvidiaSmiIncludingNotAvailable) {
  auto rows = parse_nvidia_smi(
      "0, GPU-aaa, NVIDIA A100-SXM4-80GB, 81920, 97, 40000\n"
      "1, GPU-bbb, NVIDIA A100-SXM4-80GB, [N/A], [N/A], [N/A]\n"
      "garbage line\n"
      "x, y, z, w\n");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].memory_total, 81920ull * 1024 * 1024);
  EXPECT_EQ(rows[0].utilization, 97u);
  EXPECT_EQ(rows[0].memory_used, 40000ull * 1024 * 1024);
  EXPECT_EQ(rows[1].memory_total, 0u);
  EXPECT_FALSE(rows[1].utilization);
}

TEST(Host, GpusFromFixtureRootAndFakeNvidiaSmi) {
  auto dir = fs::temp_directory_path() / ("rexec-gpu-" + std::to_string(::getpid()));
  fs::create_directories(dir / "proc/driver/nvidia/gpus/0000:41:00.0");
  std::ofstream(dir / "proc/driver/nvidia/gpus/0000:41:00.0/information") << kInformation;
  std::ofstream(dir / "proc/meminfo") << "MemTotal: 2048 kB\nMemAvailable: 1024 kB\n";
  std::ofstream(dir / "proc/stat") << "cpu 1 1 1 1 0 0 0 0\n";
  auto smi = dir / "nvidia-smi";
  std::ofstream(smi) << "#!/bin/sh\necho '1, GPU-8f6a2c1e-3b4d-4e5f-9a0b-1c2d3e4f5a6b, NVIDIA GeForce RTX 3090, 24576, 55, 1000'\n";
  fs::permissions(smi, fs::perms::owner_all);
  HostPaths paths{(dir / "proc").string(), "/etc", smi.string(), ""};
  auto h = collect_host_info(paths);
  ASSERT_EQ(h.gpus.size(), 1u);
  EXPECT_EQ(h.gpus[0].index, 1u);
  EXPECT_EQ(h.gpus[0].memory_total, 24576ull * 1024 * 1024);
  EXPECT_EQ(h.memory_total, 2048u * 1024);
  auto s = StatsSampler(paths).sample();
  ASSERT_EQ(s.gpus.size(), 1u);
  EXPECT_EQ(s.gpus[0].utilization, 55u);
  // A hanging nvidia-smi is given up on, not waited for.
  std::ofstream(smi, std::ios::trunc) << "#!/bin/sh\nsleep 30\n";
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(run_nvidia_smi(smi.string(), 300), "");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  fs::remove_all(dir);
}

TEST(Host, RealMachine) {
  auto h = collect_host_info({});
  EXPECT_FALSE(h.hostname.empty());
  EXPECT_FALSE(h.os.empty());
  EXPECT_FALSE(h.kernel.empty());
  EXPECT_GE(h.cpus, 1u);
  EXPECT_GT(h.memory_total, 0u);
}

}  // namespace
}  // namespace rx::agent
