#include "hub/net/web.h"

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace rx::hub {
namespace {

// The page's own script, styles, sockets and images only: no inline script, no eval, no CDN.
// xterm.js sets element styles, hence 'unsafe-inline' for styles (not for scripts). The recording
// player (asciinema-player) runs its terminal emulator as WebAssembly, which needs
// 'wasm-unsafe-eval' (compiling the page's own wasm; it allows no eval of script text).
constexpr const char* kPageCsp =
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self' ws: wss:; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

bool is_page(std::string_view path) {
  if (path == "/" || path == "/login" || path == "/recordings") return true;
  for (std::string_view prefix : {"/t/", "/s/", "/r/", "/p/"})
    if (path.starts_with(prefix) && path.size() > prefix.size() && path.find('/', prefix.size()) == std::string_view::npos)
      return true;
  return false;
}

void add_headers(Response& r, std::string_view path) {
  if (path == "/index.html") {
    r.headers.push_back({"Content-Security-Policy", kPageCsp});
    r.headers.push_back({"X-Frame-Options", "DENY"});
    r.headers.push_back({"Referrer-Policy", "no-referrer"});  // share links carry their code in the path
  }
  // The embed script is meant to be loaded by other sites' pages.
  if (path == "/embed.js") r.headers.push_back({"Access-Control-Allow-Origin", "*"});
}

// A path is served from the directory only when every segment is plain: letters, digits, '-',
// '_', '.', not starting with '.' (no "..", no hidden files).
bool plain_path(std::string_view path) {
  if (path.empty() || path[0] != '/' || path.size() > 256) return false;
  size_t i = 1;
  while (i <= path.size()) {
    auto end = path.find('/', i);
    if (end == std::string_view::npos) end = path.size();
    auto seg = path.substr(i, end - i);
    if (seg.empty() || seg[0] == '.') return false;
    for (char c : seg)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
    i = end + 1;
  }
  return true;
}

Response not_found(std::string_view path) {
  return error_response(make_error("not_found", "no page or file at " + std::string(path)));
}

}  // namespace

Response WebFiles::get(std::string_view path, bool accepts_gzip) const {
  std::string_view file = is_page(path) ? std::string_view("/index.html") : path;
  Response r;
  if (!dir_.empty()) {
    r = from_dir(file);
  } else {
    const WebAsset* found = nullptr;
    for (const auto& a : builtin_web_assets())
      if (a.path == file) found = &a;
    if (!found) return not_found(path);
    r.content_type = std::string(found->content_type);
    if (accepts_gzip && !found->gzip.empty()) {
      r.body = std::string(found->gzip);
      r.headers.push_back({"Content-Encoding", "gzip"});
    } else {
      r.body = std::string(found->body);
    }
    r.headers.push_back({"Vary", "Accept-Encoding"});
  }
  if (r.status == 200) add_headers(r, file);
  return r;
}

Response WebFiles::from_dir(std::string_view path) const {
  if (!plain_path(path)) return not_found(path);
  char root[PATH_MAX], real[PATH_MAX];
  std::string full = dir_ + std::string(path);
  if (!::realpath(dir_.c_str(), root) || !::realpath(full.c_str(), real)) return not_found(path);
  // A symlink inside the directory may not lead out of it.
  std::string_view r(real), base(root);
  if (!r.starts_with(base) || (r.size() > base.size() && r[base.size()] != '/')) return not_found(path);
  std::error_code ec;
  auto size = std::filesystem::file_size(real, ec);
  if (ec || !std::filesystem::is_regular_file(real, ec) || size > 64 * 1024 * 1024) return not_found(path);
  std::ifstream in(real, std::ios::binary);
  Response out;
  out.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return not_found(path);
  out.content_type = std::string(content_type_of(path));
  return out;
}

}  // namespace rx::hub
