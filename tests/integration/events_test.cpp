// The dashboard's events feed against a real hub: a snapshot first, then STATS samples as they
// come and terminal changes within about a second; each user sees only what is theirs.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <thread>

#include "tests/support/api_expect.h"
#include "tests/support/hub_fixture.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class Events : public testing::Test {
 protected:
  HubFixture hub;

  WsClient feed(const std::string& token) {
    WsClient ws;
    HttpResult refusal;
    EXPECT_TRUE(ws.connect(hub.port(), "/api/v1/events", "rexec.events.v1", {{"Authorization", "Bearer " + token}}, &refusal))
        << refusal.status << " " << refusal.body;
    return ws;
  }
  // The next message of `type` (others skipped).
  static json next(WsClient& ws, const std::string& type, std::chrono::milliseconds timeout = 5s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = ws.receive(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
      if (!m) break;
      EXPECT_FALSE(m->binary) << "events are JSON text";
      auto j = json::parse(std::string(m->data.begin(), m->data.end()), nullptr, false);
      if (j.is_object() && j.value("type", "") == type) return j;
    }
    return nullptr;
  }
};

TEST_F(Events, SnapshotThenStatsAndTerminalChanges) {
  FakeAgent agent;
  ASSERT_TRUE(agent.connect(hub.port(), hub.enroll(), "box"));
  ASSERT_TRUE(agent.hello());
  auto created = hub.api("POST", "/api/v1/terminals", R"({"kind":"agent","agent":"box","name":"work"})");
  ASSERT_EQ(created.status, 201);
  std::string id = body(created)["id"];
  std::string agent_id = body(created)["agent"];

  auto ws = feed(hub.admin_token());
  json snap = next(ws, "snapshot");
  ASSERT_TRUE(snap.is_object());
  ASSERT_EQ(snap["terminals"].size(), 1u);
  EXPECT_EQ(snap["terminals"][0]["id"], id);
  EXPECT_EQ(snap["terminals"][0]["name"], "work");
  EXPECT_EQ(snap["terminals"][0]["agent_name"], "box");
  EXPECT_EQ(snap["terminals"][0]["status"], "starting");
  ASSERT_EQ(snap["agents"].size(), 1u);
  EXPECT_EQ(snap["agents"][0]["online"], true);

  // A STATS sample reaches the page as it arrives, and is kept for the next page's snapshot.
  agent.send(protocol::Stats{0, 734, 1 << 20, 4 << 20, {}});
  json st = next(ws, "stats");
  ASSERT_TRUE(st.is_object());
  EXPECT_EQ(st["agent"], agent_id);
  EXPECT_DOUBLE_EQ(st["sample"]["cpu_percent"].get<double>(), 73.4);
  EXPECT_EQ(st["sample"]["memory_used"], 1 << 20);

  // Status change (the agent opened the channel) and removal.
  auto open = agent.next_of<protocol::Open>();
  ASSERT_TRUE(open);
  agent.send(protocol::Opened{open->channel, 99});
  json t = next(ws, "terminal");
  ASSERT_TRUE(t.is_object());
  EXPECT_EQ(t["terminal"]["status"], "running");
  ASSERT_EQ(hub.api("DELETE", "/api/v1/terminals/" + id).status, 200);
  json gone = next(ws, "terminal_removed");
  ASSERT_TRUE(gone.is_object());
  EXPECT_EQ(gone["id"], id);

  auto later = feed(hub.admin_token());
  json snap2 = next(later, "snapshot");
  ASSERT_EQ(snap2["stats"][agent_id].size(), 1u);
  EXPECT_DOUBLE_EQ(snap2["stats"][agent_id][0]["cpu_percent"].get<double>(), 73.4);

  // The agent leaves: its card goes grey.
  agent.ws.cut();
  json off = next(ws, "agent");
  ASSERT_TRUE(off.is_object());
  EXPECT_EQ(off["agent"]["online"], false);
}

