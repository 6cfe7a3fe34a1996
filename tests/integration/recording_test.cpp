// Terminal recordings end to end (issue 18): a real agent's shell and a container's, recorded by
// the hub as asciicast; the file parses line by line, its times never go back, the real
// `asciinema cat` plays it, a password typed at `read -s` is not in it, and after `kill -9` of the
// hub the file is valid to its last line and the recording goes on in it.
#include <gtest/gtest.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include <filesystem>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/integration/container_support.h"
#include "tests/integration/relay_support.h"
#include "tests/support/api_expect.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string create(HubFixture& hub, const json& spec) {
  auto r = hub.api("POST", "/api/v1/terminals", spec.dump());
  EXPECT_EQ(r.status, 201) << r.body;
  return r.status == 201 ? json::parse(r.body).value("id", "") : "";
}

json recording_of(HubFixture& hub, const std::string& terminal) {
  auto list = json::parse(hub.api("GET", "/api/v1/recordings?terminal=" + terminal).body);
  return list["recordings"].size() == 1 ? list["recordings"][0] : json();
}

struct Cast {
  json header;
  std::vector<json> events;
  std::string text;  // the "o" data in order
  size_t bad_lines = 0;
};

Cast parse_cast(const std::string& body) {
  Cast c;
  std::istringstream in(body);
  bool first = true;
  for (std::string line; std::getline(in, line);) {
    auto j = json::parse(line, nullptr, false);
    if (j.is_discarded()) {
      ++c.bad_lines;
      continue;
    }
    if (first) c.header = j;
    else c.events.push_back(j);
    first = false;
    if (j.is_array() && j.size() == 3 && j[1] == "o") c.text += j[2].get<std::string>();
  }
  return c;
}

// Every event is [time, code, text] and the times never go backwards.
void expect_well_formed(const Cast& c) {
  EXPECT_EQ(c.bad_lines, 0u);
  EXPECT_EQ(c.header.value("version", 0), 2) << c.header.dump();
  double last = 0;
  for (const auto& e : c.events) {
    ASSERT_TRUE(e.is_array() && e.size() == 3 && e[0].is_number() && e[1].is_string() && e[2].is_string()) << e.dump();
    EXPECT_GE(e[0].get<double>(), last) << e.dump();
    last = e[0].get<double>();
  }
}

bool has_event(const Cast& c, const std::string& code, const std::string& data) {
  for (const auto& e : c.events)
    if (e[1] == code && e[2] == data) return true;
  return false;
}

std::string cast_body(HubFixture& hub, const std::string& recording) {
  return hub.api("GET", "/api/v1/recordings/" + recording + ".cast").body;
}

// The player's segmented source over HTTP: an index, then segments by the URLs it gives.
struct Segmented {
  json index;
  std::string text;  // the "o" data of every segment, in order
  size_t segments = 0;
};

Segmented fetch_segmented(const std::function<HttpResult(const std::string&)>& get, const std::string& base) {
  Segmented out;
  auto r = get(base + "/segments");
  EXPECT_EQ(r.status, 200) << r.body;
  if (r.status != 200) return out;
  out.index = json::parse(r.body);
  for (const auto& s : out.index["segments"]) {
    auto seg = get(base + "/" + s["url"].get<std::string>());
    EXPECT_EQ(seg.status, 200) << seg.body;
    if (seg.status != 200) break;
    auto j = json::parse(seg.body);
    EXPECT_TRUE(j["snapshot"]["init"].is_string());
    for (const auto& e : j["events"])
      if (e[1] == "o") out.text += e[2].get<std::string>();
    ++out.segments;
  }
  return out;
}

