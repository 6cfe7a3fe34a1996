#include "protocol/file_path.h"

#include <algorithm>

#include "protocol/frame.h"

namespace rx::protocol {

std::optional<std::string> file_path_problem(std::string_view path) {
  if (path.empty()) return "it is empty";
  if (path.find('\0') != std::string_view::npos) return "it holds a NUL byte";
  if (path.size() > kMaxFilePath)
    return std::to_string(path.size()) + " bytes, over the limit of " + std::to_string(kMaxFilePath);
  for (std::string_view rest = path; !rest.empty();) {
    size_t slash = std::min(rest.find('/'), rest.size());
    std::string_view part = rest.substr(0, slash);
    if (part == "..") return "it has a \"..\" component (name the directory you mean)";
    if (part.size() > kMaxFileComponent)
      return "a component of " + std::to_string(part.size()) + " bytes, over the limit of " +
             std::to_string(kMaxFileComponent);
    rest.remove_prefix(std::min(slash + 1, rest.size()));
  }
  return std::nullopt;
}

}  // namespace rx::protocol
