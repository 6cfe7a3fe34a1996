// Reply: what an HTTP handler gives back. Either the answer now (a Response, or an Error that
// error_response() turns into one), or Later: the handler kept the exchange and answers it itself
// when the work behind it completes (a Docker call, a streamed body). Handlers return it and one
// wrapper replies, so a handler cannot forget to answer or answer twice on the same path.
#pragma once

#include <utility>
#include <variant>

#include "hub/net/http.h"

namespace rx::hub {

struct Later {};

class Reply {
 public:
  Reply(Response response) : v_(std::move(response)) {}  // NOLINT: implicit by design
  Reply(Error error) : v_(std::move(error)) {}           // NOLINT: implicit by design
  Reply(Later later) : v_(later) {}                      // NOLINT: implicit by design
  bool later() const { return std::holds_alternative<Later>(v_); }
  // The answer (not for a Later reply).
  Response response() && {
    if (auto* e = std::get_if<Error>(&v_)) return error_response(*e);
    return std::get<Response>(std::move(v_));
  }

 private:
  std::variant<Response, Error, Later> v_;
};

}  // namespace rx::hub