TEST(Recording, AColourfulSplitUtf8SessionWithResizesPlaysInAsciinemaWithoutThePassword) {
  HubFixture hub;
  AgentProcess agent(hub, "box");
  ASSERT_TRUE(wait_online(hub, "box", 10s)) << agent.process().log();
  std::string id = create(hub, {{"kind", "agent"}, {"agent", "box"}});
  ASSERT_FALSE(id.empty());
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  ASSERT_TRUE(v.wait_prompt()) << agent.process().log();
  // Colours, and "é" and "€" each cut between two output chunks (the sleeps make separate reads).
  v.type("printf '\\033[32mgreen\\033[0m caf\\303'; sleep 0.3; printf '\\251 \\342\\202'; sleep 0.3; printf '\\254 done\\n'\r");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("caf\xc3\xa9 \xe2\x82\xac done"); }, 10s)) << v.output;
  v.resize(100, 30);
  v.type("stty size\r");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("30 100"); }, 10s)) << v.output;
  v.resize(120, 40);
  v.type("stty size\r");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("40 120"); }, 10s)) << v.output;
  // A password at a prompt that does not echo: typed, never shown, and so never recorded.
  // (read -s as POSIX sh spells it: echo off first, then the prompt, so nothing typed is echoed.)
  v.type("stty -echo; printf 'Pass''word: '; read pw; stty echo; echo; echo \"len=${#pw}\"\r");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("Password: "); }, 10s)) << v.output;  // the shell's, not the echo
  v.type("Zq7-s3cret-Xw\r");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("len=13"); }, 10s)) << v.output;
  v.type("exit 3\r");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.event("exit").has_value(); }, 10s)) << v.output;

  json rec = recording_of(hub, id);
  ASSERT_TRUE(rec.is_object()) << hub.api("GET", "/api/v1/recordings").body;
  EXPECT_EQ(rec["kind"], "agent");
  EXPECT_EQ(rec["live"], true);
  Cast c;
  ASSERT_TRUE(eventually([&] {
    c = parse_cast(cast_body(hub, rec["id"]));
    return has_event(c, "x", "3");
  }, 10s)) << cast_body(hub, rec["id"]);
  expect_well_formed(c);
  EXPECT_EQ(c.header["width"], 80);
  EXPECT_EQ(c.header["height"], 24);
  EXPECT_TRUE(has_event(c, "r", "100x30"));
  EXPECT_TRUE(has_event(c, "r", "120x40"));
  // The text is what the viewer saw, byte for byte (all of it was UTF-8); the exit event may
  // reach the viewer before the last output, so it reads on until it has that too.
  v.until([&](const Viewer& v) { return v.output.size() >= c.text.size(); }, 5s);
  EXPECT_EQ(c.text, v.output);
  std::string body = cast_body(hub, rec["id"]);
  EXPECT_EQ(body.find("s3cret"), std::string::npos) << "the password is in the recording";
  EXPECT_NE(body.find("\\u001b[32mgreen"), std::string::npos);
  for (const auto& e : c.events) EXPECT_NE(e[1], "i") << "input recorded without record_input";

  // The real asciinema plays it.
  TempDir dir("rexec-recording");
  std::string file = dir.path() + "/session.cast";
  std::ofstream(file) << body;
  auto env = child_env();
  env["ASCIINEMA_CONFIG_HOME"] = dir.path();  // it wants a config home, even to cat
  // asciinema cat reads keys from /dev/tty: it gets a terminal of its own from script(1).
  Process cat({"/usr/bin/script", "-qec", "/usr/bin/asciinema cat " + file, "/dev/null"}, env, dir.path() + "/cat.log");
  auto status = cat.wait(30s);
  ASSERT_TRUE(status) << "asciinema cat did not finish";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << cat.log();
  EXPECT_NE(cat.log().find("caf\xc3\xa9 \xe2\x82\xac done"), std::string::npos) << cat.log();
  EXPECT_NE(cat.log().find("len=13"), std::string::npos) << cat.log();
  EXPECT_EQ(cat.log().find("s3cret"), std::string::npos);

  // Range: the first ten bytes; past the end, 416.
  auto part = http(hub.port(), "GET", "/api/v1/recordings/" + rec["id"].get<std::string>() + ".cast", hub.admin_token(),
                   "", {{"Range", "bytes=0-9"}});
  EXPECT_EQ(part.status, 206) << part.body;
  EXPECT_EQ(part.body, body.substr(0, 10));
  auto past = http(hub.port(), "GET", "/api/v1/recordings/" + rec["id"].get<std::string>() + ".cast", hub.admin_token(),
                   "", {{"Range", "bytes=99999999-"}});
  expect_error(past, 416, "range_not_satisfiable");
}