TEST_F(Events, EachUserSeesOnlyTheirOwn) {
  std::string bob = body(hub.api("POST", "/api/v1/users", R"({"name":"bob"})"))["token"];
  FakeAgent agent;  // the admin's
  ASSERT_TRUE(agent.connect(hub.port(), hub.enroll(), "admins-box"));
  ASSERT_TRUE(agent.hello());
  ASSERT_EQ(hub.api("POST", "/api/v1/terminals", R"({"kind":"agent","agent":"admins-box"})").status, 201);
  auto ws = feed(bob);
  json snap = next(ws, "snapshot");
  ASSERT_TRUE(snap.is_object());
  EXPECT_TRUE(snap["terminals"].empty()) << snap;
  EXPECT_TRUE(snap["agents"].empty()) << snap;
  agent.send(protocol::Stats{0, 500, 1, 2, {}});
  ASSERT_EQ(hub.api("POST", "/api/v1/terminals", R"({"kind":"agent","agent":"admins-box"})").status, 201);
  // Then the same kinds of event on bob's own machine. The feed is in order and stats go out per
  // refresh, so once bob's own stats and terminal arrived, the admin's (sent before) would have
  // too: every message up to then must be bob's (no waiting for something not to come).
  auto enrollment = http(hub.port(), "POST", "/api/v1/agent-enrollments", bob, "{}");
  ASSERT_EQ(enrollment.status, 201) << enrollment.body;
  FakeAgent mine;
  ASSERT_TRUE(mine.connect(hub.port(), body(enrollment)["token"], "bobs-box"));
  ASSERT_TRUE(mine.hello());
  mine.send(protocol::Stats{0, 700, 1, 2, {}});
  auto own = http(hub.port(), "POST", "/api/v1/terminals", bob, R"({"kind":"agent","agent":"bobs-box"})");
  ASSERT_EQ(own.status, 201) << own.body;
  std::string bobs_agent = body(own)["agent"];
  bool saw_stats = false, saw_terminal = false;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!(saw_stats && saw_terminal) && std::chrono::steady_clock::now() < deadline) {
    auto m = ws.receive(1s);
    if (!m) continue;
    std::string text(m->data.begin(), m->data.end());
    EXPECT_EQ(text.find("admins-box"), std::string::npos) << "bob saw the admin's machine: " << text;
    auto j = json::parse(text, nullptr, false);
    ASSERT_TRUE(j.is_object()) << text;
    if (j["type"] == "stats") {
      EXPECT_EQ(j["agent"], bobs_agent) << "bob saw stats that are not his: " << text;
      saw_stats = true;
    }
    if (j["type"] == "terminal") {
      EXPECT_EQ(j["terminal"]["agent"], bobs_agent) << "bob saw a terminal that is not his: " << text;
      saw_terminal = true;
    }
  }
  EXPECT_TRUE(saw_stats && saw_terminal) << "bob's own events never reached his feed";
  // Bad input: the feed takes no messages; the wrong subprotocol is refused.
  ws.send_text("hello");
  while (ws.receive(2s)) {
  }
  EXPECT_EQ(ws.close_code(), 1003);
  WsClient wrong;
  HttpResult refusal;
  EXPECT_FALSE(wrong.connect(hub.port(), "/api/v1/events", "rexec.term.v1", {{"Authorization", "Bearer " + bob}}, &refusal));
  expect_error(refusal, 400, "bad_request");
}

