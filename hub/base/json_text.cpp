#include "hub/base/json_text.h"

#include "protocol/utf8.h"

namespace rx::hub {

std::string json_text(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string clean_utf8(std::string_view text) { return protocol::clean_utf8(text); }

std::string clean_name(std::string_view text) {
  std::string out = clean_utf8(text);
  for (auto& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

}  // namespace rx::hub