TEST(Recording, InputOnlyWhenAskedAndNoneWhenRecordIsFalse) {
  HubFixture hub;
  AgentProcess agent(hub, "box");
  ASSERT_TRUE(wait_online(hub, "box", 10s)) << agent.process().log();
  std::string with_input = create(hub, {{"kind", "agent"}, {"agent", "box"}, {"record_input", true}});
  std::string unrecorded = create(hub, {{"kind", "agent"}, {"agent", "box"}, {"record", false}});
  ASSERT_FALSE(with_input.empty());
  ASSERT_FALSE(unrecorded.empty());
  EXPECT_EQ(json::parse(hub.api("GET", "/api/v1/terminals/" + unrecorded).body)["record"], false);
  Viewer v;
  ASSERT_TRUE(v.attach(hub, with_input));
  ASSERT_TRUE(v.wait_prompt());
  v.type("echo typed-$((40+2))\r");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("typed-42"); }, 10s)) << v.output;
  json rec = recording_of(hub, with_input);
  ASSERT_TRUE(rec.is_object());
  EXPECT_TRUE(eventually([&] { return has_event(parse_cast(cast_body(hub, rec["id"])), "i", "echo typed-$((40+2))\r"); }, 10s))
      << cast_body(hub, rec["id"]);
  EXPECT_EQ(json::parse(hub.api("GET", "/api/v1/recordings?terminal=" + unrecorded).body)["recordings"].size(), 0u);

  // Bad input, each a clear error.
  expect_error(hub.api("POST", "/api/v1/terminals", R"({"kind":"agent","agent":"box","record":"yes"})"), 400, "bad_field");
  expect_error(hub.api("POST", "/api/v1/terminals", R"({"kind":"agent","agent":"box","record":false,"record_input":true})"),
               400, "bad_field");
  expect_error(hub.api("GET", "/api/v1/recordings/r_nope"), 404, "not_found");
  expect_error(hub.api("GET", "/api/v1/recordings/r_nope.cast"), 404, "not_found");
  expect_error(hub.api("GET", "/api/v1/recordings?limit=0"), 400, "bad_field");
  expect_error(hub.api("GET", "/api/v1/recordings?since=yesterday"), 400, "bad_field");
  // A live recording is not deleted; once its terminal is gone it is, file and all.
  expect_error(hub.api("DELETE", "/api/v1/recordings/" + rec["id"].get<std::string>()), 409, "conflict");
  ASSERT_EQ(hub.api("DELETE", "/api/v1/terminals/" + with_input).status, 200);
  json after = json::parse(hub.api("GET", "/api/v1/recordings/" + rec["id"].get<std::string>()).body);
  EXPECT_EQ(after["live"], false) << after.dump();
  std::string file = hub.data_dir() + "/data/recordings/" + rec["id"].get<std::string>() + ".cast";
  EXPECT_TRUE(fs::exists(file));
  EXPECT_EQ(hub.api("DELETE", "/api/v1/recordings/" + rec["id"].get<std::string>()).status, 200);
  EXPECT_FALSE(fs::exists(file));
  expect_error(hub.api("GET", "/api/v1/recordings/" + rec["id"].get<std::string>()), 404, "not_found");
}

