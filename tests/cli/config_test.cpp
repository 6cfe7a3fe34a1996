// cli/config.cpp and cli/parse.cpp: what is saved where, with which mode; what the environment
// overrides; which URLs, durations, labels and GPU lists are refused, and how.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "cli/config.h"
#include "cli/failure.h"
#include "cli/parse.h"
#include "cli/targets.h"
#include "tests/support/process.h"

namespace rx::cli {
namespace {

std::string failure_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Failure& e) {
    return e.what();
  }
  return "";
}

class EnvGuard {
 public:
  EnvGuard() {
    ::unsetenv("REXEC_HUB");
    ::unsetenv("REXEC_TOKEN");
  }
  ~EnvGuard() {
    ::unsetenv("REXEC_HUB");
    ::unsetenv("REXEC_TOKEN");
  }
};

TEST(CliConfig, SavedWhole0600AndReadBack) {
  test::TempDir dir;
  std::string path = dir / "a/b/config.json";
  Config c;
  c.current = "work";
  c.profiles["work"] = {"http://hub:8080", "rxk_secret"};
  c.profiles["lab"] = {"https://lab", "rxk_other"};
  save_config(path, c);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir / "a/b").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_FALSE(std::ifstream(path + ".tmp")) << "the temp file was renamed away";
  Config back = load_config(path);
  EXPECT_EQ(back.current, "work");
  ASSERT_EQ(back.profiles.size(), 2u);
  EXPECT_EQ(back.profiles["lab"].token, "rxk_other");
  // An existing file with loose bits gets 0600 again on the next save.
  ::chmod(path.c_str(), 0644);
  save_config(path, back);
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(CliConfig, AbsentIsEmptyAndGarbageIsNamed) {
  test::TempDir dir;
  EXPECT_TRUE(load_config(dir / "none.json").profiles.empty());
  std::ofstream(dir / "bad.json") << "{not json";
  EXPECT_NE(failure_of([&] { load_config(dir / "bad.json"); }).find("bad.json is not valid JSON"), std::string::npos);
}

TEST(CliConfig, EnvironmentOverridesTheProfile) {
  EnvGuard env;
  Config c;
  c.current = "work";
  c.profiles["work"] = {"http://hub:8080/", "rxk_a"};
  c.profiles["lab"] = {"http://lab:1", "rxk_b"};
  EXPECT_EQ(resolve_profile(c, std::nullopt).hub, "http://hub:8080");
  EXPECT_EQ(resolve_profile(c, "lab").token, "rxk_b");
  ::setenv("REXEC_TOKEN", "rxk_env", 1);
  EXPECT_EQ(resolve_profile(c, "lab").token, "rxk_env");
  ::setenv("REXEC_HUB", "https://env:9", 1);
  EXPECT_EQ(resolve_profile(c, std::nullopt).hub, "https://env:9");
  EXPECT_NE(failure_of([&] { resolve_profile(c, "nope"); }).find("no hub profile 'nope'"), std::string::npos);
  EXPECT_EQ(resolve_profile(Config{}, std::nullopt).hub, "https://env:9") << "the environment alone is enough";
  ::unsetenv("REXEC_HUB");
  EXPECT_NE(failure_of([] { resolve_profile(Config{}, std::nullopt); }).find("not logged in"), std::string::npos);
}

TEST(CliConfig, HubUrlsMustBeHttpWithAHost) {
  EXPECT_EQ(normalize_hub_url("http://h:1//"), "http://h:1");
  EXPECT_EQ(normalize_hub_url("https://h"), "https://h");
  for (const char* bad : {"h:8080", "ftp://h", "http://", "http://:80", "http://h/x?y", "http://a b"})
    EXPECT_NE(failure_of([&] { normalize_hub_url(bad); }).find("bad hub URL"), std::string::npos) << bad;
}

TEST(CliParse, DurationsLabelsAndGpus) {
  EXPECT_EQ(parse_duration("90"), 90);
  EXPECT_EQ(parse_duration("90s"), 90);
  EXPECT_EQ(parse_duration("30m"), 1800);
  EXPECT_EQ(parse_duration("1h"), 3600);
  EXPECT_EQ(parse_duration("7d"), 604800);
  for (const char* bad : {"", "h", "1x", "-5m", "1.5h", "99999999999"})
    EXPECT_NE(failure_of([&] { parse_duration(bad); }).find("bad duration"), std::string::npos) << bad;
  EXPECT_EQ(parse_label("role=ci"), (std::pair<std::string, std::string>{"role", "ci"}));
  EXPECT_EQ(parse_label("k="), (std::pair<std::string, std::string>{"k", ""}));
  EXPECT_NE(failure_of([] { parse_label("=v"); }).find("expected KEY=VALUE"), std::string::npos);
  EXPECT_NE(failure_of([] { parse_label("role"); }).find("expected KEY=VALUE"), std::string::npos);
  EXPECT_EQ(parse_gpus("0,1,3"), nlohmann::json({0, 1, 3}));
  for (const char* bad : {"", ",", "0,", "a", "1;2", "-1"})
    EXPECT_NE(failure_of([&] { parse_gpus(bad); }).find("bad --gpus"), std::string::npos) << bad;
}

TEST(CliTargets, CloseNamesAreFewAndNear) {
  std::vector<std::string> names{"build-cache", "builder", "web-1", "web-2", "db"};
  EXPECT_EQ(close_names("build-cahce", names), std::vector<std::string>{"build-cache"});
  EXPECT_EQ(close_names("web", names), (std::vector<std::string>{"web-1", "web-2"}));  // a prefix
  EXPECT_TRUE(close_names("zzzz", names).empty());
  EXPECT_LE(close_names("b", {"b1", "b2", "b3", "b4", "b5"}).size(), 3u);
}

}  // namespace
}  // namespace rx::cli
