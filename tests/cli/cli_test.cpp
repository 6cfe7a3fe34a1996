// The rexec CLI's everyday commands against a real hub and a real agent: login and profiles,
// ls/agents --json against the API's own answers, create/share/rm, completion, and the one-line
// errors a user sees for a wrong token, an unreachable hub, a bad URL and an unknown name.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "tests/cli/cli_support.h"
#include "tests/integration/relay_support.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

size_t lines(const std::string& s) { return size_t(std::count(s.begin(), s.end(), '\n')); }

json api_json(HubFixture& hub, const std::string& path) { return json::parse(hub.api("GET", path).body); }

// Fields that change between two reads a few milliseconds apart.
json stable(json j) {
  for (auto& item : j)
    for (const char* k : {"last_seen_at", "stats", "last_activity_at", "output_offset", "viewers", "gpus"}) item.erase(k);
  return j;
}

class CliTest : public testing::Test {
 protected:
  HubFixture hub;
};

TEST_F(CliTest, LoginSavesTheTokenPrivatelyAndProfilesSwitchHubs) {
  Cli cli(hub, "");
  cli.env().erase("REXEC_HUB");
  std::string url = "http://127.0.0.1:" + std::to_string(hub.port());
  // Without a login every command says how to log in.
  auto before = cli.run({"ls"});
  EXPECT_NE(before.status, 0);
  EXPECT_NE(before.err.find("rexec login"), std::string::npos) << before.err;

  auto r = cli.run({"login", url + "/"}, hub.admin_token() + "\n");  // the token on stdin, never argv
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("as admin"), std::string::npos) << r.out;
  std::string path = cli.home() + "/.config/rexec/config.json";
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((cli.home() + "/.config/rexec").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto saved = json::parse(read_file(path));
  EXPECT_EQ(saved["current"], "default");
  EXPECT_EQ(saved["profiles"]["default"]["hub"], url);  // trailing slash dropped
  EXPECT_EQ(saved["profiles"]["default"]["token"], hub.admin_token());

  auto who = cli.run({"whoami"});
  ASSERT_EQ(who.status, 0) << who.err;
  EXPECT_NE(who.out.find("admin (admin) on " + url), std::string::npos) << who.out;

  // A second hub as a named profile; --hub-profile picks it, the current one stays.
  HubFixture other;
  std::string other_url = "http://127.0.0.1:" + std::to_string(other.port());
  ASSERT_EQ(cli.run({"--hub-profile", "lab", "login", other_url}, other.admin_token() + "\n").status, 0);
  auto who_lab = cli.run({"--hub-profile", "lab", "whoami"});
  EXPECT_NE(who_lab.out.find(other_url), std::string::npos) << who_lab.out << who_lab.err;
  auto missing = cli.run({"--hub-profile", "nope", "ls"});
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.err.find("no hub profile 'nope'"), std::string::npos) << missing.err;

  // The environment wins over the profile (CI jobs): a wrong REXEC_TOKEN is used and refused.
  cli.env()["REXEC_TOKEN"] = "rxk_wrong";
  EXPECT_NE(cli.run({"whoami"}).status, 0);
  cli.env().erase("REXEC_TOKEN");

  ASSERT_EQ(cli.run({"--hub-profile", "lab", "logout"}).status, 0);
  saved = json::parse(read_file(path));
  EXPECT_FALSE(saved["profiles"].contains("lab"));
  EXPECT_TRUE(saved["profiles"].contains("default"));

  // A token the hub refuses is not saved.
  auto bad = cli.run({"--hub-profile", "bad", "login", url}, "rxk_not_a_token\n");
  EXPECT_NE(bad.status, 0);
  EXPECT_FALSE(json::parse(read_file(path))["profiles"].contains("bad"));
}