TEST(Recording, AfterKill9TheFileIsValidToItsLastLineAndTheRecordingGoesOn) {
  HubFixture hub;
  AgentProcess agent(hub, "box");
  ASSERT_TRUE(wait_online(hub, "box", 10s)) << agent.process().log();
  std::string id = create(hub, {{"kind", "agent"}, {"agent", "box"}});
  json rec;
  {
    Viewer v;
    ASSERT_TRUE(v.attach(hub, id));
    ASSERT_TRUE(v.wait_prompt());
    v.type("echo before-$((1+1))\r");
    ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("before-2"); }, 10s)) << v.output;
    rec = recording_of(hub, id);
    ASSERT_TRUE(rec.is_object());
    ASSERT_TRUE(eventually([&] { return parse_cast(cast_body(hub, rec["id"])).text.find("before-2") != std::string::npos; }, 10s));
    // Output still flowing when the hub dies.
    v.type("for i in $(seq 1 400); do echo line-$i; sleep 0.01; done\r");
    ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("line-50"); }, 10s)) << v.output;
  }
  hub.kill9();
  std::string file = hub.data_dir() + "/data/recordings/" + rec["id"].get<std::string>() + ".cast";
  std::string on_disk = read_file(file);
  ASSERT_FALSE(on_disk.empty());
  ASSERT_EQ(on_disk.back(), '\n') << "a torn last line";  // the writer writes whole lines
  expect_well_formed(parse_cast(on_disk));

  hub.start();
  ASSERT_TRUE(wait_online(hub, "box", 20s)) << hub.log();
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("line-400"); }, 20s)) << v.output;
  v.type("echo after-$((2+2))\r");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("after-4"); }, 15s)) << v.output;
  Cast c;
  ASSERT_TRUE(eventually([&] {
    c = parse_cast(cast_body(hub, rec["id"]));
    return c.text.find("after-4") != std::string::npos;
  }, 10s)) << cast_body(hub, rec["id"]);
  expect_well_formed(c);
  EXPECT_NE(c.text.find("before-2"), std::string::npos);
  // The shell went on printing while the hub was down; the agent replays what it holds, and the
  // recording takes it from its mark on: every line once, none twice, none missing.
  auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t at = c.text.find(needle); at != std::string::npos; at = c.text.find(needle, at + 1)) ++n;
    return n;
  };
  for (int i = 1; i <= 400; ++i) ASSERT_EQ(count("\nline-" + std::to_string(i) + "\r\n"), 1u) << "line-" << i << "\n" << c.text;
  EXPECT_TRUE(has_event(c, "m", "rexec: recording continues"));
  EXPECT_EQ(recording_of(hub, id)["id"], rec["id"]) << "a second recording instead of the same one going on";
}

TEST(Recording, AShareLinkPlaysWithoutAnAccountUntilItIsDeleted) {
  HubFixture hub;
  AgentProcess agent(hub, "box");
  ASSERT_TRUE(wait_online(hub, "box", 10s)) << agent.process().log();
  std::string id = create(hub, {{"kind", "agent"}, {"agent", "box"}});
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  v.type("echo shared-$((5*5))\r");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("shared-25"); }, 10s)) << v.output;
  json rec = recording_of(hub, id);
  ASSERT_TRUE(rec.is_object());
  std::string rid = rec["id"];
  expect_error(hub.api("POST", "/api/v1/recordings/" + rid + "/shares", R"({"expires_in": 10})"), 400, "bad_field");
  auto made = hub.api("POST", "/api/v1/recordings/" + rid + "/shares", R"({"expires_in": 3600})");
  ASSERT_EQ(made.status, 201) << made.body;
  json share = json::parse(made.body);
  std::string code = share["code"];
  EXPECT_TRUE(code.starts_with("rxr_")) << code;
  EXPECT_EQ(code.size(), 36u);  // 192 bits
  EXPECT_TRUE(share["url"].get<std::string>().ends_with("/p/" + code));
  EXPECT_EQ(json::parse(hub.api("GET", "/api/v1/recordings/" + rid + "/shares").body)["shares"][0].count("code"), 0u)
      << "a listed link shows its code again";

  // No token: the code alone, in a body or a header, never in the URL.
  auto looked = http(hub.port(), "POST", "/api/v1/recording-shares/lookup", "", json{{"code", code}}.dump());
  ASSERT_EQ(looked.status, 200) << looked.body;
  EXPECT_EQ(json::parse(looked.body)["recording"]["id"], rid);
  EXPECT_EQ(json::parse(looked.body)["recording"].count("owner"), 0u);
  auto cast = [&](const std::string& c) {
    return http(hub.port(), "GET", "/api/v1/recording-shares/cast", "", "", {{"X-Rexec-Share", c}});
  };
  ASSERT_TRUE(eventually([&] { return parse_cast(cast(code).body).text.find("shared-25") != std::string::npos; }, 10s))
      << cast(code).body;
  expect_well_formed(parse_cast(cast(code).body));
  expect_error(http(hub.port(), "GET", "/api/v1/recording-shares/cast"), 401, "unauthorized");
  expect_error(cast("rxr_" + std::string(32, 'A')), 401, "unauthorized");
  auto terminal_share = json::parse(hub.api("POST", "/api/v1/terminals/" + id + "/shares", "{}").body)["code"];
  expect_error(cast(terminal_share), 401, "unauthorized");  // a terminal's link plays no recording
  expect_error(http(hub.port(), "POST", "/api/v1/recording-shares/lookup", "", R"({"code": 5})"), 400, "bad_field");

  // The player's segments, with the code in the same header: the same output as the file.
  auto shared = [&](const std::string& path) { return http(hub.port(), "GET", path, "", "", {{"X-Rexec-Share", code}}); };
  Segmented seg = fetch_segmented(shared, "/api/v1/recording-shares");
  EXPECT_NE(seg.text.find("shared-25"), std::string::npos) << seg.index.dump();
  expect_error(http(hub.port(), "GET", "/api/v1/recording-shares/segments"), 401, "unauthorized");
  expect_error(http(hub.port(), "GET", "/api/v1/recording-shares/segments/0?to=1", "", "", {{"X-Rexec-Share", terminal_share.get<std::string>()}}),
               401, "unauthorized");

  // Deleted: refused at once.
  ASSERT_EQ(hub.api("DELETE", "/api/v1/recording-shares/" + share["id"].get<std::string>()).status, 200);
  expect_error(cast(code), 401, "unauthorized");
  expect_error(shared("/api/v1/recording-shares/segments"), 401, "unauthorized");
  expect_error(shared("/api/v1/recording-shares/" + seg.index["segments"][0]["url"].get<std::string>()), 401, "unauthorized");
  expect_error(http(hub.port(), "POST", "/api/v1/recording-shares/lookup", "", json{{"code", code}}.dump()), 401,
               "unauthorized");
  expect_error(hub.api("DELETE", "/api/v1/recording-shares/" + share["id"].get<std::string>()), 404, "not_found");
}

