// hub/docker/image_ref.cpp: Docker's image reference grammar (finding 11 of issue 13).
#include "hub/docker/image_ref.h"

#include <gtest/gtest.h>

namespace rx::hub {
namespace {

TEST(ImageRef, WellFormedReferences) {
  for (std::string ref : std::vector<std::string>{"busybox", "rexec/debian:12", "rexec/busybox:latest", "library/ubuntu:22.04",
                          "localhost:5000/team/tool:v1.2-rc_3", "registry.example.com/a/b/c", "a.b-c__d/e.f",
                          "a---b", "UPPER/case", "[::1]:5000/x:y", "x:_tag", "x:" + std::string(128, 't'),
                          "docker.io/library/ubuntu@sha256:" + std::string(64, 'a'), "sha256:" + std::string(64, 'b'),
                          std::string(64, 'c'), "x:y@sha256:" + std::string(32, 'F')})
    EXPECT_TRUE(check_image_ref(ref).ok()) << ref << ": " << check_image_ref(ref).error().message;
}

TEST(ImageRef, MalformedReferencesNameTheField) {
  for (std::string ref : std::vector<std::string>{"", "x/../../info?x=", "rexec/debian 12", "Upper", "x/UPPER", "-lead", "lead-", "x//y", "x/",
                          "/x", "x:", ":x", "x:.tag", "x:-tag", "x:" + std::string(129, 't'), "x@sha256:zz",
                          "x@sha256:" + std::string(31, 'a'), "x@:" + std::string(32, 'a'), "x@1sha:" + std::string(32, 'a'),
                          std::string(256, 'a'), "x\ny", std::string("x\0y", 3), "x%2F", "x?y", "x#y", ".", "..",
                          "a/./b", "a/../b", "x:y:z", "a._b", "a..b", "[zz]:5000/x", "host:/x", "x@"}) {
    auto s = check_image_ref(ref);
    ASSERT_FALSE(s.ok()) << testing::PrintToString(ref);
    EXPECT_EQ(s.error().code, "bad_field");
    EXPECT_TRUE(s.error().message.starts_with("image: ")) << s.error().message;
  }
  EXPECT_TRUE(check_image_ref("", "warm-pool").error().message.starts_with("warm-pool: "));
}

}  // namespace
}  // namespace rx::hub
