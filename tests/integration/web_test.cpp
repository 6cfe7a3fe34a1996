// The dashboard's files: built into the hub (pages get index.html with its CSP; gzip when asked)
// and, with web-dir, read from a directory without ever leaving it, whatever the path says.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <zlib.h>

#include "hub/net/web.h"
#include "tests/support/api_expect.h"
#include "tests/support/hub_fixture.h"
#include "tests/support/process.h"

namespace rx::test {
namespace {

std::string gunzip(const std::string& in) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return {};
  std::string out(in.size() * 20 + 1024, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = uInt(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = uInt(out.size());
  int rc = inflate(&z, Z_FINISH);
  out.resize(z.total_out);
  inflateEnd(&z);
  return rc == Z_STREAM_END ? out : std::string("(inflate failed)");
}

TEST(WebFiles, BuiltInCopyHasThePageItsScriptsAndTheEmbed) {
  hub::WebFiles web("");
  auto index = web.get("/", false);
  ASSERT_EQ(index.status, 200);
  EXPECT_EQ(index.content_type, "text/html; charset=utf-8");
  EXPECT_NE(index.body.find("/assets/app.js"), std::string::npos);
  bool csp = false;
  for (const auto& [k, v] : index.headers)
    if (k == "Content-Security-Policy") csp = v.find("default-src 'self'") != std::string::npos;
  EXPECT_TRUE(csp);
  for (const char* page : {"/login", "/t/t_abc", "/s/rxs_x"}) EXPECT_EQ(web.get(page, false).body, index.body) << page;
  auto js = web.get("/assets/app.js", false);
  ASSERT_EQ(js.status, 200);
  EXPECT_EQ(js.content_type, "text/javascript; charset=utf-8");
  auto gz = web.get("/assets/app.js", true);
  EXPECT_LT(gz.body.size(), js.body.size());
  EXPECT_EQ(gunzip(gz.body), js.body);
  EXPECT_EQ(web.get("/embed.js", false).status, 200);
  for (const char* bad : {"/assets/nope.js", "/t/a/b", "/index.html/", "/etc/passwd"})
    EXPECT_EQ(web.get(bad, false).status, 404) << bad;
}

TEST(WebFiles, DirectoryServingNeverLeavesTheDirectory) {
  TempDir tmp;
  auto root = std::filesystem::path(tmp.path()) / "web";
  std::filesystem::create_directories(root / "assets");
  std::ofstream(root / "index.html") << "<html>dev</html>";
  std::ofstream(root / "assets" / "app.js") << "console.log(1)";
  std::ofstream(root / ".secret") << "hidden";
  std::ofstream(std::filesystem::path(tmp.path()) / "admin.token") << "rxk_secret";
  std::filesystem::create_symlink("../../admin.token", root / "assets" / "link.js");
  hub::WebFiles web(root.string());
  EXPECT_EQ(web.get("/", false).body, "<html>dev</html>");
  EXPECT_EQ(web.get("/t/x", false).body, "<html>dev</html>");
  EXPECT_EQ(web.get("/assets/app.js", false).body, "console.log(1)");
  for (const char* trick : {"/../admin.token", "/assets/../../admin.token", "/.secret", "/assets/link.js", "/assets/./app.js",
                            "/assets//app.js", "/assets/app.js\\..\\..", "/assets/%2e%2e/admin.token", "/assets/"}) {
    auto r = web.get(trick, false);
    EXPECT_EQ(r.status, 404) << trick;
    EXPECT_EQ(r.body.find("rxk_secret"), std::string::npos) << trick;
  }
}

TEST(WebFiles, TheHubServesThemWithTheirHeaders) {
  HubFixture hub;
  auto page = http(hub.port(), "GET", "/t/t_whatever");
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.headers["content-security-policy"].find("default-src 'self'"), std::string::npos);
  // Scripts from the hub only: WebAssembly may be compiled (the recording player), script text never evaluated.
  EXPECT_NE(page.headers["content-security-policy"].find("script-src 'self' 'wasm-unsafe-eval';"), std::string::npos);
  EXPECT_EQ(page.headers["content-security-policy"].find("'unsafe-eval'"), std::string::npos);
  EXPECT_EQ(page.headers["x-frame-options"], "DENY");
  for (const char* path : {"/recordings", "/r/r_whatever", "/p/rxr_whatever"}) {
    auto p = http(hub.port(), "GET", path);
    EXPECT_EQ(p.status, 200) << path;
    EXPECT_NE(p.headers["content-security-policy"].find("default-src 'self'"), std::string::npos) << path;
  }
  EXPECT_EQ(http(hub.port(), "GET", "/r/a/b").status, 404);
  auto gz = http(hub.port(), "GET", "/assets/app.js", "", "", {{"Accept-Encoding", "gzip, deflate"}});
  ASSERT_EQ(gz.status, 200);
  EXPECT_EQ(gz.headers["content-encoding"], "gzip");
  EXPECT_GT(gunzip(gz.body).size(), gz.body.size());
  auto embed = http(hub.port(), "GET", "/embed.js");
  EXPECT_EQ(embed.headers["access-control-allow-origin"], "*");
  // Path tricks over the wire: never the data directory's files.
  for (const char* trick : {"/assets/..%2f..%2fdata%2fadmin.token", "/assets/../data/admin.token", "/../../etc/passwd",
                            "/assets/%00.js"}) {
    auto r = http(hub.port(), "GET", trick);
    EXPECT_NE(r.status, 200) << trick;
    EXPECT_EQ(r.body.find(hub.admin_token()), std::string::npos) << trick;
  }
  expect_error(http(hub.port(), "GET", "/assets/nope.js"), 404, "not_found");
}

}  // namespace
}  // namespace rx::test