TEST(Recording, ThePlayersSegmentsHoldTheWholeCastAndBadSegmentRequestsAreRefused) {
  HubFixture hub;
  AgentProcess agent(hub, "box");
  ASSERT_TRUE(wait_online(hub, "box", 10s)) << agent.process().log();
  std::string id = create(hub, {{"kind", "agent"}, {"agent", "box"}});
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  // About 3.4 MB of output: four segments of about 1 MiB of file.
  v.type("seq -f 'row %.0f' 1 350000; echo seq-$((6*7))\r");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("seq-42"); }, 60s));
  json rec = recording_of(hub, id);
  ASSERT_TRUE(rec.is_object());
  std::string base = "/api/v1/recordings/" + rec["id"].get<std::string>();
  ASSERT_TRUE(eventually([&] { return parse_cast(cast_body(hub, rec["id"])).text.find("seq-42") != std::string::npos; }, 15s));

  auto get = [&](const std::string& path) { return hub.api("GET", path); };
  Segmented seg = fetch_segmented(get, base);
  EXPECT_GE(seg.segments, 3u) << seg.index.dump();
  // Every byte of output, once and in order, as the whole file has it up to where the index ended.
  Cast whole = parse_cast(cast_body(hub, rec["id"]));
  ASSERT_GE(whole.text.size(), seg.text.size());
  EXPECT_EQ(whole.text.substr(0, seg.text.size()), seg.text);
  EXPECT_NE(seg.text.find("row 350000"), std::string::npos);
  EXPECT_EQ(seg.index["term"]["cols"], whole.header["width"]);

  // Output after the index was made: a new index reaches it; the old URLs still answer.
  std::string first_last = seg.index["segments"].back()["url"];
  v.type("echo more-$((7*7))\r");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("more-49"); }, 15s));
  ASSERT_TRUE(eventually([&] { return fetch_segmented(get, base).text.find("more-49") != std::string::npos; }, 15s));
  EXPECT_GT(json::parse(get(base + "/segments").body)["duration"].get<double>(), seg.index["duration"].get<double>());
  EXPECT_EQ(get(base + "/" + first_last).status, 200);

  expect_error(get(base + "/segments/first?to=10"), 400, "bad_request");
  expect_error(get(base + "/segments/0"), 400, "bad_request");            // no to=
  expect_error(get(base + "/segments/0?to=-1"), 400, "bad_field");
  expect_error(get(base + "/segments/0?to=999999999999"), 400, "bad_request");
  expect_error(get(base + "/segments/99999?to=10"), 404, "not_found");
  expect_error(get(base + "/segments/18446744073709551616?to=10"), 400, "bad_request");
  expect_error(get("/api/v1/recordings/r_nosuch/segments"), 404, "not_found");
  expect_error(http(hub.port(), "GET", base + "/segments"), 401, "unauthorized");
}

