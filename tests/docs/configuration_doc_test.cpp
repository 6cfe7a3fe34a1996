// docs/configuration.md against the options tables: every key of the hub's table
// (hub/base/config_options.cpp) and of the agent's (agent/setting_options.cpp) is a row of the
// page's table for it and the other way round, and a default the code has is the one the page
// shows. A setting added, renamed or re-defaulted in one place fails here until both agree.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "agent/settings.h"
#include "hub/base/config.h"

namespace {

// Table rows of one section: each key in the first cell (`tls-cert`, `tls-key` is two) to the
// row's default cell.
using Rows = std::map<std::string, std::string>;

// Sections by their heading ("# Configuring rexec-hub", "## The agent's settings ...").
std::map<std::string, Rows> tables_of(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  std::map<std::string, Rows> out;
  std::string line, heading;
  bool code = false;  // inside ``` ... ```, where `# ...` is a comment, not a heading
  while (std::getline(in, line)) {
    if (line.starts_with("```")) code = !code;
    if (code) continue;
    if (line.starts_with("#")) heading = line;
    if (!line.starts_with("| `")) continue;
    auto first_end = line.find('|', 1), second_end = line.find('|', first_end + 1);
    std::string keys = line.substr(1, first_end - 1), default_cell = line.substr(first_end + 1, second_end - first_end - 1);
    for (size_t open = keys.find('`'); open != std::string::npos; open = keys.find('`', keys.find('`', open + 1) + 1))
      out[heading][keys.substr(open + 1, keys.find('`', open + 1) - open - 1)] = default_cell;
  }
  return out;
}

const Rows& section(const std::map<std::string, Rows>& tables, const std::string& heading_start) {
  for (const auto& [heading, rows] : tables)
    if (heading.find(heading_start) != std::string::npos) return rows;
  ADD_FAILURE() << "docs/configuration.md has no table under a heading with \"" << heading_start << "\"";
  static const Rows none;
  return none;
}

// `code` holds every key of the table with its default ("" when the code has none).
void expect_same(const Rows& doc, const std::map<std::string, std::string>& code, const std::string& table) {
  for (const auto& [key, fallback] : code) {
    auto row = doc.find(key);
    if (row == doc.end()) {
      ADD_FAILURE() << "`" << key << "` is in " << table << " but not in docs/configuration.md";
      continue;
    }
    if (!fallback.empty()) {
      EXPECT_NE(row->second.find("`" + fallback + "`"), std::string::npos)
          << "`" << key << "`: docs/configuration.md shows default" << row->second << ", " << table << " has "
          << fallback;
    }
  }
  for (const auto& [key, cell] : doc)
    EXPECT_TRUE(code.count(key)) << "`" << key << "` is in docs/configuration.md but not in " << table;
}

TEST(ConfigurationDoc, HubTableIsTheOptionsTable) {
  auto tables = tables_of(std::string(REXEC_SOURCE_DIR) + "/docs/configuration.md");
  std::map<std::string, std::string> code;
  const rx::hub::HubConfig defaults;
  for (const auto& o : rx::hub::config_options()) code[std::string(o.key)] = o.show(defaults);
  expect_same(section(tables, "Configuring rexec-hub"), code, "hub/base/config_options.cpp");
}

TEST(ConfigurationDoc, AgentTableIsTheSettingsTable) {
  auto tables = tables_of(std::string(REXEC_SOURCE_DIR) + "/docs/configuration.md");
  std::map<std::string, std::string> code;
  for (const auto& o : rx::agent::setting_options()) code[std::string(o.key)] = o.fallback;
  expect_same(section(tables, "The agent's settings"), code, "agent/setting_options.cpp");
}

}  // namespace
