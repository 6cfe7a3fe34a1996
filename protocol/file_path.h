// The paths a file channel takes (SPEC.md 1.10, docs/files.md "Paths"), decided here once: the
// hub refuses any other before it reaches an agent (400 bad_path), and the agent refuses them
// again rather than rely on the hub, since a hub may be anything.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace rx::protocol {

inline constexpr size_t kMaxFileComponent = 255;  // NAME_MAX: one name between slashes

// Why `path` is refused ("it has a \"..\" component"), or nullopt when it may be used: empty, a
// NUL byte, over kMaxFilePath bytes, a component over kMaxFileComponent, any ".." component (a
// path means what it says, never "up from here").
std::optional<std::string> file_path_problem(std::string_view path);

}  // namespace rx::protocol