TEST(Recording, RetentionDeletesTheOldestEndedOnesAndNeverALiveOne) {
  // One byte in all: every ended recording is over it; a live one is kept whatever it takes.
  auto flags = HubFixture::relaxed_limits();
  flags.insert(flags.end(), {"--recordings-max-bytes", "1"});
  HubFixture hub(flags);
  AgentProcess agent(hub, "box");
  ASSERT_TRUE(wait_online(hub, "box", 10s)) << agent.process().log();
  std::string ended = create(hub, {{"kind", "agent"}, {"agent", "box"}});
  std::string live = create(hub, {{"kind", "agent"}, {"agent", "box"}});
  json gone = recording_of(hub, ended), kept = recording_of(hub, live);
  ASSERT_TRUE(gone.is_object() && kept.is_object());
  std::string gone_file = hub.data_dir() + "/data/recordings/" + gone["id"].get<std::string>() + ".cast";
  ASSERT_TRUE(eventually([&] { return fs::exists(gone_file); }, 10s));
  ASSERT_EQ(hub.api("DELETE", "/api/v1/terminals/" + ended).status, 200);
  EXPECT_TRUE(eventually([&] { return hub.api("GET", "/api/v1/recordings/" + gone["id"].get<std::string>()).status == 404; }, 10s));
  EXPECT_FALSE(fs::exists(gone_file));
  EXPECT_EQ(hub.api("GET", "/api/v1/recordings/" + kept["id"].get<std::string>()).status, 200);
  auto audit = json::parse(hub.api("GET", "/api/v1/audit?action=recording.expire").body);
  ASSERT_EQ(audit["entries"].size(), 1u) << audit.dump();
  EXPECT_EQ(audit["entries"][0]["target"], gone["id"]);
}

// The hub's recording writer thread ("rx-recorder"), found by its name.
pid_t recorder_thread(pid_t hub) {
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(hub) + "/task")) {
    std::ifstream comm(e.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name == "rx-recorder") return pid_t(std::stoi(e.path().filename().string()));
  }
  return -1;
}

std::string wchan(pid_t hub, pid_t tid) {
  std::ifstream in("/proc/" + std::to_string(hub) + "/task/" + std::to_string(tid) + "/wchan");
  std::string s;
  std::getline(in, s);
  return s;
}

