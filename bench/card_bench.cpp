// card-bench: how long from "create a container terminal" to the first byte of its prompt at a
// viewer, against the floor Docker itself sets: `docker run --rm IMAGE true`. Both measured in
// the same run, interleaved, N times each; reported as p50/p95 and their ratio. A benchmark, not
// a test: nothing here asserts a time.
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "protocol/viewer.h"
#include "tests/support/hub_fixture.h"

using namespace rx;
using namespace rx::test;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

double percentile(std::vector<double> v, int p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, v.size() * size_t(p) / 100)];
}

// API create -> 201 -> attach -> first output byte. Returns ms, or -1.
double card_to_prompt(HubFixture& hub, const std::string& image, std::string* id_out) {
  auto t0 = Clock::now();
  auto r = hub.api("POST", "/api/v1/terminals", json{{"kind", "container"}, {"image", image}}.dump());
  if (r.status != 201) {
    std::fprintf(stderr, "create failed: %d %s\n", r.status, r.body.c_str());
    return -1;
  }
  std::string id = json::parse(r.body).value("id", "");
  *id_out = id;
  WsClient v;
  if (!v.connect(hub.port(), "/api/v1/terminals/" + id + "/attach", "rexec.term.v1",
                 {{"Authorization", "Bearer " + hub.admin_token()}}))
    return -1;
  while (ms_since(t0) < 30000) {
    auto m = v.receive(std::chrono::milliseconds(100));
    if (!m) continue;
    auto d = protocol::viewer::decode_server(m->data);
    if (d && std::holds_alternative<protocol::viewer::Output>(*d)) return ms_since(t0);
  }
  return -1;
}

double docker_run_true(const std::string& image) {
  TempDir dir("rexec-card-bench");
  auto t0 = Clock::now();
  Process p({"/usr/bin/env", "docker", "run", "--rm", "--network", "none", image, "true"}, child_env(), dir / "log");
  auto st = p.wait(std::chrono::seconds(60));
  if (!st || !WIFEXITED(*st) || WEXITSTATUS(*st) != 0) return -1;
  return ms_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  std::string image = "rexec/debian:12";
  std::string agent = std::string(REXEC_SOURCE_DIR) + "/build/static-agent/agent/rexec-agent";
  int runs = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i];
    if (f == "--image") image = argv[i + 1];
    else if (f == "--runs") runs = std::atoi(argv[i + 1]);
    else if (f == "--agent") agent = argv[i + 1];
  }
  auto flags = HubFixture::relaxed_limits();
  flags.insert(flags.end(), {"--agent-binary", agent, "--container-quota", "1000"});
  HubFixture hub(flags);
  auto warm_flags = flags;
  warm_flags.insert(warm_flags.end(), {"--warm-pool", image + "=2"});
  HubFixture warm_hub(warm_flags);
  std::vector<double> card, bare, warm;
  std::string id;
  (void)card_to_prompt(hub, image, &id);  // warm-up: image layers into the page cache
  hub.api("DELETE", "/api/v1/terminals/" + id);
  (void)docker_run_true(image);
  for (int i = 0; i < runs; ++i) {
    double c = card_to_prompt(hub, image, &id);
    hub.api("DELETE", "/api/v1/terminals/" + id);
    double b = docker_run_true(image);
    if (c < 0 || b < 0) {
      std::fprintf(stderr, "card-bench: run %d failed\n", i);
      return 1;
    }
    card.push_back(c);
    bare.push_back(b);
    std::this_thread::sleep_for(std::chrono::milliseconds(800));  // the pool refills (start + HELLO)
    double w = card_to_prompt(warm_hub, image, &id);
    warm_hub.api("DELETE", "/api/v1/terminals/" + id);
    if (w < 0) return 1;
    warm.push_back(w);
  }
  double c50 = percentile(card, 50), c95 = percentile(card, 95), b50 = percentile(bare, 50), b95 = percentile(bare, 95);
  std::printf("card-bench: %s, %d runs each, interleaved\n", image.c_str(), runs);
  std::printf("                                     rexec card   docker run --rm true   ratio\n");
  std::printf("create -> first prompt byte p50 ms   %10.0f   %20.0f   %5.2fx\n", c50, b50, c50 / b50);
  std::printf("                            p95 ms   %10.0f   %20.0f   %5.2fx\n", c95, b95, c95 / b95);
  std::printf("with the warm pool (2):      p50 ms   %10.0f\n", percentile(warm, 50));
  std::printf("                            p95 ms   %10.0f\n", percentile(warm, 95));
  return 0;
}