// A machine shared with bob reaches bob's feed once granted; his lease and release of a GPU come
// as gpu events; a process on his GPU that is not his comes as a violation, once.
TEST_F(Events, GranteesSeeTheMachineItsLeasesAndViolations) {
  std::string bob = body(hub.api("POST", "/api/v1/users", R"({"name":"bob"})"))["token"];
  FakeAgent agent;  // the admin's, with two GPUs
  agent.gpus = {{0, "GPU-0", "Fake", 1u << 30}, {1, "GPU-1", "Fake", 1u << 30}};
  ASSERT_TRUE(agent.connect(hub.port(), hub.enroll(), "gpu-box"));
  auto welcome = agent.hello();
  ASSERT_TRUE(welcome);
  auto ws = feed(bob);
  json snap = next(ws, "snapshot");
  ASSERT_TRUE(snap.is_object());
  EXPECT_TRUE(snap["agents"].empty()) << snap;
  ASSERT_EQ(hub.api("POST", "/api/v1/agents/gpu-box/grants", R"({"user":"bob","role":"use"})").status, 201);
  json shown = next(ws, "agent", 5s);
  ASSERT_TRUE(shown.is_object()) << "the granted machine never reached bob's feed";
  EXPECT_EQ(shown["agent"]["name"], "gpu-box");

  auto created = http(hub.port(), "POST", "/api/v1/terminals", bob, R"({"kind":"agent","agent":"gpu-box","gpus":[1]})");
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(body(created)["gpus"], json::array({1}));
  json lease = next(ws, "gpu");
  ASSERT_TRUE(lease.is_object());
  EXPECT_EQ(lease["event"], "lease");
  EXPECT_EQ(lease["user"], "bob");
  EXPECT_EQ(lease["gpus"], json::array({1}));

  // The OPEN carries bob's name for the agent's --user-map and the leased GPU in its env.
  auto open = agent.next_of<protocol::Open>();
  ASSERT_TRUE(open);
  EXPECT_EQ(open->user, "bob");
  EXPECT_EQ(open->env["CUDA_VISIBLE_DEVICES"], "1");
  EXPECT_EQ(open->env["NVIDIA_VISIBLE_DEVICES"], "GPU-1");
  ASSERT_TRUE(agent.send(protocol::Opened{open->channel, 4242}));

  // A process of nobody's on GPU 1 (no channel, an unmapped account): a violation of bob's lease.
  protocol::Stats s{0, 100, 1, 2, {{0, 0, 0, 1u << 30}, {1, 50, 1u << 20, 1u << 30}}};
  s.gpus[1].processes = {{777, "python3", 1u << 20, "mallory", "", 0}};
  ASSERT_TRUE(agent.send(s));
  json violation = next(ws, "gpu", 5s);
  ASSERT_TRUE(violation.is_object());
  EXPECT_EQ(violation["event"], "violation") << violation;
  EXPECT_EQ(violation["holder"]["user"], "bob");
  EXPECT_EQ(violation["processes"][0]["pid"], 777);
  auto view = body(http(hub.port(), "GET", "/api/v1/agents/gpu-box", bob));
  EXPECT_EQ(view["gpus"][1]["violation"], true) << view;
  EXPECT_EQ(view["gpus"][1]["processes"][0]["violation"], true);
  EXPECT_EQ(view["gpus"][0]["violation"], false);
  // The same process traced to bob's own channel is his: no violation.
  s.gpus[1].processes = {{778, "python3", 1u << 20, "root", "", open->channel}};
  ASSERT_TRUE(agent.send(s));
  bool cleared = false;
  for (auto deadline = std::chrono::steady_clock::now() + 5s; !cleared && std::chrono::steady_clock::now() < deadline;) {
    auto v = body(http(hub.port(), "GET", "/api/v1/agents/gpu-box", bob));
    cleared = v["gpus"][1]["violation"] == false && v["gpus"][1]["processes"][0]["pid"] == 778 &&
              v["gpus"][1]["processes"][0]["user"] == "bob";
    if (!cleared) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(cleared);

  // The shell exits: the lease ends with it.
  ASSERT_TRUE(agent.send(protocol::Exit{open->channel, 0, ""}));
  json release = next(ws, "gpu", 5s);
  while (release.is_object() && release["event"] != "release") release = next(ws, "gpu", 5s);
  ASSERT_TRUE(release.is_object());
  EXPECT_EQ(release["why"], "exited");
  EXPECT_TRUE(body(http(hub.port(), "GET", "/api/v1/agents/gpu-box", bob))["gpus"][1]["holder"].is_null());
}

}  // namespace
}  // namespace rx::test