// A disk that stops answering, for real: the writer thread itself is frozen (ptrace stops that
// one thread, the hub's loop runs on) while a second terminal floods output, so the writer's
// queue fills and the recorder must drop. The typist's echo must not notice; the recording
// must say what it lost once the writer runs again.
TEST(Recording, AStuckRecordingDiskNeverDelaysTheShellsEcho) {
  HubFixture hub;
  AgentProcess agent(hub, "box", {"--shell", "/bin/sh"});
  ASSERT_TRUE(wait_online(hub, "box", 10s)) << agent.process().log();
  std::string typing = create(hub, {{"kind", "agent"}, {"agent", "box"}});
  std::string flood = create(hub, {{"kind", "agent"}, {"agent", "box"}});
  ASSERT_FALSE(typing.empty());
  ASSERT_FALSE(flood.empty());
  Viewer v, f;
  ASSERT_TRUE(v.attach(hub, typing));
  ASSERT_TRUE(v.wait_prompt()) << agent.process().log();
  ASSERT_TRUE(f.attach(hub, flood));
  ASSERT_TRUE(f.wait_prompt()) << agent.process().log();
  v.type("cat\r");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("cat\r\n"); }, 10s)) << v.output;
  // The same flood first with the writer running: the baseline the stuck disk is compared with.
  f.type("head -c 40000000 /dev/zero | tr '\\0' x; echo; echo FLOOD''-ONE\r");
  f.ws.close();
  auto running = echo_times(v, 100);
  ASSERT_EQ(running.size(), 100u);
  Viewer f2;
  ASSERT_TRUE(f2.attach(hub, flood));
  ASSERT_TRUE(f2.until([](const Viewer& v) { return v.saw("FLOOD-ONE"); }, 60s)) << "the first flood never ended";

  pid_t hub_pid = hub.process().pid();
  pid_t tid = recorder_thread(hub_pid);
  ASSERT_GT(tid, 0) << "no rx-recorder thread in the hub";
  // Frozen while it waits for work (its lock is free then), as a writer stuck in write() is.
  ASSERT_TRUE(eventually([&] { return wchan(hub_pid, tid).find("futex") != std::string::npos; }, 10s)) << wchan(hub_pid, tid);
  ASSERT_EQ(::ptrace(PTRACE_SEIZE, tid, nullptr, nullptr), 0) << std::strerror(errno);
  ASSERT_EQ(::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr), 0) << std::strerror(errno);
  int st = 0;
  ASSERT_EQ(::waitpid(tid, &st, __WALL), tid);
  // 40 MB of output, five times the writer's queue, while the typist types. Its viewer leaves at
  // once: with no viewer to hold it back, only the (frozen) recorder sees the flood.
  f2.type("head -c 40000000 /dev/zero | tr '\\0' x; echo; echo FLOOD''-DONE\r");
  f2.ws.close();
  auto stuck = echo_times(v, 100);
  ::ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
  ASSERT_EQ(stuck.size(), 100u) << "a keystroke never came back while the disk was stuck";
  std::printf("recording: echo beside a 40 MB flood, p50 %.2f ms p99 %.2f ms with the writer running; p50 %.2f ms "
              "p99 %.2f ms with it frozen (p99 ratio frozen/running %.2fx)\n",
              percentile(running, 50), percentile(running, 99), percentile(stuck, 50), percentile(stuck, 99),
              percentile(stuck, 99) / std::max(percentile(running, 99), 0.001));
  // The flood's recording says what it lost, before the next output it records.
  Viewer after;
  ASSERT_TRUE(after.attach(hub, flood));
  ASSERT_TRUE(after.until([](const Viewer& v) { return v.saw("FLOOD-DONE"); }, 60s)) << "the flood never ended";
  after.type("echo AFTER''-FLOOD\r");
  ASSERT_TRUE(after.until([](const Viewer& v) { return v.saw("AFTER-FLOOD"); }, 10s));
  json rec = recording_of(hub, flood);
  ASSERT_TRUE(rec.is_object());
  ASSERT_TRUE(eventually([&] {
    const Cast c = parse_cast(cast_body(hub, rec["id"]));  // named: a temporary's member would dangle
    for (const auto& e : c.events)
      if (e[1] == "m" && e[2].get<std::string>().find("not recorded") != std::string::npos) return true;
    return false;
  }, 30s)) << "no gap marker in the flooded terminal's recording";
  auto metrics = hub.api("GET", "/metrics").body;
  EXPECT_NE(metrics.find("rexec_recording_dropped_bytes_total"), std::string::npos);
}

class RecordingContainers : public ContainerTest {};

TEST_F(RecordingContainers, AContainerTerminalIsRecordedLikeAnAgentOne) {
  HubFixture hub(container_hub_flags());
  std::string id = ContainerTest::create(hub, {{"kind", "container"}, {"image", "rexec/busybox:latest"}});
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(wait_status(hub, id, "running")) << hub.log();
  Viewer v;
  ASSERT_TRUE(v.attach(hub, id));
  v.type("echo in-a-box-$((3*3))\n");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("in-a-box-9"); }, 10s)) << v.output;
  json rec = recording_of(hub, id);
  ASSERT_TRUE(rec.is_object()) << hub.api("GET", "/api/v1/recordings").body;
  EXPECT_EQ(rec["kind"], "container");
  Cast c;
  ASSERT_TRUE(eventually([&] {
    c = parse_cast(cast_body(hub, rec["id"]));
    return c.text.find("in-a-box-9") != std::string::npos;
  }, 10s)) << cast_body(hub, rec["id"]);
  expect_well_formed(c);
  ASSERT_EQ(hub.api("DELETE", "/api/v1/terminals/" + id).status, 200);
  EXPECT_EQ(json::parse(hub.api("GET", "/api/v1/recordings/" + rec["id"].get<std::string>()).body)["live"], false);
}

}  // namespace
}  // namespace rx::test
