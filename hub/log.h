// The hub's log: protocol/log_line.h's format, written to stderr with one write() per line so
// lines from one process never interleave.
#pragma once

#include <unistd.h>

#include "protocol/log_line.h"

namespace rx::hub {

inline void log(std::string_view level, std::string_view event, std::initializer_list<LogField> fields = {}) {
  std::string line = format_log_line(level, event, fields);
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace rx::hub
