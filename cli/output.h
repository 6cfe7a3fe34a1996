// What the CLI prints: aligned tables for people, JSON for scripts, colour only on a terminal and
// never when NO_COLOR is set (https://no-color.org).
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace rx::cli {

enum class Colour { kNone, kRed, kGreen, kYellow, kBlue, kMagenta, kCyan, kDim };

class Style {
 public:
  // Colour when `stream` is a terminal and NO_COLOR is unset or empty.
  static Style for_stream(FILE* stream);
  static Style plain() { return Style(false); }
  std::string paint(Colour colour, const std::string& text) const;
  bool colour() const { return colour_; }

 private:
  explicit Style(bool colour) : colour_(colour) {}
  bool colour_;
};

// Rows of cells, the first row the header; columns padded to their widest cell.
void print_table(const std::vector<std::vector<std::string>>& rows, FILE* out = stdout);
// The API's JSON as it came, indented, one document per call.
void print_json(const nlohmann::json& j, FILE* out = stdout);

// "3m", "2h", "5d" ago, from unix seconds.
std::string age(int64_t unix_seconds);
// A string field of an API answer; "" when absent or not a string.
std::string field(const nlohmann::json& j, const char* key);
// A JSON value as a table cell: strings bare, null as "-".
std::string cell(const nlohmann::json& j);

}  // namespace rx::cli