TEST_F(CliTest, LsAndAgentsJsonAreTheApisAnswers) {
  AgentProcess agent(hub, "json-box", {"--label", "role=ci", "--label", "zone=lab"});
  ASSERT_TRUE(wait_online(hub, "json-box", 10s));
  std::string id = create_terminal(hub, "json-box");
  ASSERT_FALSE(id.empty());
  // Compared below between two reads: the terminal must not go from starting to running between them.
  ASSERT_TRUE(eventually([&] { return api_json(hub, "/api/v1/terminals/" + id)["status"] == "running"; }, 10s));
  Cli cli(hub, hub.admin_token());

  auto ls = cli.run({"ls", "--json"});
  ASSERT_EQ(ls.status, 0) << ls.err;
  auto mine = json::parse(ls.out, nullptr, false);
  ASSERT_FALSE(mine.is_discarded()) << ls.out;
  EXPECT_EQ(stable(mine["terminals"]), stable(api_json(hub, "/api/v1/terminals")["terminals"]));
  ASSERT_EQ(mine["terminals"].size(), 1u);
  EXPECT_EQ(mine["terminals"][0]["id"], id);

  auto agents = cli.run({"agents", "--json"});
  ASSERT_EQ(agents.status, 0) << agents.err;
  auto a = json::parse(agents.out, nullptr, false);
  ASSERT_FALSE(a.is_discarded()) << agents.out;
  EXPECT_EQ(stable(a["agents"]), stable(api_json(hub, "/api/v1/agents")["agents"]));
  EXPECT_EQ(a["agents"][0]["labels"], (json{{"role", "ci"}, {"zone", "lab"}}));

  // The tables people read carry the same facts.
  auto table = cli.run({"agents"});
  ASSERT_EQ(table.status, 0) << table.err;
  EXPECT_NE(table.out.find("json-box"), std::string::npos);
  EXPECT_NE(table.out.find("online"), std::string::npos);
  EXPECT_NE(table.out.find("role=ci,zone=lab"), std::string::npos) << table.out;
  auto ls_table = cli.run({"ls"});
  EXPECT_NE(ls_table.out.find(id), std::string::npos) << ls_table.out;
  EXPECT_EQ(ls_table.out.find('\033'), std::string::npos) << "colour on a pipe";
}

TEST_F(CliTest, CreateShareAndRmByName) {
  AgentProcess agent(hub, "life-box");
  ASSERT_TRUE(wait_online(hub, "life-box", 10s));
  Cli cli(hub, hub.admin_token());
  auto made = cli.run({"create", "--agent", "life-box", "--name", "scratch"});
  ASSERT_EQ(made.status, 0) << made.err;
  std::string id = made.out.substr(0, made.out.find('\n'));
  EXPECT_EQ(id.rfind("t_", 0), 0u) << made.out;
  EXPECT_EQ(api_json(hub, "/api/v1/terminals/" + id)["name"], "scratch");

  auto share = cli.run({"share", "scratch", "--control", "--expires", "30m", "--json"});
  ASSERT_EQ(share.status, 0) << share.err;
  auto s = json::parse(share.out);
  EXPECT_EQ(s["mode"], "control");
  EXPECT_EQ(s["expires_at"].get<int64_t>() - s["created_at"].get<int64_t>(), 1800);
  EXPECT_NE(s["url"].get<std::string>().find("/s/rxs_"), std::string::npos);
  auto bad_expiry = cli.run({"share", "scratch", "--expires", "soon"});
  EXPECT_NE(bad_expiry.status, 0);
  EXPECT_NE(bad_expiry.err.find("bad duration 'soon'"), std::string::npos) << bad_expiry.err;

  // A container-only verb on an agent terminal: the hub's refusal, in one line.
  auto stop = cli.run({"stop", "scratch"});
  EXPECT_NE(stop.status, 0);
  EXPECT_EQ(lines(stop.err), 1u) << stop.err;

  // Labels: shown in the terminal; a bad one is the hub's 400 naming the field, and nothing is made.
  auto labelled = cli.run({"create", "--agent", "life-box", "--label", "role=ci", "--json"});
  ASSERT_EQ(labelled.status, 0) << labelled.err;
  EXPECT_EQ(json::parse(labelled.out)["labels"], (json{{"role", "ci"}}));
  size_t before = api_json(hub, "/api/v1/terminals")["terminals"].size();
  auto bad_label = cli.run({"create", "--agent", "life-box", "--label", "bad key=x"});
  EXPECT_NE(bad_label.status, 0);
  EXPECT_NE(bad_label.err.find("labels"), std::string::npos) << bad_label.err;
  EXPECT_EQ(api_json(hub, "/api/v1/terminals")["terminals"].size(), before);
  EXPECT_EQ(hub.api("POST", "/api/v1/terminals", R"({"kind":"agent","agent":"life-box","labels":["role"]})").status, 400);
  EXPECT_EQ(hub.api("POST", "/api/v1/terminals", R"({"kind":"agent","agent":"life-box","labels":{"k":1}})").status, 400);

  auto rm = cli.run({"rm", "scratch"});
  ASSERT_EQ(rm.status, 0) << rm.err;
  EXPECT_EQ(rm.out, "deleted " + id + "\n");
  EXPECT_EQ(hub.api("GET", "/api/v1/terminals/" + id).status, 404);

  auto enroll = cli.run({"enroll"});
  ASSERT_EQ(enroll.status, 0) << enroll.err;
  EXPECT_NE(enroll.out.find("/install-agent.sh"), std::string::npos) << enroll.out;
  EXPECT_NE(enroll.out.find("--enroll-token-file -"), std::string::npos) << enroll.out;
}

