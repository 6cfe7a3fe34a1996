// Agent labels: `key=value` pairs an operator gives an agent (--label, /etc/rexec/agent.conf),
// carried in HELLO and shown by the hub's agent list. Their bounds and syntax are decided here,
// once: the agent checks its own before it dials (a typo is an error at startup, not a link that
// the hub keeps refusing) and the hub checks every HELLO, since an agent may be anything.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "protocol/error.h"

namespace rx::protocol {

using Labels = std::map<std::string, std::string>;

inline constexpr size_t kMaxLabels = 32;
// Keys: 1-63 bytes of [A-Za-z0-9._/-], starting with a letter or digit (selectors stay simple).
inline constexpr size_t kMaxLabelKey = 63;
// Values: 0-255 bytes of UTF-8 without control characters (shown on the dashboard as they are).
inline constexpr size_t kMaxLabelValue = 255;

// Why `labels` is not acceptable (code "bad_labels"), naming the label; nullopt when it is.
std::optional<Error> check_labels(const Labels& labels);

// "k=v" -> {k, v}, checked as one label.
Result<std::pair<std::string, std::string>> parse_label(std::string_view text);

}  // namespace rx::protocol
