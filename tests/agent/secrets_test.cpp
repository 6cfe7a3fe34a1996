// agent/secrets.cpp against real files: tokens are read from files (never argv), credentials are
// written 0600 and atomically, and a world-readable credential is refused.
#include "agent/secrets.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

namespace rx::agent {
namespace {

namespace fs = std::filesystem;

class SecretsTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("rexec-secrets-" + std::to_string(::getpid()) + "-" +
                                        testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(SecretsTest, ReadsTheFirstLineTrimmed) {
  std::ofstream(path("t")) << "  rxe_abc \r\nsecond line\n";
  auto s = read_secret(path("t"), false);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(*s, "rxe_abc");
}

TEST_F(SecretsTest, EmptyAndMissingFilesAreClearErrors) {
  std::ofstream(path("empty")) << "\n";
  EXPECT_EQ(read_secret(path("empty"), false).error().code, "secret_empty");
  EXPECT_EQ(read_secret(path("missing"), false).error().code, "secret_unreadable");
}

TEST_F(SecretsTest, WritesCredentialsPrivateAndAtomically) {
  ASSERT_TRUE(write_secret(path("cred"), "rxa_secret").ok());
  struct stat st {};
  ASSERT_EQ(::stat(path("cred").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(fs::exists(path("cred.tmp")));
  auto back = read_secret(path("cred"), true);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, "rxa_secret");
  // Overwriting keeps the mode and replaces the content whole.
  ASSERT_TRUE(write_secret(path("cred"), "rxa_other").ok());
  EXPECT_EQ(*read_secret(path("cred"), true), "rxa_other");
}

TEST_F(SecretsTest, RefusesACredentialOthersCanRead) {
  std::ofstream(path("open")) << "rxa_x\n";
  ::chmod(path("open").c_str(), 0644);
  EXPECT_EQ(read_secret(path("open"), true).error().code, "secret_insecure");
}

}  // namespace
}  // namespace rx::agent