TEST_F(CliTest, WrongTokenUnreachableHubBadUrlAndUnknownNameAreOneClearLine) {
  AgentProcess agent(hub, "err-box");
  ASSERT_TRUE(wait_online(hub, "err-box", 10s));
  std::string id = create_terminal(hub, "err-box");
  ASSERT_EQ(hub.api("POST", "/api/v1/terminals", json{{"kind", "agent"}, {"agent", "err-box"}, {"name", "build-cache"}}.dump()).status, 201);

  const std::string wrong = "rxk_0123456789abcdef0123456789abcdef";
  Cli bad_token(hub, wrong);
  auto r = bad_token.run({"ls"});
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("401"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("rexec login"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(wrong), std::string::npos) << "the token leaked into the error";
  EXPECT_TRUE(r.out.empty());

  int closed = free_port();  // nothing listens here
  Cli nowhere("http://127.0.0.1:" + std::to_string(closed), hub.admin_token());
  r = nowhere.run({"agents"});
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(r.err, "rexec: cannot reach the hub at http://127.0.0.1:" + std::to_string(closed) + ": Connection refused\n");

  Cli bad_url("hub.example:8080", hub.admin_token());
  r = bad_url.run({"ls"});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("bad hub URL 'hub.example:8080'"), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1u);

  Cli cli(hub, hub.admin_token());
  r = cli.run({"rm", "build-cahce"});
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("no terminal 'build-cahce' (did you mean build-cache?)"), std::string::npos) << r.err;
  EXPECT_EQ(hub.api("GET", "/api/v1/terminals/" + id).status, 200) << "nothing else was touched";

  r = cli.run({"exec", "err-bx", "--", "true"});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("did you mean err-box"), std::string::npos) << r.err;

  r = cli.run({"frobnicate"});
  EXPECT_NE(r.status, 0);
  r = cli.run({"create"});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--image IMAGE or --agent NAME"), std::string::npos) << r.err;
}

TEST_F(CliTest, CompletionScriptsNameEveryCommandAndParse) {
  Cli cli(hub, "");
  auto bash = cli.run({"completion", "bash"});
  ASSERT_EQ(bash.status, 0) << bash.err;
  for (const char* word : {"connect", "exec", "--json-stream", "--label", "--hub-profile", "complete -o default -F _rexec rexec"})
    EXPECT_NE(bash.out.find(word), std::string::npos) << word;
  TempDir dir;
  {
    FILE* f = std::fopen((dir / "c.bash").c_str(), "w");
    std::fputs(bash.out.c_str(), f);
    std::fclose(f);
  }
  // bash itself parses it and, once sourced, completes "rexec ex" to exec.
  Process check({"/bin/bash", "-c", "source " + (dir / "c.bash") + " && COMP_WORDS=(rexec ex) COMP_CWORD=1 _rexec && echo \"${COMPREPLY[*]}\""},
                child_env(), dir / "out");
  ASSERT_TRUE(check.wait(10s));
  EXPECT_NE(check.log().find("exec"), std::string::npos) << check.log();
  auto zsh = cli.run({"completion", "zsh"});
  ASSERT_EQ(zsh.status, 0);
  EXPECT_EQ(zsh.out.rfind("#compdef rexec\n", 0), 0u);
  EXPECT_NE(zsh.out.find("exec) compadd --"), std::string::npos);
  auto help = cli.run({"exec", "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("Exit status"), std::string::npos) << help.out;
  EXPECT_NE(cli.run({"completion", "fish"}).status, 0);
}

}  // namespace
}  // namespace rx::test
