#include "hub/net/http.h"

#include "hub/base/json_text.h"

namespace rx::hub {

std::optional<std::string> Request::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  if (it == headers.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> Request::bearer() const {
  auto h = header("authorization");
  if (!h || h->size() < 8) return std::nullopt;
  // The scheme is case-insensitive (RFC 7235); the token is not.
  std::string scheme = h->substr(0, 7);
  for (auto& c : scheme) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "bearer ") return std::nullopt;
  std::string token = h->substr(7);
  while (!token.empty() && token.back() == ' ') token.pop_back();
  return token;
}

std::optional<std::string> Request::cookie(std::string_view name) const {
  auto h = header("cookie");
  if (!h) return std::nullopt;
  std::string_view rest(*h);
  while (!rest.empty()) {
    auto semi = rest.find(';');
    auto pair = rest.substr(0, semi);
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    auto eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) return std::string(pair.substr(eq + 1));
    if (semi == std::string_view::npos) break;
    rest.remove_prefix(semi + 1);
  }
  return std::nullopt;
}

bool Request::same_origin(std::string_view scheme) const {
  auto origin = header("origin");
  auto host = header("host");
  if (!origin || !host) return false;
  return *origin == std::string(scheme) + "://" + *host;
}

Response json_response(int status, const nlohmann::json& body) {
  Response r;
  r.status = status;
  r.body = json_text(body);
  return r;
}

int http_status(std::string_view code) {
  struct Entry {
    std::string_view code;
    int status;
  };
  static constexpr Entry kTable[] = {
      {"bad_request", 400}, {"bad_json", 400}, {"bad_field", 400}, {"too_large", 400}, {"image_not_found", 400}, {"unknown_gpu", 400},
      {"unauthorized", 401},
      {"forbidden", 403}, {"read_only", 403}, {"not_found", 404}, {"method_not_allowed", 405},
      {"conflict", 409}, {"agent_offline", 409}, {"gpu_busy", 409}, {"gpu_reserved", 409}, {"reservation_conflict", 409}, {"quota_exceeded", 409}, {"body_too_large", 413}, {"range_not_satisfiable", 416},
      {"rate_limited", 429}, {"store_busy", 503}, {"store_unavailable", 503}, {"docker_unavailable", 503},
      {"agent_binary_missing", 503}, {"unavailable", 503},
      {"docker_error", 502}, {"timeout", 504},
      // the HTTP front's own refusals (hub/net/http_parser.h)
      {"request_timeout", 408}, {"uri_too_long", 414}, {"expectation_failed", 417}, {"upgrade_required", 426},
      {"headers_too_large", 431}, {"not_implemented", 501}, {"version_not_supported", 505},
  };
  for (const auto& e : kTable)
    if (e.code == code) return e.status;
  return 500;
}

Response error_response(const Error& error) {
  auto r = json_response(http_status(error.code), {{"error", error.message}, {"code", error.code}});
  // A locked store clears in moments; a full disk when someone frees space: worth a retry either way.
  if (error.code == "store_busy") r.headers.push_back({"Retry-After", "1"});
  if (error.code == "store_unavailable") r.headers.push_back({"Retry-After", "30"});
  return r;
}

Result<nlohmann::json> parse_json_object(std::string_view body) {
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return make_error("bad_json", "the request body is not valid JSON");
  if (!j.is_object()) return make_error("bad_request", "the request body must be a JSON object");
  return j;
}

}  // namespace rx::hub
