// Config file parsing, the file-then-flags order, and the command line made from the options table.
#include "hub/base/config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "hub/base/command_line.h"
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
                        : key == "record"     ? "off"
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
  EXPECT_FALSE(c.record);
  for (const char* bad : {"yes", "1", "ON", ""}) EXPECT_FALSE(apply_setting(c, "record", bad).ok()) << bad;
  EXPECT_TRUE(apply_setting(c, "record", "on").ok());
  EXPECT_TRUE(c.record);
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

std::filesystem::path write_temp(const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / ("rexec-config-" + new_id("") + ".conf");
  std::ofstream(path) << text;
  return path;
}

// A refusal names the key and the bad value, wherever the value came from.
void expect_names(const Error& e, std::initializer_list<std::string_view> parts) {
  for (auto part : parts) EXPECT_NE(e.message.find(part), std::string::npos) << part << " in: " << e.message;
}

TEST(Config, BadValuesNameTheKeyAndTheValue) {
  HubConfig c;
  for (const char* bad : {"h:abc", "h:70000"}) expect_names(apply_setting(c, "listen", bad).error(), {"listen", bad});
  expect_names(apply_setting(c, "rate-requests", "ten").error(), {"rate-requests", "\"ten\"", "integer"});
  expect_names(apply_setting(c, "max-body", "1k").error(), {"max-body", "\"1k\""});

  auto path = write_temp("data-dir = /x\nlisten = h:abc\n");
  auto file = load_config(path.string(), {});
  std::filesystem::remove(path);
  ASSERT_FALSE(file.ok());
  expect_names(file.error(), {path.string(), "line 2", "listen", "h:abc"});

  path = write_temp("colour = blue\n");
  auto unknown = load_config(path.string(), {});
  std::filesystem::remove(path);
  ASSERT_FALSE(unknown.ok());
  expect_names(unknown.error(), {"line 1", "colour"});
}

Result<HubCommand> parse(std::vector<std::string> args) { return parse_command_line(std::move(args)); }

TEST(CommandLine, BadFlagsAreRefusedNamingTheFlagAndTheValue) {
  expect_names(parse({"serve", "--data-dir", "/x", "--listen", "h:abc"}).error(), {"--listen", "h:abc"});
  expect_names(parse({"serve", "--listen", "127.0.0.1:65536"}).error(), {"--listen", "65536"});
  expect_names(parse({"serve", "--rate-requests", "ten"}).error(), {"--rate-requests", "ten"});
  expect_names(parse({"serve", "--rate-requests", "-1"}).error(), {"--rate-requests", "-1"});
  expect_names(parse({"serve", "--colour", "blue"}).error(), {"--colour"});
  expect_names(parse({"serve", "--rate-requests"}).error(), {"--rate-requests"});
  EXPECT_FALSE(parse({}).ok()) << "a subcommand is required";
  EXPECT_FALSE(parse({"frobnicate"}).ok());
  EXPECT_FALSE(parse({"user", "add", "carol"}).ok()) << "--data-dir is required";
  EXPECT_FALSE(parse({"token", "create", "--data-dir", "/x"}).ok()) << "--name is required";
  EXPECT_FALSE(parse({"user", "add", "carol", "extra", "--data-dir", "/x"}).ok());
}

TEST(CommandLine, EveryKeyIsAFlagAndFlagsOverrideTheFile) {
  auto path = write_temp("listen = 127.0.0.1:7000\nrate-requests = 3\nrate-terminal-creates = 4\n");
  auto c = parse({"serve", "--config", path.string(), "--rate-requests", "0", "--data-dir", "/a", "--data-dir", "/b"});
  std::filesystem::remove(path);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->kind, HubCommand::Kind::serve);
  EXPECT_EQ(c->config.listen, "127.0.0.1:7000");
  EXPECT_EQ(c->config.rate_requests, 0);         // the flag
  EXPECT_EQ(c->config.rate_terminal_creates, 4);  // the file
  EXPECT_EQ(c->config.viewers_per_terminal, 5);   // the default
  EXPECT_EQ(c->config.data_dir, "/b") << "the last of a repeated flag wins";

  expect_names(parse({"serve", "--listen", "127.0.0.1:0"}).error(), {"--data-dir"});
  auto public_url = parse({"serve", "--public-url=https://hub.example/", "--data-dir", "/d"});
  ASSERT_TRUE(public_url.ok()) << public_url.error().message;
  EXPECT_EQ(public_url->config.public_url, "https://hub.example");

  auto usage = hub_usage();
  for (auto key : config_keys()) EXPECT_NE(usage.find("--" + std::string(key) + " "), std::string::npos) << key;
  EXPECT_NE(usage.find("127.0.0.1:8080"), std::string::npos) << "defaults are shown";
  auto help = parse({"serve", "--help"});
  ASSERT_TRUE(help.ok()) << help.error().message;
  EXPECT_EQ(help->kind, HubCommand::Kind::help);
  EXPECT_NE(help->help.find("--rate-auth-failures"), std::string::npos) << help->help;
}

TEST(CommandLine, UserAddAndTokenCreate) {
  auto add = parse({"user", "add", "Bad Name", "--admin", "--data-dir", "/d"});
  ASSERT_TRUE(add.ok()) << add.error().message;
  EXPECT_EQ(add->kind, HubCommand::Kind::user_add);
  EXPECT_EQ(add->name, "Bad Name");
  EXPECT_TRUE(add->admin);
  EXPECT_EQ(add->data_dir, "/d");
  add = parse({"user", "add", "--data-dir", "/d", "carol"});
  ASSERT_TRUE(add.ok()) << add.error().message;
  EXPECT_EQ(add->name, "carol");
  EXPECT_FALSE(add->admin);
  auto token = parse({"token", "create", "--name", "ci", "--data-dir", "/d"});
  ASSERT_TRUE(token.ok()) << token.error().message;
  EXPECT_EQ(token->kind, HubCommand::Kind::token_create);
  EXPECT_EQ(token->name, "ci");
  EXPECT_EQ(token->data_dir, "/d");
}

}  // namespace
}  // namespace rx::hub
