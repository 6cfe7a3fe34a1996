#include "agent/settings.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

namespace rx::agent {
namespace {

std::string write_conf(const std::string& text) {
  char path[] = "/tmp/rexec-agent-conf-XXXXXX";
  int fd = ::mkstemp(path);
  EXPECT_GE(fd, 0);
  ::close(fd);
  std::ofstream(path) << text;
  return path;
}

TEST(Settings, FileThenFlagsOverIt) {
  auto conf = write_conf("# written by install-agent.sh\nhub = ws://hub:8080\nname = \"web 3\"\n"
                         "label = env=prod\nlabel = rack=b7\n");
  auto s = parse_settings({"--config", conf, "--name", "web-3", "--label", "rack=c1", "--label", "gpu=a100"});
  ::unlink(conf.c_str());
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->values.at("--hub"), "ws://hub:8080");
  EXPECT_EQ(s->values.at("--name"), "web-3");
  EXPECT_EQ(s->labels, (protocol::Labels{{"env", "prod"}, {"rack", "c1"}, {"gpu", "a100"}}));
}

TEST(Settings, ErrorsNameTheLineOrFlag) {
  auto conf = write_conf("hub = ws://h\nfrobnicate = 1\n");
  auto s = parse_settings({"--config", conf});
  ::unlink(conf.c_str());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("line 2: unknown setting \"frobnicate\""), std::string::npos) << s.error().message;
  EXPECT_NE(parse_settings({"--label", "bad key=v"}).error().message.find("--label: label"), std::string::npos);
  EXPECT_FALSE(parse_settings({"--config", "/nonexistent/agent.conf"}).ok());
  EXPECT_NE(parse_settings({"--token", "rxe_x"}).error().message.find("not accepted on the command line"),
            std::string::npos);
  EXPECT_NE(parse_settings({"--hub"}).error().message.find("missing value"), std::string::npos);
}

TEST(Settings, BadValuesAndUnknownKeysNameTheKeyAndTheValue) {
  auto conf = write_conf("hub = ws://h\ngpu-policy = strict\n");
  auto s = parse_settings({"--config", conf});
  ::unlink(conf.c_str());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("line 2: gpu-policy: \"strict\" is not open or lease-required"), std::string::npos)
      << s.error().message;
  auto flag = parse_settings({"--gpu-policy", "strict"});
  ASSERT_FALSE(flag.ok());
  EXPECT_NE(flag.error().message.find("--gpu-policy: \"strict\""), std::string::npos) << flag.error().message;
  auto unknown = parse_settings({"--hub", "ws://h", "--frobnicate", "1"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("--frobnicate"), std::string::npos) << unknown.error().message;
  EXPECT_FALSE(parse_settings({"--label", "a=1", "b=2"}).ok()) << "one label per --label";
  EXPECT_FALSE(parse_settings({"stray"}).ok());
}

TEST(Settings, DefaultsComeFromTheTableAndTheLastFlagWins) {
  auto s = parse_settings({"--hub", "ws://a", "--hub", "ws://b", "--enroll-token-file", "-"});
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->values.at("--hub"), "ws://b");
  EXPECT_EQ(s->values.at("--enroll-token-file"), "-") << "a lone dash is a value (stdin)";
  EXPECT_EQ(s->values.at("--credential-file"), "/var/lib/rexec-agent/credential");
  EXPECT_EQ(s->values.at("--nvidia-smi"), "/usr/bin/nvidia-smi");
  EXPECT_EQ(s->values.at("--gpu-policy"), "open");
  EXPECT_FALSE(s->values.count("--name")) << "no default: the agent uses the hostname";
  auto help = parse_settings({"--hub", "ws://a", "--help"});
  ASSERT_TRUE(help.ok());
  EXPECT_TRUE(help->help);
  auto usage = agent_usage();
  for (const auto& o : setting_options())
    EXPECT_NE(usage.find("--" + std::string(o.key) + " "), std::string::npos) << o.key;
}

}  // namespace
}  // namespace rx::agent
