// What the agent tests read from a child's pty or pipe: everything until a condition holds, the
// end of the stream, or a timeout (non-blocking fds, polled).
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "agent/process.h"

namespace rx::agent::test {

inline std::string read_until(int fd, const std::function<bool(const std::string&)>& done,
                              std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  uint8_t buf[4096];
  while (fd >= 0 && !done(out) && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 50);
    auto r = read_some(fd, buf);
    out.append(reinterpret_cast<char*>(buf), r.bytes);
    if (r.eof) break;
  }
  return out;
}

// Until `marker` shows.
inline std::string read_until(int fd, const std::string& marker,
                              std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  return read_until(fd, [&](const std::string& s) { return s.find(marker) != std::string::npos; }, timeout);
}

}  // namespace rx::agent::test
