// protocol/file_path: the one place the hub and the agent learn which paths a file channel takes.
#include "protocol/file_path.h"

#include <gtest/gtest.h>

#include "protocol/frame.h"

namespace rx::protocol {
namespace {

TEST(FilePath, UsablePathsPass) {
  for (const char* ok : {"notes.txt", "/etc/hostname", "a/b/c", ".", "./x", "..x", "x..", "/", "a//b", "été/ünï"})
    EXPECT_FALSE(file_path_problem(ok).has_value()) << ok << ": " << *file_path_problem(ok);
  EXPECT_FALSE(file_path_problem(std::string(kMaxFileComponent, 'n')).has_value());
  std::string longest;
  while (longest.size() + kMaxFileComponent + 1 <= kMaxFilePath) longest += "/" + std::string(kMaxFileComponent, 'd');
  longest += std::string(kMaxFilePath - longest.size(), 'f');
  ASSERT_EQ(longest.size(), kMaxFilePath);
  EXPECT_FALSE(file_path_problem(longest).has_value()) << *file_path_problem(longest);
}

TEST(FilePath, EachRefusalSaysWhy) {
  auto why = [](std::string_view p) { return file_path_problem(p).value_or("(accepted)"); };
  EXPECT_EQ(why(""), "it is empty");
  EXPECT_EQ(why(std::string_view("a\0b", 3)), "it holds a NUL byte");
  EXPECT_EQ(why(std::string(kMaxFilePath + 1, 'a')), "4097 bytes, over the limit of 4096");
  for (const char* up : {"..", "../x", "a/..", "a/../b", "/..", "a/../../etc"})
    EXPECT_NE(why(up).find("\"..\" component"), std::string::npos) << up;
  EXPECT_EQ(why("a/" + std::string(kMaxFileComponent + 1, 'n')), "a component of 256 bytes, over the limit of 255");
}

}  // namespace
}  // namespace rx::protocol
