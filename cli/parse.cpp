#include "cli/parse.h"

#include "cli/failure.h"

namespace rx::cli {

int64_t parse_duration(const std::string& text) {
  static const std::pair<char, int64_t> kUnits[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
  int64_t unit = 1;
  std::string digits = text;
  for (auto [c, n] : kUnits)
    if (!text.empty() && text.back() == c) {
      unit = n;
      digits.pop_back();
    }
  if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos)
    throw Failure("bad duration '" + text + "': expected e.g. 90s, 30m, 1h, 7d");
  return std::stoll(digits) * unit;
}

std::pair<std::string, std::string> parse_label(const std::string& text) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) throw Failure("bad label '" + text + "': expected KEY=VALUE");
  return {text.substr(0, eq), text.substr(eq + 1)};
}

nlohmann::json parse_gpus(const std::string& text) {
  nlohmann::json out = nlohmann::json::array();
  size_t start = 0;
  for (;;) {
    size_t comma = text.find(',', start);
    std::string part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (part.empty() || part.size() > 4 || part.find_first_not_of("0123456789") != std::string::npos)
      throw Failure("bad --gpus '" + text + "': expected GPU indexes like 0,1");
    out.push_back(std::stoi(part));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

unsigned parse_mode(const std::string& text) {
  if (text.empty() || text.size() > 5 || text.find_first_not_of("01234567") != std::string::npos ||
      std::stoul(text, nullptr, 8) > 07777)
    throw Failure("bad --mode '" + text + "': expected octal permission bits like 0644");
  return unsigned(std::stoul(text, nullptr, 8));
}

}  // namespace rx::cli
