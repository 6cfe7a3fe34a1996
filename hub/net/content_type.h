// The Content-Type of a file, from its name's extension: shared by the hub's web files and the
// build tool that compiles them in.
#pragma once

#include <string_view>

namespace rx::hub {

inline std::string_view content_type_of(std::string_view name) {
  struct Ext {
    std::string_view ext, type;
  };
  static constexpr Ext kTypes[] = {{".html", "text/html; charset=utf-8"},
                                   {".js", "text/javascript; charset=utf-8"},
                                   {".css", "text/css; charset=utf-8"},
                                   {".svg", "image/svg+xml"},
                                   {".png", "image/png"},
                                   {".json", "application/json"},
                                   {".txt", "text/plain; charset=utf-8"}};
  for (const auto& t : kTypes)
    if (name.ends_with(t.ext)) return t.type;
  return "application/octet-stream";
}

}  // namespace rx::hub
