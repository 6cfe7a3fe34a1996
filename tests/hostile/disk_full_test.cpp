// Finding 12 of issue 13: on a full disk, writes answered 500 store_error (the error contract
// says 503 with Retry-After for a store that cannot write), and /healthz said writable: true for
// a while after writes had failed. The data directory here is a small tmpfs the test fills up.
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/hostile/hostile_support.h"
#include "tests/support/api_expect.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// A tmpfs of `size` mounted at `path` for the test's life (root only; detached lazily so a
// still-running hub cannot keep it busy).
class TmpfsMount {
 public:
  void mount(const std::string& path, const std::string& size) {
    std::filesystem::create_directories(path);
    if (::mount("tmpfs", path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, ("size=" + size + ",mode=0700").c_str()) == 0)
      path_ = path;
    else
      error_ = std::strerror(errno);
  }
  ~TmpfsMount() {
    if (!path_.empty()) ::umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return !path_.empty(); }
  const std::string& error() const { return error_; }

 private:
  std::string path_;
  std::string error_;
};

// Writes a file of zeros until the filesystem is full; its size.
int64_t fill(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  std::vector<char> block(65536, 0);
  int64_t total = 0;
  for (;;) {
    ssize_t w = ::write(fd, block.data(), block.size());
    if (w <= 0) break;
    total += w;
  }
  ::fsync(fd);
  ::close(fd);
  return total;
}

TEST(Finding12DiskFull, WritesAre503WithRetryAfterAndHealthzSaysSo) {
  TmpfsMount mount;
  HubFixture hub(HubFixture::relaxed_limits(), [&](const std::string& data_dir) { mount.mount(data_dir, "8m"); });
  ASSERT_TRUE(mount.mounted()) << "cannot mount a tmpfs (this test runs as root): " << mount.error();
  LiveTerminal live(hub);
  std::string filler = hub.data_dir() + "/data/filler";  // inside the tmpfs
  int64_t filled = fill(filler);
  ASSERT_GT(filled, 0);
  // Two pages left: a write that needs more fails part-way, and the pages it got stay in the WAL
  // file, where the next small write (the old /healthz probe) fits and "succeeds".
  ASSERT_EQ(::truncate(filler.c_str(), filled - 8192), 0);

  // Writes until one fails (the WAL may still hold a few): that one is 503 store_unavailable.
  HttpResult refused;
  int ok = 0;
  for (int i = 0; i < 2000 && refused.status == 0; ++i) {
    auto r = hub.api("POST", "/api/v1/tokens", R"({"name": "fill-)" + std::to_string(i) + std::string(100, 'x') + R"("})");
    if (r.status == 201) ++ok;
    else refused = r;
  }
  std::printf("disk full: %d writes went in before the first refusal: %s\n", ok, refused.body.c_str());
  expect_error(refused, 503, "store_unavailable");
  EXPECT_TRUE(refused.headers.count("retry-after")) << "no Retry-After";
  auto health = http(hub.port(), "GET", "/healthz");
  EXPECT_EQ(health.status, 503) << health.body;
  auto h = json::parse(health.body, nullptr, false);
  ASSERT_TRUE(h.is_object()) << health.body;
  EXPECT_EQ(h["store"]["writable"], false) << health.body;
  EXPECT_FALSE(h["store"].value("error", "").empty()) << health.body;
  // Reads go on, and the relay never needed the disk.
  EXPECT_EQ(hub.api("GET", "/api/v1/terminals").status, 200);
  ASSERT_TRUE(hub.process().running()) << hub.log();

  // Space again: /healthz recovers, and so do writes.
  std::filesystem::remove(filler);
  EXPECT_TRUE(eventually([&] {
    auto j = json::parse(http(hub.port(), "GET", "/healthz").body, nullptr, false);
    return j.is_object() && j["store"]["writable"] == true;
  }, 15s)) << http(hub.port(), "GET", "/healthz").body;
  EXPECT_EQ(hub.api("POST", "/api/v1/tokens", R"({"name": "after"})").status, 201);
  live.expect_alive();
  hub.kill9();
}

// Issue 18: the recordings' disk fills up. The terminal goes on echoing, the hub says so (log
// line, metric), and once space is back the recording takes lines again, with a marker saying
// output is missing.
TEST(RecordingDiskFull, TheTerminalGoesOnAndTheRecordingSaysWhatItLost) {
  TmpfsMount mount;
  HubFixture hub(HubFixture::relaxed_limits(),
                 [&](const std::string& data_dir) { mount.mount(data_dir + "/recordings", "1m"); });
  ASSERT_TRUE(mount.mounted()) << "cannot mount a tmpfs (this test runs as root): " << mount.error();
  LiveTerminal live(hub);
  auto list = json::parse(hub.api("GET", "/api/v1/recordings?terminal=" + live.id()).body);
  ASSERT_EQ(list["recordings"].size(), 1u) << list.dump();
  std::string rid = list["recordings"][0]["id"];
  std::string filler = hub.data_dir() + "/data/recordings/filler";
  ASSERT_GT(fill(filler), 0);
  Viewer v;
  ASSERT_TRUE(v.attach(hub, live.id()));
  // Output on a full disk: every line the writer tries fails.
  v.type("for i in $(seq 1 2000); do echo full-disk-line-$i; done\r");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("full-disk-line-2000"); }, 15s)) << v.output;
  ASSERT_TRUE(hub.process().wait_for_log("recording.write_failed", 10s)) << hub.log();
  auto metric = [&] {
    auto m = hub.api("GET", "/metrics").body;
    auto at = m.find("\nrexec_recording_write_failures_total ");
    return at == std::string::npos ? -1.0 : std::stod(m.substr(at + 38));
  };
  EXPECT_EQ(metric(), 1.0);
  live.expect_alive();  // keystrokes echo while the recording cannot write
  // Space again: the next lines land, after a marker that says output is missing.
  ASSERT_EQ(::unlink(filler.c_str()), 0);
  v.type("echo space-$((7*6))\r");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("space-42"); }, 10s)) << v.output;
  std::string cast;
  ASSERT_TRUE(eventually([&] {
    cast = hub.api("GET", "/api/v1/recordings/" + rid + ".cast").body;
    return cast.find("space-42") != std::string::npos && cast.find("is not in this recording") != std::string::npos;
  }, 15s)) << cast.substr(cast.size() > 2000 ? cast.size() - 2000 : 0);
  std::istringstream in(cast);
  for (std::string line; std::getline(in, line);)
    EXPECT_FALSE(json::parse(line, nullptr, false).is_discarded()) << "a torn line: " << line;
  // A small line may still fit in the file's last page, but most of the 2000 cannot have.
  size_t lines_in = 0;
  for (size_t at = cast.find("full-disk-line-"); at != std::string::npos; at = cast.find("full-disk-line-", at + 1)) ++lines_in;
  EXPECT_LT(lines_in, 1000u) << "output written while the disk was full?";
}

}  // namespace
}  // namespace rx::test
