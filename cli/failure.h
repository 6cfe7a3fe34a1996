// Failure: how a command gives up. Thrown anywhere below a command and caught once in main, which
// prints the one line "rexec: <message>" on stderr and exits with `status`; destructors on the
// way (the terminal's raw mode, sockets, temp files) run first, so no exit path skips them.
#pragma once

#include <stdexcept>
#include <string>

namespace rx::cli {

class Failure : public std::runtime_error {
 public:
  explicit Failure(const std::string& message, int status = 1) : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

}  // namespace rx::cli
