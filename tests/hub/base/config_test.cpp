// Config file parsing and the file-then-flags order.
#include "hub/base/config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "hub/base/tokens.h"

namespace rx::hub {
namespace {

TEST(Config, ParsesKeyValueLinesCommentsAndQuotes) {
  auto e = parse_config_text("# a comment\n; another\n\nlisten = 0.0.0.0:9000\r\ndata-dir=\"/var/lib/rexec hub\"\n  rate-requests =  50  \n");
  ASSERT_TRUE(e.ok()) << e.error().message;
  ASSERT_EQ(e->size(), 3u);
  EXPECT_EQ((*e)[0], (std::pair<std::string, std::string>{"listen", "0.0.0.0:9000"}));
  EXPECT_EQ((*e)[1].second, "/var/lib/rexec hub");
  EXPECT_EQ((*e)[2].second, "50");
}

TEST(Config, BadLinesNameTheirLineNumber) {
  auto no_eq = parse_config_text("listen = a:1\nnonsense\n");
  ASSERT_FALSE(no_eq.ok());
  EXPECT_NE(no_eq.error().message.find("line 2"), std::string::npos) << no_eq.error().message;
  auto section = parse_config_text("[hub]\n");
  ASSERT_FALSE(section.ok());
  EXPECT_NE(section.error().message.find("line 1"), std::string::npos);
  EXPECT_FALSE(parse_config_text(" = x\n").ok());
}

TEST(Config, EveryKeyIsAcceptedAndBadValuesAreRefused) {
  HubConfig c;
  for (auto key : config_keys()) {
    std::string value = key == "listen"       ? "127.0.0.1:1"
                        : key == "public-url" ? "https://hub.example:8443/"
                        : (key == "data-dir" || key.starts_with("tls") || key == "docker-socket" || key == "agent-binary" ||
                           key == "web-dir")
                            ? "/x"
                            : "2048";
    EXPECT_TRUE(apply_setting(c, key, value).ok()) << key;
  }
  EXPECT_EQ(c.rate_requests, 2048);
  EXPECT_EQ(c.max_body, 2048u);
  EXPECT_EQ(c.public_url, "https://hub.example:8443") << "a trailing slash is dropped";
  EXPECT_FALSE(apply_setting(c, "public-url", "hub.example").ok()) << "a scheme is required";
  EXPECT_FALSE(apply_setting(c, "session-ttl", "5").ok());
  auto unknown = apply_setting(c, "colour", "blue");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("colour"), std::string::npos);
  EXPECT_FALSE(apply_setting(c, "rate-requests", "ten").ok());
  EXPECT_FALSE(apply_setting(c, "rate-requests", "-1").ok());
  EXPECT_FALSE(apply_setting(c, "viewers-per-terminal", "0").ok());
  EXPECT_FALSE(apply_setting(c, "listen", "no-port").ok());
  // A port that is not a number was read as 0 (a random port) before.
  for (const char* bad : {"h:abc", "h:", ":8080", "h:65536", "h:-1", "h:80x"}) {
    auto e = apply_setting(c, "listen", bad);
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_NE(e.error().message.find("listen"), std::string::npos) << e.error().message;
  }
  EXPECT_TRUE(apply_setting(c, "listen", "[::1]:9000").ok());
  EXPECT_TRUE(apply_setting(c, "listen", "0.0.0.0:0").ok());
}

TEST(Config, FlagsOverrideTheFile) {
  auto path = std::filesystem::temp_directory_path() / ("rexec-config-" + new_id("") + ".conf");
  std::ofstream(path) << "listen = 127.0.0.1:7000\nrate-requests = 3\nrate-terminal-creates = 4\n";
  auto c = load_config(path.string(), {{"rate-requests", "0"}});
  std::filesystem::remove(path);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->listen, "127.0.0.1:7000");
  EXPECT_EQ(c->rate_requests, 0);         // the flag
  EXPECT_EQ(c->rate_terminal_creates, 4);  // the file
  EXPECT_EQ(c->viewers_per_terminal, 5);   // the default
  auto missing = load_config("/nonexistent/rexec.conf", {});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent/rexec.conf"), std::string::npos);
  auto bad_flag = load_config("", {{"listen-on", "x"}});
  ASSERT_FALSE(bad_flag.ok());
  EXPECT_NE(bad_flag.error().message.find("listen-on"), std::string::npos);
}

}  // namespace
}  // namespace rx::hub
