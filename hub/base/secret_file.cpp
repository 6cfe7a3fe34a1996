#include "hub/base/secret_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace rx::hub {

Status write_secret_file(const std::string& path, const std::string& secret) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return make_error("io_error", "cannot create " + path + ": " + std::strerror(errno));
  std::string line = secret + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == ssize_t(line.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return make_error("io_error", "cannot write " + path);
  return Ok{};
}

}  // namespace rx::hub
