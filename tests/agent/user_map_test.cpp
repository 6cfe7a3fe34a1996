// agent/user_map.cpp: the --user-map file, the account chosen per OPEN, and (as root, with a
// throwaway account made by useradd) real PTYs running as the mapped account.
#include "agent/user_map.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "agent/channel.h"
#include "protocol/limits.h"

#include "tests/agent/read_output.h"

namespace rx::agent {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// A fixture etc root: passwd and group as the agent parses them.
struct FixtureEtc {
  fs::path dir = fs::temp_directory_path() / ("rexec-etc-" + std::to_string(::getpid()));
  FixtureEtc() {
    fs::create_directories(dir);
    std::ofstream(dir / "passwd") << "root:x:0:0:root:/root:/bin/bash\n"
                                     "alice:x:1001:1001::/home/alice:/bin/bash\n"
                                     "bob:x:1002:1002::/home/bob:/bin/sh\n";
    std::ofstream(dir / "group") << "root:x:0:\nalice:x:1001:\nbob:x:1002:\ngpu:x:900:alice,bob\n";
  }
  ~FixtureEtc() { fs::remove_all(dir); }
  std::string etc() const { return dir.string(); }
};

protocol::Open open_for(std::string user, std::string account) {
  protocol::Open o{1, protocol::ChannelKind::kPty, {}, {}, 80, 24, protocol::kDefaultWindow};
  o.user = std::move(user);
  o.account = std::move(account);
  return o;
}

TEST(UserMap, ParsesEntriesCommentsAndBlankLines) {
  FixtureEtc etc;
  auto m = UserMap::parse("# who runs as whom\n\nalice = alice\n  ops=root  \nbob\t=\t1002\n", etc.etc(), "map");
  ASSERT_TRUE(m.ok()) << m.error().message;
  ASSERT_NE(m->find("alice"), nullptr);
  EXPECT_EQ(m->find("alice")->uid, 1001u);
  EXPECT_EQ(m->find("alice")->groups, (std::vector<gid_t>{1001, 900}));
  EXPECT_EQ(m->find("ops")->name, "root");
  EXPECT_EQ(m->find("bob")->name, "bob");  // a numeric uid names the account too
  EXPECT_EQ(m->find("carol"), nullptr);
}

TEST(UserMap, AnUnknownAccountNamesTheLine) {
  FixtureEtc etc;
  auto m = UserMap::parse("alice = alice\n# fine\nbob = mallory\n", etc.etc(), "/etc/rexec/users");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code, "bad_user_map");
  EXPECT_NE(m.error().message.find("/etc/rexec/users line 3"), std::string::npos) << m.error().message;
  EXPECT_NE(m.error().message.find("mallory"), std::string::npos) << m.error().message;
}

TEST(UserMap, MalformedLinesAndDuplicatesAreRefused) {
  FixtureEtc etc;
  EXPECT_NE(UserMap::parse("alice alice\n", etc.etc(), "m").error().message.find("m line 1"), std::string::npos);
  EXPECT_FALSE(UserMap::parse(" = alice\n", etc.etc(), "m").ok());
  EXPECT_FALSE(UserMap::parse("alice =\n", etc.etc(), "m").ok());
  EXPECT_NE(UserMap::parse("a = alice\na = bob\n", etc.etc(), "m").error().message.find("line 2"), std::string::npos);
  EXPECT_EQ(UserMap::load("/nonexistent/map", etc.etc()).error().code, "bad_user_map");
}

TEST(UserMap, ReverseLookupLeavesAmbiguousAccountsOut) {
  FixtureEtc etc;
  auto m = UserMap::parse("alice = alice\nops = root\nadmin = root\n", etc.etc(), "m");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->users_by_account(), (std::map<std::string, std::string>{{"alice", "alice"}}));
}

