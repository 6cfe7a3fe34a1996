// Views: the JSON shapes of terminals, agents and STATS samples, shared by the REST API and the
// dashboard's events feed so both always say the same thing (docs/api.md describes them).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "hub/channel/relay.h"
#include "hub/store/store.h"
#include "protocol/frame.h"

namespace rx::hub {

// `agent_name`: the name of the terminal's agent (shown for agent terminals).
nlohmann::json terminal_view(const TerminalRecord& t, Relay& relay, const std::string& agent_name);
// With its GPUs as docs/api.md says: each GPU's latest use, holder, processes (whose they are, and
// whether they break a lease), reservations of the next 7 days, and the violation flag.
nlohmann::json agent_view(const AgentRecord& a, Relay& relay);
// A STATS sample taken at unix time `at`.
nlohmann::json stats_view(const protocol::Stats& s, int64_t at);

}  // namespace rx::hub
