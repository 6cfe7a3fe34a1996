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
  StatsSampler s({dir.string(), "/etc", ""});
  auto first = s.sample();
  EXPECT_EQ(first.cpu_permille, 0u);  // no interval yet
  EXPECT_EQ(first.memory_total, 1000u * 1024);
  EXPECT_EQ(first.memory_used, 600u * 1024);
  std::ofstream(dir / "stat", std::ios::trunc) << "cpu  150 0 150 900 0 0 0 0\n";
  EXPECT_EQ(s.sample().cpu_permille, 500u);  // 100 busy of 200
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
  HostPaths paths{(dir / "proc").string(), "/etc", smi.string()};
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