TEST(ChooseAccount, MapWinsThenHubAccountThenTheAgentsUser) {
  FixtureEtc etc;
  auto m = *UserMap::parse("alice = bob\n", etc.etc(), "m");
  auto fallback = find_account("alice", etc.etc());
  auto a = choose_account(open_for("alice", "alice"), m, *fallback, etc.etc(), 0);
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->account->name, "bob");
  EXPECT_FALSE(a->is_default);
  a = choose_account(open_for("carol", "bob"), m, *fallback, etc.etc(), 0);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->account->name, "bob");
  a = choose_account(open_for("", ""), m, *fallback, etc.etc(), 0);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->account->name, "alice");
  EXPECT_TRUE(a->is_default);
  EXPECT_EQ(choose_account(open_for("x", "mallory"), m, *fallback, etc.etc(), 0).error().code, "unknown_account");
}

TEST(ChooseAccount, RootFromTheHubIsRefusedRootFromTheMapIsNot) {
  FixtureEtc etc;
  auto m = *UserMap::parse("ops = root\n", etc.etc(), "m");
  for (const char* root : {"root", "0"}) {
    auto e = choose_account(open_for("carol", root), m, std::nullopt, etc.etc(), 0);
    ASSERT_FALSE(e.ok()) << root;
    EXPECT_EQ(e.error().code, "root_not_allowed");
    EXPECT_EQ(e.error().message, "a mapping to root must be explicit: name it in --user-map");
  }
  auto a = choose_account(open_for("ops", "root"), m, std::nullopt, etc.etc(), 0);
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->account->uid, 0u);
}

TEST(ChooseAccount, AnotherAccountNeedsTheAgentToBeRoot) {
  FixtureEtc etc;
  auto m = *UserMap::parse("alice = alice\n", etc.etc(), "m");
  auto e = choose_account(open_for("alice", ""), m, std::nullopt, etc.etc(), 1002);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code, "account_not_allowed");
  EXPECT_NE(e.error().message.find("alice"), std::string::npos);
  // Its own account is fine without root.
  EXPECT_TRUE(choose_account(open_for("", "bob"), m, std::nullopt, etc.etc(), 1002).ok());
}

// --- real PTYs as a real account -------------------------------------------------------------

int run(const std::string& command) { return std::system(command.c_str()); }

// A local account (and a supplementary group) made for one test and removed after it.
class TempAccount {
 public:
  TempAccount() {
    std::random_device rd;
    name_ = "rexec-t-" + std::to_string(rd() % 1000000);
    group_ = name_ + "-g";
    ok_ = run("groupadd " + group_ + " && useradd -m -s /bin/sh -G " + group_ + " " + name_) == 0;
  }
  ~TempAccount() {
    run("userdel -r " + name_ + " 2>/dev/null");
    run("groupdel " + group_ + " 2>/dev/null");
  }
  TempAccount(const TempAccount&) = delete;
  TempAccount& operator=(const TempAccount&) = delete;
  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }
  const std::string& group() const { return group_; }

 private:
  std::string name_, group_;
  bool ok_ = false;
};

std::string read_pty(Channel& ch, const std::string& until, std::chrono::milliseconds timeout = 10s) {
  return test::read_until(ch.output_fd(protocol::Stream::kOutput), until, timeout);
}

class AsAccount : public testing::Test {
 protected:
  void SetUp() override {
    if (::getuid() != 0) GTEST_SKIP() << "needs root: useradd and switching accounts";
    ASSERT_TRUE(account_.ok()) << "useradd failed";
    auto m = UserMap::parse("tester = " + account_.name() + "\nops = root\n", "/etc", "map");
    ASSERT_TRUE(m.ok()) << m.error().message;
    config_.user_map = std::move(m).value();
  }
  TempAccount account_;
  ChannelConfig config_;
};

