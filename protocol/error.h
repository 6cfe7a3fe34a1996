// rx::Error and Result<T>: the one error type of the project. A machine code (snake_case, stable,
// documented in protocol/SPEC.md and docs/api.md) plus a human sentence. It is mapped once to HTTP
// statuses (hub) and once to ERROR frames / close reasons (agent link). No exceptions cross module
// boundaries: fallible functions return Result<T>.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace rx {

struct Error {
  std::string code;     // machine readable, e.g. "truncated", "unknown_channel"
  std::string message;  // one human-readable sentence, names the field when there is one
};

template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}        // NOLINT: implicit by design
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// For fallible functions with nothing to return.
struct Ok {};
using Status = Result<Ok>;

inline Error make_error(std::string code, std::string message) {
  return Error{std::move(code), std::move(message)};
}

}  // namespace rx
