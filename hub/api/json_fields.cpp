#include "hub/api/json_fields.h"

#include <charconv>

#include "protocol/labels.h"

#include <algorithm>

#include "hub/base/json_text.h"
#include "hub/net/http.h"
#include "protocol/limits.h"

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

Error too_large(const std::string& field, const std::string& why) { return make_error("too_large", field + ": " + why); }

Result<std::string> argv_item(const nlohmann::json& v, size_t i) {
  std::string field = "argv[" + std::to_string(i) + "]";
  if (!v.is_string()) return bad_field(field, "must be a string");
  auto s = v.get<std::string>();
  if (s.find('\0') != std::string::npos) return bad_field(field, "contains a NUL byte (a C string would end there)");
  if (s.size() > protocol::kMaxString)
    return too_large(field, std::to_string(s.size()) + " bytes are over the limit of " + std::to_string(protocol::kMaxString) + " bytes");
  return s;
}

Result<std::string> opt_labels(const nlohmann::json& j) {
  auto it = j.find("labels");
  if (it == j.end() || it->is_null()) return std::string("{}");
  if (!it->is_object()) return bad_field("labels", "must be an object of KEY: VALUE strings");
  protocol::Labels labels;
  for (const auto& [k, v] : it->items()) {
    if (!v.is_string()) return bad_field("labels", "the value of " + k + " must be a string");
    labels[k] = v.get<std::string>();
  }
  if (auto e = protocol::check_labels(labels)) return bad_field("labels", e->message);
  return json_text(nlohmann::json(labels));
}

Result<std::map<std::string, std::string>> opt_env(const nlohmann::json& j) {
  std::map<std::string, std::string> env;
  if (!j.contains("env") || j["env"].is_null()) return env;
  if (!j["env"].is_object()) return bad_field("env", "must be an object of strings");
  const auto& obj = j["env"];
  if (obj.size() > protocol::kMaxElements)
    return too_large("env", std::to_string(obj.size()) + " variables are over the limit of " +
                                std::to_string(protocol::kMaxElements));
  for (const auto& [k, v] : obj.items()) {
    std::string field = "env." + k.substr(0, 64);
    if (!v.is_string()) return bad_field(field, "must be a string");
    if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos)
      return bad_field(field, "is not a valid variable name");
    if (k.size() > protocol::kMaxString)
      return too_large(field, "a name of " + std::to_string(k.size()) + " bytes is over the limit of " +
                                  std::to_string(protocol::kMaxString) + " bytes");
    auto value = v.get<std::string>();
    if (value.find('\0') != std::string::npos) return bad_field(field, "contains a NUL byte (a C string would end there)");
    if (value.size() > protocol::kMaxString)
      return too_large(field, "a value of " + std::to_string(value.size()) + " bytes is over the limit of " +
                                  std::to_string(protocol::kMaxString) + " bytes");
    env[k] = std::move(value);
  }
  return env;
}

Result<nlohmann::json> optional_body(const std::string& body) {
  if (body.empty()) return nlohmann::json::object();
  return parse_json_object(body);
}

Result<std::optional<std::vector<uint32_t>>> opt_gpus(const nlohmann::json& j, const std::string& field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return std::optional<std::vector<uint32_t>>();
  const char* why = "must be an array of GPU indexes (non-negative integers), e.g. [0, 2]";
  if (!it->is_array() || it->empty() || it->size() > 64) return bad_field(field, why);
  std::vector<uint32_t> out;
  for (const auto& v : *it) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 1023) return bad_field(field, why);
    auto g = uint32_t(v.get<int64_t>());
    if (std::find(out.begin(), out.end(), g) != out.end())
      return bad_field(field, "names GPU " + std::to_string(g) + " twice");
    out.push_back(g);
  }
  return std::optional<std::vector<uint32_t>>(std::move(out));
}

Result<std::optional<int64_t>> query_int(const Request& req, const std::string& name, int64_t min, int64_t max) {
  auto it = req.query.find(name);
  if (it == req.query.end()) return std::optional<int64_t>();
  int64_t v = 0;
  const auto& s = it->second;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < min || v > max)
    return make_error("bad_field", name + ": must be an integer between " + std::to_string(min) + " and " + std::to_string(max));
  return std::optional<int64_t>(v);
}

}  // namespace rx::hub
