// Parsing what users type in flags: durations, labels, GPU lists. Each throws a Failure that
// names the flag's text and the form expected.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace rx::cli {

// "90", "90s", "30m", "1h", "7d" -> seconds.
int64_t parse_duration(const std::string& text);
// "k=v" -> {k, v}.
std::pair<std::string, std::string> parse_label(const std::string& text);
// "0,1" -> [0, 1].
nlohmann::json parse_gpus(const std::string& text);
// "0644", "755" -> permission bits (octal, at most 07777).
unsigned parse_mode(const std::string& text);

}  // namespace rx::cli
