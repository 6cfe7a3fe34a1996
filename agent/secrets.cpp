#include "agent/secrets.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace rx::agent {

Result<std::string> read_secret(const std::string& path, bool require_private) {
  int fd = path == "-" ? dup(STDIN_FILENO) : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error("secret_unreadable", "cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (require_private && path != "-" && fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) {
    ::close(fd);
    return make_error("secret_insecure", path + " is readable by others (mode " + std::to_string(st.st_mode & 0777) +
                                             "); run chmod 600 on it");
  }
  std::string data;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data.append(buf, size_t(n));
    if (data.size() > 4096 || data.find('\n') != std::string::npos) break;
  }
  ::close(fd);
  data = data.substr(0, data.find('\n'));
  while (!data.empty() && (data.back() == '\r' || data.back() == ' ' || data.back() == '\t')) data.pop_back();
  size_t start = data.find_first_not_of(" \t");
  if (start == std::string::npos) return make_error("secret_empty", path + " holds no token");
  return data.substr(start);
}

Status write_secret(const std::string& path, const std::string& secret) {
  std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return make_error("secret_unwritable", "cannot create " + tmp + ": " + std::strerror(errno));
  std::string line = secret + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == ssize_t(line.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return make_error("secret_unwritable", "cannot write " + path + ": " + std::strerror(errno));
  }
  return Ok{};
}

}  // namespace rx::agent
