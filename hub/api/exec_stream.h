// ExecStream: an exec run (hub/channel/exec_fanout.h) answered over HTTP. Which requests want the
// stream (Accept: application/x-ndjson), and the run's client on an HttpExchange: lines become
// the streamed body, the end becomes the one JSON answer or the stream's end, and the exchange's
// gone/drained callbacks cancel or resume the run.
#pragma once

#include <string>
#include <string_view>

#include "hub/channel/exec_fanout.h"
#include "hub/net/http.h"
#include "hub/net/server.h"

namespace rx::hub {

inline constexpr std::string_view kNdjson = "application/x-ndjson";

// True when the request's Accept header lists application/x-ndjson (parameters and other types
// beside it are allowed; a client that names it wants the stream).
bool wants_ndjson(const Request& request);

// Starts a run of `request` on `targets` answered on `exchange` (the stream's head goes out at
// once when it is streamed); the exchange's on_gone cancels it, on_drain resumes it.
void exec_over_http(ExecFanout& fanout, std::vector<AgentRecord> targets, const ExecRequest& request,
                    std::shared_ptr<HttpExchange> exchange);

}  // namespace rx::hub
