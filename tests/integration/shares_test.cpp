// Share links against a real hub and a FakeAgent: a view code watches and cannot type (the hub
// drops it, whatever the client sends); a control code types; a code opens its own terminal and
// nothing else; deleting a link cuts its viewers; bad codes are one plain 401.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "protocol/viewer.h"
#include "tests/support/api_expect.h"
#include "tests/support/hub_fixture.h"
#include "tests/support/viewer_log.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace viewer = protocol::viewer;

class Shares : public testing::Test {
 protected:
  HubFixture hub;
  FakeAgent agent;
  std::string terminal;
  uint32_t channel = 0;

  void SetUp() override {
    ASSERT_TRUE(agent.connect(hub.port(), hub.enroll(), "box"));
    ASSERT_TRUE(agent.hello());
    terminal = new_terminal();
  }
  std::string new_terminal() {
    auto r = hub.api("POST", "/api/v1/terminals", R"({"kind":"agent","agent":"box"})");
    EXPECT_EQ(r.status, 201) << r.body;
    auto open = agent.next_of<protocol::Open>();
    EXPECT_TRUE(open);
    channel = open ? open->channel : 0;
    agent.send(protocol::Opened{channel, 4242});
    agent.send(protocol::Data{channel, protocol::Stream::kOutput, 0, {'$', ' '}});
    return body(r).value("id", "");
  }
  json share(const std::string& mode, const std::string& id = "") {
    auto r = hub.api("POST", "/api/v1/terminals/" + (id.empty() ? terminal : id) + "/shares", json{{"mode", mode}}.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return body(r);
  }
  bool attach(WsClient& ws, const std::string& id, const std::string& code, HttpResult* refusal = nullptr) {
    return ws.connect(hub.port(), "/api/v1/terminals/" + id + "/attach?share=" + code, "rexec.term.v1", {}, refusal);
  }
};

TEST_F(Shares, ViewCodeWatchesButItsInputIsDroppedByTheHub) {
  json s = share("view");
  EXPECT_TRUE(s["code"].get<std::string>().starts_with("rxs_"));
  EXPECT_EQ(s["url"], "http://127.0.0.1:" + std::to_string(hub.port()) + "/s/" + s["code"].get<std::string>());
  WsClient v;
  ASSERT_TRUE(attach(v, terminal, s["code"]));
  ViewerLog log;
  ASSERT_TRUE(log.pump(v, [](const ViewerLog& l) { return l.output == "$ "; }));
  // The page would hide the keyboard; the test types anyway, by the socket.
  ASSERT_TRUE(v.send_binary(viewer::encode_input(std::vector<uint8_t>{'r', 'm', '\r'})));
  ASSERT_TRUE(v.send_binary(viewer::encode_resize(10, 5)));
  ASSERT_TRUE(log.pump(v, [](const ViewerLog& l) {
    for (const auto& e : l.events)
      if (e.value("code", "") == "read_only") return true;
    return false;
  }));
  // Nothing reached the agent: no input, no resize.
  auto f = agent.next(700ms);
  EXPECT_FALSE(f && (std::holds_alternative<protocol::Data>(*f) || std::holds_alternative<protocol::Resize>(*f)));
}

TEST_F(Shares, ControlCodeTypes) {
  json s = share("control");
  WsClient v;
  ASSERT_TRUE(attach(v, terminal, s["code"]));
  ASSERT_TRUE(v.send_binary(viewer::encode_input(std::vector<uint8_t>{'i', 'd', '\r'})));
  auto in = agent.next_of<protocol::Data>();
  ASSERT_TRUE(in);
  EXPECT_EQ(std::string(in->bytes.begin(), in->bytes.end()), "id\r");
  auto audit = body(hub.api("GET", "/api/v1/audit?action=terminal.attach&target=" + terminal));
  ASSERT_FALSE(audit["entries"].empty());
  EXPECT_EQ(audit["entries"].back()["actor"], "share:" + s["id"].get<std::string>());
}

TEST_F(Shares, CodeOpensItsOwnTerminalAndNothingElse) {
  json s = share("control");
  std::string code = s["code"];
  std::string other = new_terminal();
  WsClient v;
  HttpResult refusal;
  EXPECT_FALSE(attach(v, other, code, &refusal));
  expect_error(refusal, 401, "unauthorized");
  // A share code is no API token: every REST call with it is 401.
  for (auto [m, p] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/api/v1/terminals"}, {"GET", "/api/v1/terminals/" + terminal}, {"DELETE", "/api/v1/terminals/" + terminal},
           {"POST", "/api/v1/terminals/" + terminal + "/shares"}})
    expect_error(http(hub.port(), m, p, code), 401, "unauthorized");
  // Lookup: what the share page needs, nothing more; readable from any origin (embeds).
  auto r = http(hub.port(), "POST", "/api/v1/shares/lookup", "", json{{"code", code}}.dump(), {{"Origin", "http://other.example"}});
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r)["terminal"]["id"], terminal);
  EXPECT_EQ(body(r)["mode"], "control");
  EXPECT_EQ(r.headers["access-control-allow-origin"], "*");
}

