// WebFiles: the dashboard's files. Normally the copy built into the hub (web/ is bundled with
// esbuild at build time and compiled in by hub/tools/embed_files, gzip alongside), so one binary
// serves everything, offline. With `web-dir` they are read from a directory instead, for working
// on the page without rebuilding the hub; such paths are checked so no request escapes the
// directory. Page routes (/, /login, /t/{id}, /s/{code}) all get index.html: the page routes itself.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "hub/net/content_type.h"
#include "hub/net/http.h"

namespace rx::hub {

// One file of the built-in copy.
struct WebAsset {
  std::string_view path;  // "/assets/app.js"
  std::string_view content_type;
  std::string_view body;
  std::string_view gzip;  // the same, gzip-compressed
};

// Generated at build time (web_assets.cpp).
std::span<const WebAsset> builtin_web_assets();

class WebFiles {
 public:
  explicit WebFiles(std::string dir) : dir_(std::move(dir)) {}
  // GET `path`: the file's response (headers included), or a JSON 404.
  Response get(std::string_view path, bool accepts_gzip) const;

 private:
  Response from_dir(std::string_view path) const;
  std::string dir_;
};

}  // namespace rx::hub
