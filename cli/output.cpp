#include "cli/output.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>

namespace rx::cli {

Style Style::for_stream(FILE* stream) {
  const char* no = std::getenv("NO_COLOR");
  bool tty = ::isatty(::fileno(stream)) == 1;
  return Style(tty && !(no && *no));
}

std::string Style::paint(Colour colour, const std::string& text) const {
  if (!colour_ || colour == Colour::kNone) return text;
  static constexpr const char* kCodes[] = {"", "31", "32", "33", "34", "35", "36", "2"};
  return std::string("\033[") + kCodes[int(colour)] + "m" + text + "\033[0m";
}

void print_table(const std::vector<std::vector<std::string>>& rows, FILE* out) {
  std::vector<size_t> width;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    std::fprintf(out, "%s\n", line.c_str());
  }
}

void print_json(const nlohmann::json& j, FILE* out) {
  std::fprintf(out, "%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

std::string age(int64_t t) {
  int64_t d = std::max<int64_t>(0, int64_t(std::time(nullptr)) - t);
  if (d < 60) return std::to_string(d) + "s";
  if (d < 3600) return std::to_string(d / 60) + "m";
  if (d < 86400) return std::to_string(d / 3600) + "h";
  return std::to_string(d / 86400) + "d";
}

std::string field(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string cell(const nlohmann::json& j) {
  if (j.is_null()) return "-";
  if (j.is_string()) return j.get<std::string>();
  return j.dump();
}

}  // namespace rx::cli