TEST_F(Shares, DeletingALinkCutsItsViewersAndTheCodeStopsWorking) {
  json s = share("view");
  WsClient v;
  ASSERT_TRUE(attach(v, terminal, s["code"]));
  ViewerLog log;
  ASSERT_TRUE(log.pump(v, [](const ViewerLog& l) { return l.output == "$ "; }));
  auto listed = body(hub.api("GET", "/api/v1/terminals/" + terminal + "/shares"));
  ASSERT_EQ(listed["shares"].size(), 1u);
  EXPECT_FALSE(listed["shares"][0].contains("code")) << "codes are shown once";
  v.linger_after_close = true;
  ASSERT_EQ(hub.api("DELETE", "/api/v1/shares/" + s["id"].get<std::string>()).status, 200);
  while (v.receive(3s)) {
  }
  EXPECT_EQ(v.close_code(), 1000);
  EXPECT_EQ(v.close_reason(), "share link deleted");
  // One close each way, then the hub hangs up: a second close frame after ours is what browsers
  // report as "Close received after close".
  EXPECT_TRUE(v.read_rest(2s).empty());
  WsClient again;
  HttpResult refusal;
  EXPECT_FALSE(attach(again, terminal, s["code"], &refusal));
  EXPECT_EQ(refusal.status, 401);
  expect_error(hub.api("DELETE", "/api/v1/shares/" + s["id"].get<std::string>()), 404, "not_found");
}

TEST_F(Shares, BadRequestsAreClear) {
  expect_error(hub.api("POST", "/api/v1/terminals/" + terminal + "/shares", R"({"mode":"admin"})"), 400, "bad_field");
  expect_error(hub.api("POST", "/api/v1/terminals/" + terminal + "/shares", R"({"expires_in":1})"), 400, "bad_field");
  expect_error(hub.api("POST", "/api/v1/terminals/" + terminal + "/shares", "{bad"), 400, "bad_json");
  expect_error(hub.api("POST", "/api/v1/terminals/t_nope/shares", R"({"mode":"view"})"), 404, "not_found");
  expect_error(http(hub.port(), "POST", "/api/v1/shares/lookup", "", R"({"code":"rxs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})"), 401,
               "unauthorized");
  expect_error(http(hub.port(), "POST", "/api/v1/shares/lookup", "", R"({"code":"../../etc/passwd"})"), 401, "unauthorized");
  expect_error(http(hub.port(), "POST", "/api/v1/shares/lookup", "", "[]"), 400, "bad_request");
  WsClient v;
  HttpResult refusal;
  EXPECT_FALSE(attach(v, terminal, "rxs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &refusal));
  expect_error(refusal, 401, "unauthorized");
  // A share's terminal deleted: its links go with it.
  json s = share("view");
  ASSERT_EQ(hub.api("DELETE", "/api/v1/terminals/" + terminal).status, 200);
  expect_error(http(hub.port(), "POST", "/api/v1/shares/lookup", "", json{{"code", s["code"]}}.dump()), 401, "unauthorized");
}

TEST_F(Shares, EmbedsPassATokenAsASubprotocol) {
  WsClient v;
  HttpResult refusal;
  ASSERT_TRUE(v.connect(hub.port(), "/api/v1/terminals/" + terminal + "/attach",
                        "rexec.term.v1, rexec.bearer." + hub.admin_token(), {{"Origin", "http://other.example"}}, &refusal))
      << refusal.status << " " << refusal.body;
  ViewerLog log;
  ASSERT_TRUE(log.pump(v, [](const ViewerLog& l) { return l.output == "$ "; }));
  WsClient bad;
  EXPECT_FALSE(bad.connect(hub.port(), "/api/v1/terminals/" + terminal + "/attach",
                           "rexec.term.v1, rexec.bearer.rxk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", {}, &refusal));
  expect_error(refusal, 401, "unauthorized");
}

}  // namespace
}  // namespace rx::test
