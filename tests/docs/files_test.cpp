// The docs name source files (`channel.h`, `hub/channel/relay.cpp`) so a reader can go from a paragraph to
// the code: every such name must be a file in the tree, or the doc has drifted from the code.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace {

namespace fs = std::filesystem;

TEST(DocFiles, EverySourceFileTheDocsNameExists) {
  const fs::path root = REXEC_SOURCE_DIR;
  std::set<std::string> names, paths;  // every file name, and every path from the root
  for (const char* top : {"agent", "hub", "protocol", "cli", "web", "tests", "bench", "scripts", "installers", "systemd"}) {
    if (!fs::exists(root / top)) continue;
    for (const auto& e : fs::recursive_directory_iterator(root / top)) {
      if (!e.is_regular_file()) continue;
      names.insert(e.path().filename().string());
      paths.insert(fs::relative(e.path(), root).string());
    }
  }
  std::vector<fs::path> docs{root / "README.md"};
  for (const auto& e : fs::directory_iterator(root / "docs"))
    if (e.path().extension() == ".md") docs.push_back(e.path());
  // `name.h`, `dir/name.cpp` inside backquotes (or as a link target): C++ sources only.
  const std::regex mention(R"([`(]([A-Za-z0-9_./-]+\.(?:h|cpp))(?![A-Za-z0-9]))");
  size_t checked = 0;
  std::vector<std::string> missing;
  for (const auto& doc : docs) {
    std::ifstream in(doc);
    std::stringstream text;
    text << in.rdbuf();
    std::string s = text.str();
    for (std::sregex_iterator it(s.begin(), s.end(), mention), end; it != end; ++it) {
      std::string name = (*it)[1];
      while (name.starts_with("../")) name = name.substr(3);
      ++checked;
      bool found = name.find('/') == std::string::npos ? names.count(name) > 0 : paths.count(name) > 0;
      if (!found) missing.push_back(doc.filename().string() + ": " + name);
    }
  }
  EXPECT_GT(checked, 10u) << "the pattern found almost nothing: is it still right?";
  EXPECT_TRUE(missing.empty()) << testing::PrintToString(missing);
}

}  // namespace
