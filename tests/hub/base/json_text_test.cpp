// hub/base/json_text.cpp: the one JSON output path of the hub, which cannot throw on bytes that are
// not UTF-8 (findings 1-3 of issue 13), and the cleaning of peers' strings.
#include "hub/base/json_text.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "hub/net/http.h"
#include "protocol/viewer.h"

namespace rx::hub {
namespace {

TEST(JsonText, BadBytesBecomeReplacementCharacters) {
  nlohmann::json j{{"path", "/api/v1/terminals/\xff"}, {"nested", {{"k", "\xc3\x28"}}}, {"ok", "caf\xc3\xa9"}};
  EXPECT_THROW((void)j.dump(), nlohmann::json::type_error);  // what the hub used to do
  std::string text;
  ASSERT_NO_THROW(text = json_text(j));
  EXPECT_TRUE(protocol::viewer::valid_utf8(text));
  auto back = nlohmann::json::parse(text);
  EXPECT_EQ(back["path"], "/api/v1/terminals/\xef\xbf\xbd");
  EXPECT_EQ(back["ok"], "caf\xc3\xa9");
  // The error contract goes the same way.
  auto r = error_response(make_error("not_found", "no route for /\xff\xfe"));
  EXPECT_EQ(r.status, 404);
  EXPECT_TRUE(nlohmann::json::parse(r.body).is_object());
}

TEST(JsonText, NamesLoseControlCharacters) {
  EXPECT_EQ(clean_name("gpu\x1b[31m box\n"), "gpu?[31m box?");
  EXPECT_EQ(clean_name("caf\xe9"), "caf\xef\xbf\xbd");
}

// The class, not the instance: no other file of the hub may call dump() (which throws), so every
// new JSON output goes through json_text.
TEST(JsonText, NoOtherDumpInTheHub) {
  std::vector<std::string> offenders;
  for (const auto& e : std::filesystem::recursive_directory_iterator(std::string(REXEC_SOURCE_DIR) + "/hub")) {
    auto ext = e.path().extension();
    if (ext != ".cpp" && ext != ".h") continue;
    if (e.path().filename() == "json_text.cpp") continue;
    std::ifstream in(e.path());
    std::stringstream text;
    text << in.rdbuf();
    if (text.str().find(".dump(") != std::string::npos) offenders.push_back(e.path().string());
  }
  EXPECT_TRUE(offenders.empty()) << "dump() in " << testing::PrintToString(offenders) << ": use json_text()";
}

}  // namespace
}  // namespace rx::hub
