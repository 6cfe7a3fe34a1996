// Typed readers for fields of a JSON request body. A missing or null field is nullopt; a field
// of the wrong type or out of range is a bad_field error that names the field, so every 400 the
// API gives says which field to fix.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hub/net/http.h"
#include "protocol/error.h"

namespace rx::hub {

Error bad_field(const std::string& field, const std::string& why);
Result<std::optional<std::string>> opt_string(const nlohmann::json& j, const std::string& field, size_t max = 256);
Result<std::optional<int64_t>> opt_int(const nlohmann::json& j, const std::string& field, int64_t min, int64_t max);
Result<std::optional<bool>> opt_bool(const nlohmann::json& j, const std::string& field);
// too_large: a field over a size limit (400; the message names the field and the limit).
Error too_large(const std::string& field, const std::string& why);
// "env": {"NAME": "value", ...}: at most kMaxElements variables, names and values of at most
// kMaxString bytes without NUL (protocol/limits.h: what one OPEN frame can carry). Errors:
// bad_field, too_large.
Result<std::map<std::string, std::string>> opt_env(const nlohmann::json& j);
// "labels": {"role": "ci"} (protocol/labels.h's rules) as JSON text; "{}" when absent.
Result<std::string> opt_labels(const nlohmann::json& j);
// Item `i` of an argv array: a string of at most kMaxString bytes without NUL.
Result<std::string> argv_item(const nlohmann::json& v, size_t i);
// An array of distinct GPU indexes (non-negative integers), non-empty, at most 64.
Result<std::optional<std::vector<uint32_t>>> opt_gpus(const nlohmann::json& j, const std::string& field);
// An optional body: empty means {}.
Result<nlohmann::json> optional_body(const std::string& body);

// Query parameter `name` as an integer in min..max (absent: nullopt); bad_field otherwise.
Result<std::optional<int64_t>> query_int(const Request& req, const std::string& name, int64_t min, int64_t max);

}  // namespace rx::hub
