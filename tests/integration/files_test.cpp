// File transfer end to end (issue 18, docs/files.md): a real hub, a real agent (and a container's),
// real files. Upload then download 50 MB byte for byte on both kinds; every bad path and failure
// its own status and code; an upload over the cap is 413 and leaves nothing; a 200 MB download
// beside a terminal that is being typed in (the echo figures are printed for the note, never
// asserted: the machines are shared).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <cstring>
#include <random>
#include <set>
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
using Clock = std::chrono::steady_clock;

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  return s;
}

// Query-safe: every byte but unreserved ones percent-encoded.
std::string encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '/' || c == '.' || c == '-' || c == '_') {
      out += char(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof(hex), "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

std::string files_url(const std::string& terminal, const std::string& path, const std::string& extra = "") {
  return "/api/v1/terminals/" + terminal + "/files?path=" + encode(path) + extra;
}

// Status and code of an answer that must be an error.
std::pair<int, std::string> refusal(const HttpResult& r) {
  auto j = json::parse(r.body, nullptr, false);
  return {r.status, j.is_object() ? j.value("code", "") : ""};
}

// Every name in `dir`, so a test can say nothing was left behind (temporary files included).
std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

void round_trip_50mb(HubFixture& hub, const std::string& terminal, const std::string& path) {
  const std::string body = random_bytes(50u << 20, 50);
  auto put = hub.api("PUT", files_url(terminal, path), body);
  ASSERT_EQ(put.status, 201) << put.body;
  EXPECT_EQ(json::parse(put.body)["size"], body.size());
  auto get = http(hub.port(), "GET", files_url(terminal, path), hub.admin_token(), "", {}, 120s);
  ASSERT_EQ(get.status, 200) << get.body.substr(0, 300);
  EXPECT_EQ(get.headers["content-length"], std::to_string(body.size()));
  EXPECT_NE(get.headers["content-disposition"].find("filename=\"" + fs::path(path).filename().string() + "\""),
            std::string::npos)
      << get.headers["content-disposition"];
  ASSERT_EQ(get.body.size(), body.size());
  EXPECT_TRUE(get.body == body) << "the downloaded bytes differ from the uploaded ones";
}

class Files : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("rexec-files-" + std::to_string(::getpid()) + "-" +
                                        testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(Files, UploadThenDownload50MBByteIdenticalOnAnAgentTerminal) {
  HubFixture hub;
  AgentProcess agent(hub, "box");
  ASSERT_TRUE(wait_online(hub, "box", 10s)) << agent.process().log();
  std::string t = create_terminal(hub, "box");
  ASSERT_FALSE(t.empty());
  round_trip_50mb(hub, t, (dir_ / "big.bin").string());
  EXPECT_EQ(fs::file_size(dir_ / "big.bin"), 50u << 20);
  EXPECT_EQ(names_in(dir_), std::set<std::string>{"big.bin"}) << "a temporary file was left behind";

  // The listing, a mode, a delete, and a relative path (the account's home: root's, here).
  ASSERT_EQ(hub.api("PUT", files_url(t, (dir_ / "run.sh").string(), "&mode=0750"), "#!/bin/sh\n").status, 201);
  EXPECT_EQ(fs::status(dir_ / "run.sh").permissions(), fs::perms(0750));
  fs::create_directory(dir_ / "sub");
  auto list = hub.api("GET", files_url(t, dir_.string(), "&list=1"));
  ASSERT_EQ(list.status, 200) << list.body;
  auto entries = json::parse(list.body)["entries"];
  ASSERT_EQ(entries.size(), 3u) << list.body;
  EXPECT_EQ(entries[0]["name"], "big.bin");
  EXPECT_EQ(entries[0]["size"], 50u << 20);
  EXPECT_EQ(entries[0]["is_dir"], false);
  EXPECT_EQ(entries[1]["name"], "run.sh");
  EXPECT_EQ(entries[1]["mode"], 0750);
  EXPECT_EQ(entries[2]["name"], "sub");
  EXPECT_EQ(entries[2]["is_dir"], true);
  EXPECT_EQ(hub.api("DELETE", files_url(t, (dir_ / "big.bin").string())).status, 204);
  EXPECT_FALSE(fs::exists(dir_ / "big.bin"));
  EXPECT_EQ(refusal(hub.api("GET", files_url(t, (dir_ / "big.bin").string()))), std::make_pair(404, std::string("not_found")));

  std::string relative = "rexec-files-test-" + std::to_string(::getpid()) + ".txt";
  ASSERT_EQ(hub.api("PUT", files_url(t, relative), "at home\n").status, 201);
  fs::path home_file = fs::path("/root") / relative;
  EXPECT_TRUE(fs::exists(home_file));
  EXPECT_EQ(hub.api("GET", files_url(t, relative)).body, "at home\n");
  EXPECT_EQ(hub.api("DELETE", files_url(t, relative)).status, 204);
  EXPECT_FALSE(fs::exists(home_file));
  auto audit = json::parse(hub.api("GET", "/api/v1/audit?action=file.put").body);
  EXPECT_GE(audit["entries"].size(), 3u) << audit.dump();
}

TEST_F(Files, EveryBadPathAndFailureGetsItsOwnStatusAndCode) {
  HubFixture hub;
  // Channels run as nobody: the kernel, not the hub, says what may be read and written.
  AgentProcess agent(hub, "box", {"--user", "nobody"});
  ASSERT_TRUE(wait_online(hub, "box", 10s)) << agent.process().log();
  std::string t = create_terminal(hub, "box");
  ASSERT_FALSE(t.empty());
  fs::permissions(dir_, fs::perms::all);  // nobody may write here
  auto expect = [&](const std::string& method, const std::string& url, int status, const std::string& code,
                    const std::string& body = "") {
    auto r = hub.api(method, url, body);
    EXPECT_EQ(refusal(r), std::make_pair(status, code)) << method << " " << url.substr(0, 200) << ": " << r.body.substr(0, 300);
    auto j = json::parse(r.body, nullptr, false);
    EXPECT_FALSE(j.is_object() && j.value("error", "").empty()) << "no message: " << r.body.substr(0, 200);
  };
  // Refused by the hub before anything reaches the agent.
  expect("GET", files_url(t, "a/../etc/passwd"), 400, "bad_path");
  expect("GET", files_url(t, ".."), 400, "bad_path");
  expect("GET", files_url(t, std::string(10000, 'n')), 400, "bad_path");
  expect("GET", files_url(t, std::string(300, 'n')), 400, "bad_path");  // one name over NAME_MAX
  expect("GET", "/api/v1/terminals/" + t + "/files", 400, "bad_path");
  // A NUL never becomes a path: the query itself is refused, saying why.
  auto nul = hub.api("GET", "/api/v1/terminals/" + t + "/files?path=a%00b");
  EXPECT_EQ(nul.status, 400) << nul.body;
  EXPECT_NE(nul.body.find("NUL"), std::string::npos) << nul.body;
  expect("PUT", files_url(t, (dir_ / "m").string(), "&mode=9"), 400, "bad_request", "x");
  expect("GET", files_url(t, "x", "&list=yes"), 400, "bad_request");
  expect("GET", "/api/v1/terminals/t_nope/files?path=x", 404, "not_found");
  // Refused by the agent's child, as the account.
  expect("GET", files_url(t, (dir_ / "missing").string()), 404, "not_found");
  expect("GET", files_url(t, "/etc/shadow"), 403, "permission_denied");
  expect("GET", files_url(t, "/root/.", "&list=1"), 403, "permission_denied");
  expect("PUT", files_url(t, "/etc/rexec-not-allowed"), 403, "permission_denied", "x");
  EXPECT_FALSE(fs::exists("/etc/rexec-not-allowed"));
  expect("GET", files_url(t, dir_.string()), 409, "is_directory");
  expect("PUT", files_url(t, dir_.string(), "&overwrite=1"), 409, "is_directory", "x");
  expect("GET", files_url(t, "/etc/hostname", "&list=1"), 409, "not_directory");
  ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0666), 0);
  expect("GET", files_url(t, (dir_ / "fifo").string()), 409, "not_regular_file");
  ASSERT_EQ(hub.api("PUT", files_url(t, (dir_ / "once").string()), "first").status, 201);
  expect("PUT", files_url(t, (dir_ / "once").string()), 409, "exists", "second");
  EXPECT_EQ(hub.api("GET", files_url(t, (dir_ / "once").string())).body, "first");
  EXPECT_EQ(hub.api("PUT", files_url(t, (dir_ / "once").string(), "&overwrite=1"), "second").status, 201);
  EXPECT_EQ(hub.api("GET", files_url(t, (dir_ / "once").string())).body, "second");
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "once").c_str(), &st), 0);
  EXPECT_NE(st.st_uid, 0u) << "the upload was written as root, not as the terminal's account";
  fs::create_directory(dir_ / "full");
  std::ofstream(dir_ / "full" / "f") << "x";
  expect("DELETE", files_url(t, (dir_ / "full").string()), 409, "not_empty");
  // Nothing partial anywhere after all that.
  for (const auto& name : names_in(dir_)) EXPECT_TRUE(name == "fifo" || name == "once" || name == "full") << name;
  // The agent away: 503.
  agent.kill9();
  ASSERT_TRUE(eventually([&] { return hub.api("GET", files_url(t, "x")).status == 503; }, 40s));
  expect("GET", files_url(t, "x"), 503, "agent_offline");
}

