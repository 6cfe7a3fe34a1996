// Finding 4 of issue 13: a viewer that never reads its socket and keeps sending frames that draw
// an event in reply (resize 0x0; input on a view-only share) grew the hub by 60-85 MB/s, and the
// memory stayed after it left: the per-viewer event queue had no bound. Now every per-connection
// queue has one (protocol/SPEC.md, "Bounds"); repeated error events are coalesced.
#include <cstdlib>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "protocol/viewer.h"
#include "tests/hostile/hostile_support.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace viewer = protocol::viewer;

// How much the hub may grow while two never-reading viewers flood it. The unbounded queue grew
// by more than this every second.
constexpr long kGrowthCapKib = 48 * 1024;
constexpr auto kFlood = 8s;

// Floods `path` with `message` for kFlood from a socket that reads nothing, reconnecting whenever
// the hub hangs up (as an attacker would). Returns how many messages went out.
struct Flooder {
  int port;
  std::string path;
  std::map<std::string, std::string> headers;
  std::vector<uint8_t> message;
  long sent = 0;
  int connections = 0;
  void run() {
    auto end = std::chrono::steady_clock::now() + kFlood;
    while (std::chrono::steady_clock::now() < end) {
      WsClient ws;
      ws.rcvbuf = 4096;
      if (!ws.connect(port, path, "rexec.term.v1", headers)) {
        std::this_thread::sleep_for(50ms);  // refused (rate limit?): try again, within the flood's time
        continue;
      }
      ++connections;
      // Many messages per write: the hub, not this loop, must be what limits the rate.
      std::vector<uint8_t> batch;
      constexpr int kBatch = 256;
      for (int i = 0; i < kBatch; ++i) {
        auto f = client_frame(0x2, message);
        batch.insert(batch.end(), f.begin(), f.end());
      }
      while (std::chrono::steady_clock::now() < end) {
        auto r = ws.try_send_raw(batch);
        if (r == WsClient::TrySend::kGone) break;
        if (r == WsClient::TrySend::kSent) sent += kBatch;
        else std::this_thread::sleep_for(1ms);  // the hub stopped reading us: that is allowed
      }
    }
  }
};

TEST(Finding04ViewerBacklog, NeverReadingViewersStayBounded) {
  // Under ASan freed memory sits in a quarantine (256 MB by default) before it is reused, which
  // would look like growth; a small one keeps RSS meaningful.
  if (const char* asan = std::getenv("ASAN_OPTIONS"))
    ::setenv("ASAN_OPTIONS", (std::string(asan) + ":quarantine_size_mb=8").c_str(), 1);
  HubFixture hub;
  LiveTerminal live(hub);
  auto share = hub.api("POST", "/api/v1/terminals/" + live.id() + "/shares", R"({"mode": "view"})");
  ASSERT_EQ(share.status, 201) << share.body;
  std::string code = json::parse(share.body)["code"];

  long baseline = rss_kib(hub.process().pid());
  ASSERT_GT(baseline, 0);
  std::string attach = "/api/v1/terminals/" + live.id() + "/attach";
  Flooder resize{hub.port(), attach, {{"Authorization", "Bearer " + hub.admin_token()}}, viewer::encode_resize(0, 0)};
  uint8_t key = 'x';
  Flooder input{hub.port(), attach + "?share=" + code, {}, viewer::encode_input(std::span(&key, 1))};
  long peak = baseline;
  std::atomic<bool> flooding{true};
  int answered = 0, unanswered = 0;
  std::thread sampler([&] {
    for (int i = 0; flooding; ++i) {
      peak = std::max(peak, rss_kib(hub.process().pid()));
      if (i % 10 == 0) (http(hub.port(), "GET", "/healthz").status == 200 ? answered : unanswered)++;
      std::this_thread::sleep_for(50ms);
    }
  });
  std::thread a([&] { resize.run(); }), b([&] { input.run(); });
  a.join();
  b.join();
  flooding = false;
  sampler.join();
  std::printf("viewer backlog: %ld + %ld messages on %d + %d connections; RSS %ld KiB -> peak %ld KiB\n", resize.sent,
              input.sent, resize.connections, input.connections, baseline, peak);
  EXPECT_GT(resize.sent + input.sent, 10000) << "the flood did not happen";
  EXPECT_LT(peak - baseline, kGrowthCapKib) << "the hub grew by " << (peak - baseline) / 1024 << " MiB";
  // Refusing the flood is cheap: the hub answers others meanwhile.
  EXPECT_GT(answered, 0);
  EXPECT_EQ(unanswered, 0) << "/healthz did not answer during the flood";
  ASSERT_TRUE(hub.process().running()) << hub.log();
  live.expect_alive();
  // Gone: what it cost is not kept.
  EXPECT_TRUE(eventually([&] { return rss_kib(hub.process().pid()) - baseline < kGrowthCapKib; }, 10s));
  live.expect_alive();
}

}  // namespace
}  // namespace rx::test