TEST_F(AsAccount, MappedUserGetsTheAccountItsHomeAndGroups) {
  auto o = open_for("tester", "");
  o.argv = {"/bin/sh", "-c", "echo who=$(id -un) home=$HOME user=$USER logname=$LOGNAME cwd=$(pwd) groups=$(id -Gn); echo END"};
  auto ch = Channel::open(o, config_);
  ASSERT_TRUE(ch.ok()) << ch.error().message;
  auto out = read_pty(**ch, "END");
  const std::string home = "/home/" + account_.name();
  EXPECT_NE(out.find("who=" + account_.name() + " "), std::string::npos) << out;
  EXPECT_NE(out.find("home=" + home + " "), std::string::npos) << out;
  EXPECT_NE(out.find("user=" + account_.name() + " logname=" + account_.name() + " "), std::string::npos) << out;
  EXPECT_NE(out.find("cwd=" + home + " "), std::string::npos) << out;
  EXPECT_NE(out.find(account_.group()), std::string::npos) << "supplementary group missing: " << out;
}

TEST_F(AsAccount, LoginShellOfTheAccountWhenArgvIsEmpty) {
  config_.shell = "/bin/bash";  // --shell is for the default account only
  auto ch = Channel::open(open_for("tester", ""), config_);
  ASSERT_TRUE(ch.ok()) << ch.error().message;
  const std::string cmd = "echo \"shell=$SHELL who=$(id -un) cwd=$(pwd) x=$((6*7))\"; exit\n";
  (*ch)->on_input(0, std::span(reinterpret_cast<const uint8_t*>(cmd.data()), cmd.size()));
  (*ch)->flush_input();
  auto out = read_pty(**ch, "x=42");
  EXPECT_NE(out.find("shell=/bin/sh who=" + account_.name() + " cwd=/home/" + account_.name() + " x=42"),
            std::string::npos) << out;
}

TEST_F(AsAccount, HubAccountWorksButHubRootIsRefusedAndMapRootIsAllowed) {
  auto o = open_for("someone", account_.name());
  o.argv = {"/bin/sh", "-c", "id -un; echo END"};
  auto ch = Channel::open(o, config_);
  ASSERT_TRUE(ch.ok()) << ch.error().message;
  EXPECT_NE(read_pty(**ch, "END").find(account_.name()), std::string::npos);

  auto refused = Channel::open(open_for("someone", "root"), config_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, "root_not_allowed");

  o = open_for("ops", "");
  o.argv = {"/bin/sh", "-c", "echo uid=$(id -u); echo END"};
  auto root = Channel::open(o, config_);
  ASSERT_TRUE(root.ok()) << root.error().message;
  EXPECT_NE(read_pty(**root, "END").find("uid=0"), std::string::npos);
}

TEST(GpuPolicy, LeaseRequiredHidesGpusFromAChannelWithoutALease) {
  ChannelConfig config;
  config.gpu_policy = "lease-required";
  auto o = open_for("", "");
  o.argv = {"/bin/sh", "-c", "echo \"cuda=[${CUDA_VISIBLE_DEVICES-unset}] nv=[${NVIDIA_VISIBLE_DEVICES-unset}]\"; echo END"};
  auto ch = Channel::open(o, config);
  ASSERT_TRUE(ch.ok()) << ch.error().message;
  EXPECT_NE(read_pty(**ch, "END").find("cuda=[] nv=[void]"), std::string::npos);

  o.env = {{"CUDA_VISIBLE_DEVICES", "1,3"}, {"NVIDIA_VISIBLE_DEVICES", "GPU-a,GPU-b"}};  // a lease: the hub's values
  ch = Channel::open(o, config);
  ASSERT_TRUE(ch.ok());
  EXPECT_NE(read_pty(**ch, "END").find("cuda=[1,3] nv=[GPU-a,GPU-b]"), std::string::npos);

  config.gpu_policy = "open";
  o.env.clear();
  ch = Channel::open(o, config);
  ASSERT_TRUE(ch.ok());
  EXPECT_NE(read_pty(**ch, "END").find("cuda=[unset] nv=[unset]"), std::string::npos);
}

}  // namespace
}  // namespace rx::agent
