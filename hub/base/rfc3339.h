// RFC 3339 times as the API takes and gives them ("2026-12-02T10:00:00Z", offsets and
// fractions accepted on input; always UTC, whole seconds on output).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rx::hub {

// Unix seconds, or nullopt when `text` is not an RFC 3339 date-time (with a zone: "Z" or ±HH:MM).
std::optional<int64_t> parse_rfc3339(std::string_view text);
std::string format_rfc3339(int64_t unix_seconds);

}  // namespace rx::hub
