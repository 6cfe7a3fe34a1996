// The agent's log: protocol/log_line.h's format on stderr, one write() per line.
#pragma once

#include <unistd.h>

#include "protocol/log_line.h"

namespace rx::agent {

inline void log(std::string_view level, std::string_view event, std::initializer_list<LogField> fields = {}) {
  std::string line = format_log_line(level, event, fields);
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace rx::agent
