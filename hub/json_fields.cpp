#include "hub/json_fields.h"

#include "hub/http.h"

namespace rx::hub {

Error bad_field(const std::string& field, const std::string& why) { return make_error("bad_field", field + ": " + why); }

Result<std::optional<std::string>> opt_string(const nlohmann::json& j, const std::string& field, size_t max) {
  if (!j.contains(field) || j[field].is_null()) return std::optional<std::string>();
  if (!j[field].is_string()) return bad_field(field, "must be a string");
  auto s = j[field].get<std::string>();
  if (s.size() > max) return bad_field(field, "longer than " + std::to_string(max) + " characters");
  return std::optional<std::string>(s);
}

Result<std::optional<int64_t>> opt_int(const nlohmann::json& j, const std::string& field, int64_t min, int64_t max) {
  if (!j.contains(field) || j[field].is_null()) return std::optional<int64_t>();
  if (!j[field].is_number_integer()) return bad_field(field, "must be an integer");
  auto v = j[field].get<int64_t>();
  if (v < min || v > max) return bad_field(field, "must be between " + std::to_string(min) + " and " + std::to_string(max));
  return std::optional<int64_t>(v);
}

Result<std::optional<bool>> opt_bool(const nlohmann::json& j, const std::string& field) {
  if (!j.contains(field) || j[field].is_null()) return std::optional<bool>();
  if (!j[field].is_boolean()) return bad_field(field, "must be true or false");
  return std::optional<bool>(j[field].get<bool>());
}

Result<std::map<std::string, std::string>> opt_env(const nlohmann::json& j) {
  std::map<std::string, std::string> env;
  if (!j.contains("env") || j["env"].is_null()) return env;
  if (!j["env"].is_object()) return bad_field("env", "must be an object of strings");
  for (const auto& [k, v] : j["env"].items()) {
    if (!v.is_string()) return bad_field("env." + k, "must be a string");
    if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos)
      return bad_field("env." + k, "is not a valid variable name");
    env[k] = v.get<std::string>();
  }
  return env;
}

Result<nlohmann::json> optional_body(const std::string& body) {
  if (body.empty()) return nlohmann::json::object();
  return parse_json_object(body);
}

}  // namespace rx::hub
