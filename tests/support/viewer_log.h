// ViewerLog: what a test viewer received on the viewer protocol — output checked to continue
// exactly where it left off, and events — pumped until a condition holds.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "protocol/viewer.h"
#include "tests/support/ws_client.h"

namespace rx::test {

// Reads viewer messages until `pred` holds for the output collected so far or an event matches.
struct ViewerLog {
  std::string output;
  uint64_t next_offset = 0;
  std::vector<nlohmann::json> events;
  bool pump(WsClient& v, const std::function<bool(const ViewerLog&)>& done, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done(*this)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      auto m = v.receive(left);
      if (!m) return false;
      auto d = protocol::viewer::decode_server(m->data);
      if (!d) return false;
      if (auto* o = std::get_if<protocol::viewer::Output>(&*d)) {
        EXPECT_EQ(o->offset, next_offset) << "output must continue exactly where the last ended";
        output.append(o->bytes.begin(), o->bytes.end());
        next_offset = o->offset + o->bytes.size();
      } else if (auto* e = std::get_if<protocol::viewer::Event>(&*d)) {
        events.push_back(nlohmann::json::parse(e->json));
      }
    }
    return true;
  }
  bool has_event(const std::string& type) const {
    for (const auto& e : events)
      if (e.value("type", "") == type) return true;
    return false;
  }
};

}  // namespace rx::test
