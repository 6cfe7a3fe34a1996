#include "hub/api/downloads.h"

#include "hub/api/file_stream.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "hub/base/fd.h"
#include "protocol/log_line.h"

namespace rx::hub {
namespace {

constexpr std::string_view kPrefix = "rexec-agent-linux-";
constexpr off_t kMaxChecksumFile = 4096;

// "rexec-agent-linux-arm64.sha256" -> {"arm64", true}; empty arch for anything else.
std::pair<std::string, bool> parse_name(std::string_view file) {
  if (!file.starts_with(kPrefix)) return {"", false};
  std::string_view rest = file.substr(kPrefix.size());
  bool checksum = rest.ends_with(".sha256");
  if (checksum) rest.remove_suffix(7);
  for (auto arch : kAgentArchs)
    if (rest == arch) return {std::string(arch), checksum};
  return {"", false};
}

// A URL that is safe between single quotes in sh and means one URL: no quote, space, $ or `.
bool plain_url(std::string_view url) {
  if (!url.starts_with("http://") && !url.starts_with("https://")) return false;
  if (url.size() > 512) return false;
  for (char c : url)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          std::string_view(":/.-_~[]%").find(c) != std::string_view::npos))
      return false;
  return true;
}

std::string replace_once(std::string text, std::string_view marker, std::string_view with) {
  auto at = text.find(marker);
  if (at != std::string::npos) text.replace(at, marker.size(), with);
  return text;
}

Response missing(const std::string& arch, const std::string& file) {
  return error_response(make_error("not_found", "this hub has no rexec-agent for linux-" + arch + " (" + file +
                                                    " is not in its downloads directory)"));
}

}  // namespace

Response Downloads::installer(const std::string& base_url) const {
  if (!plain_url(base_url))
    return error_response(make_error("bad_request", "the hub's URL (public-url, or this request's Host) is not a "
                                                    "plain http(s) URL that can go into a shell script"));
  std::string script = replace_once(std::string(builtin_installer_script()), "@REXEC_PUBLIC_URL@", base_url);
  script = replace_once(std::move(script), "@REXEC_AGENT_UNIT@\n", builtin_agent_unit());
  Response r;
  r.content_type = "text/x-shellscript; charset=utf-8";
  r.body = std::move(script);
  return r;
}

Reply Downloads::serve(const std::string& file, const std::shared_ptr<HttpExchange>& ex) const {
  auto [arch, checksum] = parse_name(file);
  if (arch.empty())
    return make_error("not_found", "no download named \"" + file.substr(0, 64) +
                                       "\"; there are rexec-agent-linux-amd64 and rexec-agent-linux-arm64, each with .sha256");
  std::string path = dir_ + "/" + file;
  // O_NOFOLLOW: what is served is a file placed in the directory, not whatever a link points at.
  int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (raw < 0) {
    log("info", "download.missing", {{"path", path}, {"reason", std::strerror(errno)}});
    return missing(arch, file);
  }
  Fd fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return missing(arch, file);
  if (checksum) {
    if (st.st_size > kMaxChecksumFile) return missing(arch, file);
    std::string text(size_t(st.st_size), '\0');
    ssize_t n = ::read(fd.get(), text.data(), text.size());
    if (n != st.st_size) return missing(arch, file);
    Response r;
    r.content_type = "text/plain; charset=utf-8";
    r.body = std::move(text);
    return r;
  }
  Response head;
  head.content_type = "application/octet-stream";
  head.headers.push_back({"Content-Disposition", "attachment; filename=\"" + file + "\""});
  stream_file(std::move(fd), ex, std::move(head), file);
  return Later{};
}

}  // namespace rx::hub
