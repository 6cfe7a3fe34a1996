// protocol/SPEC.md section 4 states the bound of every per-connection queue of the hub: this
// fails when a number there and in the code disagree.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "hub/channel/relay.h"
#include "hub/channel/terminal.h"
#include "hub/fanout/events.h"
#include "hub/fanout/viewer_session.h"
#include "hub/link/agent_session.h"

namespace rx::hub {
namespace {

std::string grouped(uint64_t n) {
  std::string s = std::to_string(n);
  for (int i = int(s.size()) - 3; i > 0; i -= 3) s.insert(size_t(i), ",");
  return s;
}

TEST(BoundsDoc, SpecStatesTheBoundsOfTheCode) {
  std::ifstream in(std::string(REXEC_SOURCE_DIR) + "/protocol/SPEC.md");
  std::stringstream text;
  text << in.rdbuf();
  std::string spec = text.str();
  auto bounds = spec.substr(spec.find("## 4. Bounds"));
  auto has = [&](const std::string& needle) { EXPECT_NE(bounds.find(needle), std::string::npos) << "SPEC.md 4 does not say: " << needle; };
  has(grouped(AgentSession::kMaxQueuedBytes) + " bytes queued in all; " + grouped(AgentSession::kMaxQueuedControl) +
      " bytes of frames that are not DATA");
  has("| viewer events | " + std::to_string(ViewerSession::kMaxQueuedEvents) + " queued");
  has(grouped(ViewerSession::kMaxRepeats) + " repeats merged into an error the viewer has not read");
  has(grouped(Terminal::kInputBuffer) + " bytes | `error` event `input_dropped`");
  has(grouped(EventsSession::kMaxQueued) + " messages or " + grouped(EventsSession::kMaxQueuedBytes) + " bytes");
  has(grouped(kExecStreamCap) + " bytes per stream of a target; " + grouped(kExecRequestCap) + " bytes per request; " +
      grouped(kExecUserCap) + " bytes per user");
  has("queued for its client | " + grouped(kExecStreamBacklog) + " bytes per request");
  has("not yet sent to the agent | " + grouped(kFileUploadBuffer) + " bytes");
  has("(`GET .../files`) queued for its client | " + grouped(kFileClientBacklog) + " bytes");
  EXPECT_NE(spec.find("clamped to 1.." + std::to_string(Terminal::kMaxSize) + " columns and rows"), std::string::npos);
}

}  // namespace
}  // namespace rx::hub
