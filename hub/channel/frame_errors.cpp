#include "hub/channel/frame_errors.h"

#include "hub/base/json_text.h"

namespace rx::hub {

Error agent_error(const protocol::ErrorFrame& e) { return make_error(clean_utf8(e.code), clean_utf8(e.message)); }

Status as_request_error(Status s, const std::string& fields) {
  if (s) return s;
  std::string message = s.error().message;
  if (message.starts_with("OPEN.")) message = message.substr(5);
  else if (message.starts_with("OPEN: ")) message = fields + ": together " + message.substr(6);
  return make_error("too_large", message + " (one OPEN frame of the agent link)");
}

}  // namespace rx::hub
