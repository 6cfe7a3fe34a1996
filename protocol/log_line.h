// One log line per event, key=value, for stderr (journald adds time and unit), shared by hub and
// agent: the format (pure, tested) and log(), which writes a line with one write() so lines from
// one process never interleave. Values with spaces,
// quotes or control characters are quoted and escaped, so a hostile value (a terminal name, a
// peer's error message) cannot forge extra fields or lines. Secrets are never passed in: callers
// log ids, and redact() where a token must be referred to.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace rx {

using LogField = std::pair<std::string_view, std::string_view>;

// "level=info event=agent.online agent=ag_x name=\"gpu box\""
std::string format_log_line(std::string_view level, std::string_view event, std::initializer_list<LogField> fields);

// Formats and writes one line to stderr.
void log(std::string_view level, std::string_view event, std::initializer_list<LogField> fields = {});

// "rxk_…" : the kind of a token without any of its secret part.
std::string redact(std::string_view token);

}  // namespace rx
