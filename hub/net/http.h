// HTTP requests and responses as plain values, independent of libwebsockets: the server fills a
// Request, a handler returns a Response. Every error the API gives is JSON
// {"error": "human readable", "code": "machine_code"}: error_response() is the one place that
// maps an Error code to its HTTP status.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "protocol/error.h"

namespace rx::hub {

struct Request {
  std::string method{};  // "GET", "POST", "DELETE", ...
  std::string path{};    // decoded path, no query
  std::map<std::string, std::string> query{};
  std::map<std::string, std::string> headers{};  // lower-case names
  std::string body{};
  std::string peer{};                            // client IP address
  std::map<std::string, std::string> params{};   // filled by the router: {id} -> value
  bool via_socket = false;                       // came in on the container agents' unix socket

  std::optional<std::string> header(const std::string& lower_name) const;
  // The token of "Authorization: Bearer <token>", if any.
  std::optional<std::string> bearer() const;
  // The value of cookie `name` in the Cookie header, if any.
  std::optional<std::string> cookie(std::string_view name) const;
  // True when the Origin header names this hub: `scheme` ("http" or "https", how the hub is
  // reached) and the Host header's authority. A browser sends Origin on every cross-site
  // POST/DELETE and WebSocket upgrade, so a cookie-signed request whose Origin is another site
  // (another scheme is another origin: RFC 6454) is a forgery attempt.
  bool same_origin(std::string_view scheme) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers, e.g. Retry-After
};

// The body is written by json_text (hub/base/json_text.h): it cannot throw, whatever bytes it holds.
Response json_response(int status, const nlohmann::json& body);
// Maps the error's code to its status (http_status) and writes the JSON error body; a store that
// cannot write (503) says when to retry (Retry-After).
Response error_response(const Error& error);
int http_status(std::string_view error_code);

// Parses a JSON object body. Errors: bad_json (with the parser's position), or bad_request when
// the top level is not an object.
Result<nlohmann::json> parse_json_object(std::string_view body);

}  // namespace rx::hub
