// A real rexec-hub process, driven through its HTTP API, with FakeAgents speaking the agent
// link: enrollment, online listing, terminals, viewers, exec, and every bad input the relay core
// must refuse clearly.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <thread>

#include <nlohmann/json.hpp>

#include "protocol/labels.h"
#include "protocol/limits.h"
#include "protocol/viewer.h"
#include "tests/support/api_expect.h"
#include "tests/support/hub_fixture.h"
#include "tests/support/viewer_log.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace viewer = protocol::viewer;


class ApiTest : public testing::Test {
 protected:
  HubFixture hub;

  // An enrolled FakeAgent that said HELLO; returns its credential.
  std::string online_agent(FakeAgent& agent, const std::string& name) {
    EXPECT_TRUE(agent.connect(hub.port(), hub.enroll(), name));
    auto w = agent.hello();
    EXPECT_TRUE(w && w->credential);
    return w && w->credential ? *w->credential : "";
  }

  std::string create_terminal(FakeAgent& agent, const std::string& agent_name, uint32_t* channel) {
    auto r = hub.api("POST", "/api/v1/terminals", json{{"kind", "agent"}, {"agent", agent_name}, {"cols", 100}, {"rows", 30}}.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    auto open = agent.next_of<protocol::Open>();
    EXPECT_TRUE(open);
    if (open) {
      EXPECT_EQ(open->kind, protocol::ChannelKind::kPty);
      EXPECT_EQ(open->cols, 100);
      EXPECT_EQ(open->rows, 30);
      *channel = open->channel;
    }
    return body(r).value("id", "");
  }

  WsClient attach(const std::string& id, const std::string& query = "") {
    WsClient v;
    HttpResult refusal;
    EXPECT_TRUE(v.connect(hub.port(), "/api/v1/terminals/" + id + "/attach" + query, "rexec.term.v1",
                          {{"Authorization", "Bearer " + hub.admin_token()}}, &refusal))
        << refusal.status << " " << refusal.body;
    return v;
  }
};

TEST_F(ApiTest, HealthzAnswersWithoutAuth) {
  auto r = http(hub.port(), "GET", "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(body(r)["ok"], true);
}

TEST_F(ApiTest, AdminTokenFileIsPrivate) {
  struct stat st {};
  ASSERT_EQ(::stat((hub.data_dir() + "/data/admin.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(hub.admin_token().starts_with("rxk_"));
}

TEST_F(ApiTest, MissingWrongAndMalformedTokensAre401) {
  expect_error(http(hub.port(), "GET", "/api/v1/terminals"), 401, "unauthorized");
  expect_error(http(hub.port(), "GET", "/api/v1/terminals", "rxk_" + std::string(32, 'A')), 401, "unauthorized");
  expect_error(http(hub.port(), "GET", "/api/v1/terminals", "not-a-token"), 401, "unauthorized");
}

TEST_F(ApiTest, UnknownRoutesAndMethodsAreJsonErrors) {
  expect_error(hub.api("GET", "/api/v1/nope"), 404, "not_found");
  auto r = hub.api("PUT", "/api/v1/terminals");
  expect_error(r, 405, "method_not_allowed");
  EXPECT_EQ(r.headers["allow"], "POST, GET");
  expect_error(hub.api("GET", "/api/v1/terminals/t_doesnotexist"), 404, "not_found");
  expect_error(hub.api("DELETE", "/api/v1/agents/ag_doesnotexist"), 404, "not_found");
}

TEST_F(ApiTest, BadJsonAndBadFieldsAre400WithTheFieldNamed) {
  expect_error(hub.api("POST", "/api/v1/terminals", "{not json"), 400, "bad_json");
  expect_error(hub.api("POST", "/api/v1/terminals", "[1,2]"), 400, "bad_request");
  auto r = hub.api("POST", "/api/v1/terminals", R"({"kind":"agent"})");
  expect_error(r, 400, "bad_field");
  EXPECT_NE(body(r)["error"].get<std::string>().find("agent"), std::string::npos);
  r = hub.api("POST", "/api/v1/terminals", R"({"kind":"agent","agent":"x","cols":"wide"})");
  expect_error(r, 400, "bad_field");
  EXPECT_NE(body(r)["error"].get<std::string>().find("cols"), std::string::npos);
  expect_error(hub.api("POST", "/api/v1/terminals", R"({"kind":"spaceship"})"), 400, "bad_field");
  expect_error(hub.api("POST", "/api/v1/terminals", R"({"kind":"agent","agent":"ghost"})"), 404, "not_found");
  expect_error(hub.api("POST", "/api/v1/exec", R"({"targets":[],"argv":["true"]})"), 400, "bad_field");
  expect_error(hub.api("POST", "/api/v1/exec", R"({"targets":["x"],"argv":"true"})"), 400, "bad_field");
}

TEST_F(ApiTest, OversizedBodyIs413) {
  expect_error(hub.api("POST", "/api/v1/terminals", std::string(2 * 1024 * 1024, ' ')), 413, "body_too_large");
}

TEST_F(ApiTest, EnrolledAgentIsListedOnlineWithItsHostInfo) {
  FakeAgent agent;
  auto credential = online_agent(agent, "box-1");
  EXPECT_TRUE(credential.starts_with("rxa_"));
  json listed;
  ASSERT_TRUE(eventually([&] {
    auto agents = body(hub.api("GET", "/api/v1/agents"))["agents"];
    for (const auto& a : agents)
      if (a["name"] == "box-1" && a["online"] == true) listed = a;
    return !listed.is_null();
  }, 2s));
  EXPECT_EQ(listed["host"]["hostname"], "fake-host");
  EXPECT_EQ(listed["host"]["cpus"], 2);
  // The credential works again after a disconnect; it is never shown twice.
  agent.ws.cut();
  FakeAgent again;
  ASSERT_TRUE(again.connect(hub.port(), credential, "box-1"));
  auto w = again.hello();
  ASSERT_TRUE(w);
  EXPECT_FALSE(w->credential);
  EXPECT_EQ(w->agent_id, listed["id"]);
}

TEST_F(ApiTest, EnrollmentTokensAreSingleUse) {
  auto token = hub.enroll();
  FakeAgent first;
  ASSERT_TRUE(first.connect(hub.port(), token));
  FakeAgent second;
  HttpResult refusal;
  EXPECT_FALSE(second.connect(hub.port(), token, "again", &refusal));
  expect_error(refusal, 401, "unauthorized");
  EXPECT_NE(refusal.body.find("already used"), std::string::npos) << refusal.body;
}

TEST_F(ApiTest, WrongCredentialsAreRefusedAtTheUpgrade) {
  FakeAgent a;
  HttpResult refusal;
  EXPECT_FALSE(a.connect(hub.port(), "rxa_" + std::string(32, 'z'), "x", &refusal));
  expect_error(refusal, 401, "unauthorized");
  EXPECT_FALSE(a.connect(hub.port(), "", "x", &refusal));
  expect_error(refusal, 401, "unauthorized");
  EXPECT_FALSE(a.connect(hub.port(), hub.admin_token(), "x", &refusal));  // an API token is no agent credential
  expect_error(refusal, 401, "unauthorized");
}

TEST_F(ApiTest, RevokedAgentIsCutAndCannotReturn) {
  FakeAgent agent;
  auto credential = online_agent(agent, "doomed");
  auto agents = body(hub.api("GET", "/api/v1/agents"))["agents"];
  std::string id = agents[0]["id"];
  EXPECT_EQ(hub.api("DELETE", "/api/v1/agents/" + id).status, 200);
  EXPECT_FALSE(agent.ws.receive(5s));  // closed by the hub
  EXPECT_EQ(agent.ws.close_code(), 1008);
  EXPECT_EQ(agent.ws.close_reason(), "revoked");
  FakeAgent back;
  HttpResult refusal;
  EXPECT_FALSE(back.connect(hub.port(), credential, "doomed", &refusal));
  expect_error(refusal, 401, "unauthorized");
  EXPECT_NE(refusal.body.find("revoked"), std::string::npos);
}

TEST_F(ApiTest, MalformedFrameClosesTheLinkWithTheReason) {
  FakeAgent agent;
  online_agent(agent, "sloppy");
  agent.ws.send_binary({0x93, 0x05, 0x01});  // [5, 1, <missing>]: truncated DATA
  EXPECT_FALSE(agent.ws.receive(5s));
  EXPECT_EQ(agent.ws.close_code(), 4400) << hub.log();
  EXPECT_NE(agent.ws.close_reason().find("truncated"), std::string::npos) << agent.ws.close_reason();
}

TEST_F(ApiTest, OversizedFrameClosesTheLinkWith1009) {
  FakeAgent agent;
  online_agent(agent, "big");
  agent.ws.send_binary(std::vector<uint8_t>(protocol::kMaxFrameBytes + 100, 0x90));
  EXPECT_FALSE(agent.ws.receive(5s));
  EXPECT_EQ(agent.ws.close_code(), 1009);
}

TEST_F(ApiTest, FirstFrameMustBeHelloAndVersionsMustMeet) {
  FakeAgent a;
  ASSERT_TRUE(a.connect(hub.port(), hub.enroll()));
  a.send(protocol::Ack{1, protocol::Stream::kOutput, 0});
  EXPECT_FALSE(a.ws.receive(5s));
  EXPECT_EQ(a.ws.close_code(), 4400);
  EXPECT_NE(a.ws.close_reason().find("expected HELLO"), std::string::npos);

  FakeAgent b;
  ASSERT_TRUE(b.connect(hub.port(), hub.enroll()));
  protocol::Hello h;
  h.proto_min = 7;
  h.proto_max = 9;
  b.send(h);
  auto err = b.next_of<protocol::ErrorFrame>();
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, "unsupported_version");
  EXPECT_FALSE(b.ws.receive(5s));
  EXPECT_EQ(b.ws.close_code(), 4400);
}

TEST_F(ApiTest, UnknownChannelGetsAnErrorFrameAndTheLinkStays) {
  FakeAgent agent;
  online_agent(agent, "confused");
  agent.send(protocol::Data{4242, protocol::Stream::kOutput, 0, {'x'}});
  auto err = agent.next_of<protocol::ErrorFrame>();
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, "unknown_channel");
  EXPECT_EQ(err->channel, 4242u);
  // Unknown frame types are ignored; the link is still usable.
  agent.ws.send_binary({0x92, 0xcc, 0xc8, 0x01});  // [200, 1]
  agent.send(protocol::Data{4243, protocol::Stream::kOutput, 0, {'y'}});
  err = agent.next_of<protocol::ErrorFrame>();
  ASSERT_TRUE(err);
  EXPECT_EQ(err->channel, 4243u);
}

TEST_F(ApiTest, TerminalRelaysOutputInputResizeAndExit) {
  FakeAgent agent;
  online_agent(agent, "relay");
  uint32_t ch = 0;
  auto id = create_terminal(agent, "relay", &ch);
  ASSERT_FALSE(id.empty());
  agent.send(protocol::Opened{ch, 777});
  agent.send(protocol::Data{ch, protocol::Stream::kOutput, 0, {'h', 'i', '\n'}});

  auto v = attach(id);
  ViewerLog log;
  ASSERT_TRUE(log.pump(v, [](const ViewerLog& l) { return l.output == "hi\n"; }));
  EXPECT_TRUE(log.has_event("status"));

  v.send_binary(viewer::encode_input(std::vector<uint8_t>{'l', 's', '\r'}));
  auto in = agent.next_of<protocol::Data>();
  ASSERT_TRUE(in);
  EXPECT_EQ(in->stream, protocol::Stream::kInput);
  EXPECT_EQ(in->offset, 0u);
  EXPECT_EQ(std::string(in->bytes.begin(), in->bytes.end()), "ls\r");

  v.send_binary(viewer::encode_resize(132, 43));
  auto rs = agent.next_of<protocol::Resize>();
  ASSERT_TRUE(rs);
  EXPECT_EQ(rs->cols, 132);
  EXPECT_EQ(rs->rows, 43);

  agent.send(protocol::Exit{ch, 3, ""});
  ASSERT_TRUE(log.pump(v, [](const ViewerLog& l) { return l.has_event("exit"); }));
  for (const auto& e : log.events) {
    if (e["type"] == "exit") {
      EXPECT_EQ(e["code"], 3);
    }
  }
  EXPECT_EQ(body(hub.api("GET", "/api/v1/terminals/" + id))["status"], "exited");
}

TEST_F(ApiTest, LateViewerGetsTheRingAndSinceResumes) {
  FakeAgent agent;
  online_agent(agent, "ring");
  uint32_t ch = 0;
  auto id = create_terminal(agent, "ring", &ch);
  agent.send(protocol::Opened{ch, 1});
  agent.send(protocol::Data{ch, protocol::Stream::kOutput, 0, {'a', 'b', 'c'}});
  agent.send(protocol::Data{ch, protocol::Stream::kOutput, 3, {'d', 'e', 'f'}});
  // A resend of bytes the hub already has is dropped, not duplicated.
  agent.send(protocol::Data{ch, protocol::Stream::kOutput, 2, {'c', 'd'}});
  agent.send(protocol::Data{ch, protocol::Stream::kOutput, 6, {'g'}});

  auto v1 = attach(id);
  ViewerLog all;
  ASSERT_TRUE(all.pump(v1, [](const ViewerLog& l) { return l.output.size() >= 7; }));
  EXPECT_EQ(all.output, "abcdefg");

  auto v2 = attach(id, "?since=4");
  ViewerLog tail;
  tail.next_offset = 4;
  ASSERT_TRUE(tail.pump(v2, [](const ViewerLog& l) { return l.output.size() >= 3; }));
  EXPECT_EQ(tail.output, "efg");
  // Everyone attached hears how many are watching.
  ASSERT_TRUE(all.pump(v1, [](const ViewerLog& l) {
    for (const auto& e : l.events)
      if (e["type"] == "viewers" && e["count"] == 2) return true;
    return false;
  }));
}

TEST_F(ApiTest, ViewerProtocolErrorsAreClear) {
  FakeAgent agent;
  online_agent(agent, "viewerrors");
  uint32_t ch = 0;
  auto id = create_terminal(agent, "viewerrors", &ch);
  // Bad since, unknown terminal, wrong subprotocol, no token: refused at the upgrade.
  WsClient v;
  HttpResult refusal;
  EXPECT_FALSE(v.connect(hub.port(), "/api/v1/terminals/" + id + "/attach?since=-1", "rexec.term.v1",
                         {{"Authorization", "Bearer " + hub.admin_token()}}, &refusal));
  expect_error(refusal, 400, "bad_request");
  EXPECT_FALSE(v.connect(hub.port(), "/api/v1/terminals/t_nope/attach", "rexec.term.v1",
                         {{"Authorization", "Bearer " + hub.admin_token()}}, &refusal));
  expect_error(refusal, 404, "not_found");
  EXPECT_FALSE(v.connect(hub.port(), "/api/v1/terminals/" + id + "/attach", "rexec.term.v1", {}, &refusal));
  expect_error(refusal, 401, "unauthorized");
  std::map<std::string, std::string> admin{{"Authorization", "Bearer " + hub.admin_token()}};
  EXPECT_FALSE(v.connect(hub.port(), "/api/v1/terminals/" + id + "/attach", "rexec.events.v1", admin, &refusal));
  expect_error(refusal, 400, "bad_request");
  EXPECT_NE(refusal.body.find("attaching needs subprotocol rexec.term.v1"), std::string::npos) << refusal.body;
  // The WebSocket routes are a route table like the REST ones: an unknown endpoint, or an id
  // that is more than one path segment, is no endpoint at all.
  for (std::string path : {"/api/v1/nowhere", "/api/v1/terminals/a/b/attach"}) {
    EXPECT_FALSE(v.connect(hub.port(), path, "rexec.term.v1", admin, &refusal)) << path;
    expect_error(refusal, 404, "not_found");
    EXPECT_NE(refusal.body.find("no WebSocket endpoint at " + path), std::string::npos) << refusal.body;
  }
  // A malformed message gets an error event; the session continues.
  auto ok = attach(id);
  ok.send_binary({0x02, 0x00});  // resize with 1 byte of payload
  ViewerLog log;
  ASSERT_TRUE(log.pump(ok, [](const ViewerLog& l) { return l.has_event("error"); }));
  for (const auto& e : log.events) {
    if (e["type"] == "error") {
      EXPECT_EQ(e["code"], "bad_length");
    }
  }
}

TEST_F(ApiTest, ExecCollectsExitCodeAndOutputPerTarget) {
  FakeAgent agent;
  online_agent(agent, "execbox");
  std::thread responder([&] {
    auto open = agent.next_of<protocol::Open>(10s);
    if (!open) return;
    EXPECT_EQ(open->kind, protocol::ChannelKind::kExec);
    EXPECT_EQ(open->argv, (std::vector<std::string>{"/bin/sh", "-c", "echo hi; echo oops >&2; exit 4"}));
    agent.send(protocol::Opened{open->channel, 99});
    agent.send(protocol::Data{open->channel, protocol::Stream::kOutput, 0, {'h', 'i', '\n'}});
    agent.send(protocol::Data{open->channel, protocol::Stream::kStderr, 0, {'o', 'o', 'p', 's', '\n'}});
    agent.send(protocol::Exit{open->channel, 4, ""});
    agent.send(protocol::Close{open->channel, "done"});
  });
  auto r = hub.api("POST", "/api/v1/exec",
                   json{{"targets", {"execbox"}}, {"argv", {"/bin/sh", "-c", "echo hi; echo oops >&2; exit 4"}}, {"timeout_s", 10}}.dump());
  responder.join();
  ASSERT_EQ(r.status, 200) << r.body;
  auto res = body(r)["results"];
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0]["target"], "execbox");
  EXPECT_EQ(res[0]["exit_code"], 4);
  EXPECT_EQ(res[0]["stdout"], "hi\n");
  EXPECT_EQ(res[0]["stderr"], "oops\n");
}

TEST_F(ApiTest, ExecTimesOutAndReportsIt) {
  FakeAgent agent;
  online_agent(agent, "slow");
  auto r = hub.api("POST", "/api/v1/exec", json{{"targets", {"slow"}}, {"argv", {"sleep", "100"}}, {"timeout_s", 1}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  auto res = body(r)["results"][0];
  EXPECT_TRUE(res["exit_code"].is_null());
  EXPECT_EQ(res["error"]["code"], "timeout");
  EXPECT_TRUE(agent.next_of<protocol::Signal>());  // the hub killed it
}

TEST_F(ApiTest, CreatingOnAnOfflineAgentIs409) {
  FakeAgent agent;
  online_agent(agent, "gone");
  agent.ws.cut();
  ASSERT_TRUE(eventually([&] { return body(hub.api("GET", "/api/v1/agents"))["agents"][0]["online"] == false; }, 5s));
  expect_error(hub.api("POST", "/api/v1/terminals", R"({"kind":"agent","agent":"gone"})"), 409, "agent_offline");
}

}  // namespace
}  // namespace rx::test

namespace rx::test {
namespace {

protocol::Hello hello_with(protocol::Labels labels) {
  protocol::Hello h;
  h.proto_min = h.proto_max = protocol::kProtocolVersionMin;
  h.agent_version = "fake-1";
  h.capabilities = {"pty"};
  h.labels = std::move(labels);
  return h;
}

json agent_named(HubFixture& hub, const std::string& name) {
  json list = body(hub.api("GET", "/api/v1/agents"));
  for (const auto& a : list["agents"])
    if (a["name"] == name) return a;
  return nullptr;
}

// Labels from HELLO are stored and shown; an agent without them (the HELLO of older agents) has {}.
TEST(AgentLabels, HelloLabelsAreShownByTheAgentList) {
  HubFixture hub;
  FakeAgent labelled, plain;
  ASSERT_TRUE(labelled.connect(hub.port(), hub.enroll(), "labelled"));
  ASSERT_TRUE(labelled.send(hello_with({{"env", "prod"}, {"team/ml", "größe"}})));
  ASSERT_TRUE(labelled.next_of<protocol::Welcome>());
  ASSERT_TRUE(plain.connect(hub.port(), hub.enroll(), "plain"));
  ASSERT_TRUE(plain.hello());
  json a = agent_named(hub, "labelled");
  ASSERT_TRUE(a.is_object()) << body(hub.api("GET", "/api/v1/agents")).dump();
  EXPECT_EQ(a["labels"], (json{{"env", "prod"}, {"team/ml", "größe"}}));
  EXPECT_EQ(body(hub.api("GET", "/api/v1/agents/" + a["id"].get<std::string>()))["labels"], a["labels"]);
  EXPECT_EQ(agent_named(hub, "plain")["labels"], json::object());
}

// Bad labels from a peer: ERROR bad_labels naming the label, the link closed; the hub lives on.
TEST(AgentLabels, BadLabelsAreRefusedWithTheReason) {
  HubFixture hub;
  for (const auto& labels : {protocol::Labels{{"bad key", "v"}}, protocol::Labels{{"k", "\xff\xfe"}},
                             protocol::Labels{{"k", std::string(protocol::kMaxLabelValue + 1, 'v')}}}) {
    FakeAgent a;
    ASSERT_TRUE(a.connect(hub.port(), hub.enroll(), "bad"));
    ASSERT_TRUE(a.send(hello_with(labels)));
    auto e = a.next_of<protocol::ErrorFrame>();
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->code, "bad_labels");
    EXPECT_NE(e->message.find("label"), std::string::npos) << e->message;
    EXPECT_FALSE(a.next_of<protocol::Welcome>(2s).has_value());
  }
  protocol::Labels many;
  for (size_t i = 0; i <= protocol::kMaxLabels; ++i) many["k" + std::to_string(i)] = "v";
  FakeAgent a;
  ASSERT_TRUE(a.connect(hub.port(), hub.enroll(), "many"));
  ASSERT_TRUE(a.send(hello_with(many)));
  auto e = a.next_of<protocol::ErrorFrame>();
  ASSERT_TRUE(e.has_value());
  EXPECT_NE(e->message.find("over the limit of 32"), std::string::npos) << e->message;
  EXPECT_EQ(hub.api("GET", "/healthz").status, 200);
}

}  // namespace
}  // namespace rx::test
