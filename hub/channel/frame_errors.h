// Errors between the agent link and the API: an agent's ERROR frame as the hub's error, and an
// OPEN the frame limits refuse as the API's too_large.
#pragma once

#include <string>

#include "protocol/error.h"
#include "protocol/frame.h"

namespace rx::hub {

// An agent's ERROR as the hub's error (exec results, terminal reasons): valid UTF-8.
Error agent_error(const protocol::ErrorFrame& e);

// The OPEN's check (protocol::check_limits) as the API's error: too_large, naming the field
// (`fields` when it is the frame as a whole) and the limit.
Status as_request_error(Status s, const std::string& fields);

}  // namespace rx::hub