// A chunked upload (no Content-Length) the hub can only refuse once it passes the cap.
HttpResult chunked_put(int port, const std::string& token, const std::string& path, size_t total) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return {};
  std::string head = "PUT " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
                     "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  ::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
  const std::string chunk(64 * 1024, 'c');
  char size[16];
  std::snprintf(size, sizeof(size), "%zx\r\n", chunk.size());
  for (size_t sent = 0; sent < total; sent += chunk.size()) {
    std::string piece = std::string(size) + chunk + "\r\n";
    if (::send(fd, piece.data(), piece.size(), MSG_NOSIGNAL) < 0) break;  // the hub answered and closed
  }
  ::send(fd, "0\r\n\r\n", 5, MSG_NOSIGNAL);
  std::string in;
  char buf[65536];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) in.append(buf, size_t(n));
  ::close(fd);
  auto end = in.find("\r\n\r\n");
  if (end == std::string::npos) return {};
  HttpResult r = parse_head(in.substr(0, end + 4));
  r.body = in.substr(end + 4);
  return r;
}

TEST_F(Files, AnUploadOverTheCapIs413AndLeavesNothingBehind) {
  auto flags = HubFixture::relaxed_limits();
  flags.insert(flags.end(), {"--files-max-bytes", "1048576"});
  HubFixture hub(flags);
  AgentProcess agent(hub, "box");
  ASSERT_TRUE(wait_online(hub, "box", 10s)) << agent.process().log();
  std::string t = create_terminal(hub, "box");
  ASSERT_FALSE(t.empty());
  // Declared too large: refused before a byte is read, nothing reaches the agent.
  auto declared = hub.api("PUT", files_url(t, (dir_ / "big").string()), std::string(2u << 20, 'x'));
  EXPECT_EQ(refusal(declared), std::make_pair(413, std::string("too_large"))) << declared.body;
  // Chunked, so only the bytes tell: the agent had started writing, and must have cleaned up by
  // the time the answer comes (the hub answers once the agent says the channel is gone).
  auto chunked = chunked_put(hub.port(), hub.admin_token(), files_url(t, (dir_ / "big").string()), 4u << 20);
  EXPECT_EQ(refusal(chunked), std::make_pair(413, std::string("too_large"))) << chunked.body;
  EXPECT_TRUE(names_in(dir_).empty()) << "left behind: " << *names_in(dir_).begin();
  // Not even an unnamed temporary file still open: the 413 came after the agent's child was gone.
  EXPECT_EQ(open_files_in(dir_.string()), 0u);
  // Under the cap, chunked too, it lands whole.
  auto fits = chunked_put(hub.port(), hub.admin_token(), files_url(t, (dir_ / "fits").string()), 512 * 1024);
  EXPECT_EQ(fits.status, 201) << fits.body;
  EXPECT_EQ(fs::file_size(dir_ / "fits"), 512u * 1024);
  EXPECT_EQ(names_in(dir_), std::set<std::string>{"fits"});
  // An operator sees both outcomes, and the bytes that went up.
  auto metrics = hub.api("GET", "/metrics").body;
  EXPECT_NE(metrics.find("rexec_file_transfers_total{op=\"put\",result=\"too_large\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("rexec_file_transfers_total{op=\"put\",result=\"ok\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("rexec_file_bytes_total{direction=\"up\"} 524288"), std::string::npos) << metrics;
}

// A chunked upload that turns into garbage half-way: the connection is cut, the agent's child is
// stopped, and nothing is left; the hub goes on serving.
TEST_F(Files, AMalformedUploadBodyIsCutAndLeavesNothing) {
  HubFixture hub;
  AgentProcess agent(hub, "box");
  ASSERT_TRUE(wait_online(hub, "box", 10s)) << agent.process().log();
  std::string t = create_terminal(hub, "box");
  ASSERT_FALSE(t.empty());
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(hub.port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  std::string head = "PUT " + files_url(t, (dir_ / "bad").string()) + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                     hub.admin_token() + "\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string good = "10000\r\n" + std::string(0x10000, 'g') + "\r\n";
  ASSERT_GT(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), 0);
  for (int i = 0; i < 4; ++i) ASSERT_GT(::send(fd, good.data(), good.size(), MSG_NOSIGNAL), 0);
  // The agent's child has the upload open before the garbage comes.
  ASSERT_TRUE(eventually([&] { return open_files_in(dir_.string()) > 0; }, 10s));
  std::string garbage = "zz-not-hex\r\n";
  ::send(fd, garbage.data(), garbage.size(), MSG_NOSIGNAL);
  std::string in;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) in.append(buf, size_t(n));
  ::close(fd);
  EXPECT_EQ(in.find("HTTP/1.1 201"), std::string::npos) << in;
  EXPECT_TRUE(eventually([&] { return open_files_in(dir_.string()) == 0; }, 10s)) << "the agent's child still holds the upload";
  EXPECT_TRUE(names_in(dir_).empty()) << "left behind: " << *names_in(dir_).begin();
  EXPECT_EQ(hub.api("PUT", files_url(t, (dir_ / "good").string()), "fine").status, 201);
}

TEST_F(Files, A200MBDownloadLeavesAnotherTerminalsEchoAlone) {
  HubFixture hub;
  AgentProcess agent(hub, "box", {"--shell", "/bin/sh"});
  ASSERT_TRUE(wait_online(hub, "box", 10s)) << agent.process().log();
  std::string t = create_terminal(hub, "box");
  std::string typing = create_terminal(hub, "box");
  ASSERT_FALSE(t.empty());
  ASSERT_FALSE(typing.empty());
  const size_t size = 200u << 20;
  {
    std::ofstream out(dir_ / "huge.bin", std::ios::binary);
    std::string block = random_bytes(1u << 20, 200);
    for (size_t i = 0; i < size / block.size(); ++i) out << block;
  }
  Viewer v;
  ASSERT_TRUE(v.attach(hub, typing));
  ASSERT_TRUE(v.wait_prompt()) << agent.process().log();
  v.type("cat\r");
  ASSERT_TRUE(v.until([](const Viewer& v) { return v.saw("cat\r\n"); }, 10s)) << v.output;
  auto quiet = echo_times(v, 150);
  ASSERT_EQ(quiet.size(), 150u) << "a keystroke never came back";

  // The same 200 MB, downloaded again and again (at most 4 times) while keys are typed, so the
  // echoes are measured beside a transfer at full speed rather than after it.
  std::ifstream in(dir_ / "huge.bin", std::ios::binary);
  const std::string want((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::atomic<bool> downloading{true};
  std::vector<HttpResult> got;
  std::vector<double> seconds;
  std::thread download([&] {
    for (int i = 0; i < 4; ++i) {
      auto began = Clock::now();
      got.push_back(http(hub.port(), "GET", files_url(t, (dir_ / "huge.bin").string()), hub.admin_token(), "", {}, 300s));
      seconds.push_back(std::chrono::duration<double>(Clock::now() - began).count());
      if (got.back().status != 200) break;
      got.back().body = got.back().body == want ? "same" : "differs";  // 200 MB each: keep the verdict only
    }
    downloading = false;
  });
  auto busy = echo_times(v, 300, [&] { return downloading.load(); });
  download.join();
  ASSERT_FALSE(got.empty());
  for (const auto& g : got) {
    ASSERT_EQ(g.status, 200) << g.body.substr(0, 200);
    EXPECT_EQ(g.body, "same") << "a 200 MB download differs from the file";
  }
  ASSERT_GE(busy.size(), 20u) << "the downloads ended before the echoes could be measured";
  std::printf("files: echo while quiet p50 %.2f ms p99 %.2f ms (%zu keys); during %zu downloads of 200 MB (%.2f s "
              "each at best) p50 %.2f ms p99 %.2f ms (%zu keys); p99 ratio %.2fx\n",
              percentile(quiet, 50), percentile(quiet, 99), quiet.size(), got.size(),
              *std::min_element(seconds.begin(), seconds.end()), percentile(busy, 50), percentile(busy, 99), busy.size(),
              percentile(busy, 99) / std::max(percentile(quiet, 99), 0.001));
}

class FileContainers : public ContainerTest {};

TEST_F(FileContainers, UploadThenDownload50MBByteIdenticalOnAContainerTerminal) {
  HubFixture hub(container_hub_flags());
  std::string id = ContainerTest::create(hub, {{"kind", "container"}, {"image", "rexec/busybox:latest"}});
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(wait_status(hub, id, "running")) << hub.log();
  round_trip_50mb(hub, id, "big.bin");  // in the container account's home
  auto list = hub.api("GET", files_url(id, ".", "&list=1"));
  ASSERT_EQ(list.status, 200) << list.body;
  bool found = false;
  const json listing = json::parse(list.body);  // named: a temporary's member would dangle in the loop
  for (const auto& e : listing["entries"]) found |= e["name"] == "big.bin" && e["size"] == (50u << 20);
  EXPECT_TRUE(found) << list.body;
  EXPECT_EQ(hub.api("DELETE", files_url(id, "big.bin")).status, 204);
}

}  // namespace
}  // namespace rx::test
