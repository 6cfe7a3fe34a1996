// docs/api.md documents every route the hub serves: a route added in code and not in the doc
// fails here.
#include <gtest/gtest.h>
#include <uv.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <iterator>

#include "hub/api/api.h"
#include "hub/base/tokens.h"
#include "hub/channel/relay.h"
#include "hub/store/sqlite_store.h"

namespace rx::hub {
namespace {

TEST(ApiDoc, EveryRouteIsDocumented) {
  auto dir = std::filesystem::temp_directory_path() / ("rexec-apidoc-" + new_id(""));
  std::filesystem::create_directories(dir);
  auto store = SqliteStore::open((dir / "hub.db").string());
  ASSERT_TRUE(store.ok());
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    Relay relay(**store, &loop);
    Containers containers(&loop, "/nonexistent/docker.sock", "hub_test", "/nonexistent/rexec-agent", dir.string());
    Api api(**store, relay, HubConfig{}, containers);
    std::ifstream in(std::string(REXEC_SOURCE_DIR) + "/docs/api.md");
    std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_FALSE(doc.empty());
    auto routes = api.route_list();
    EXPECT_GE(routes.size(), 17u);
    // Every heading's route, exactly: ### `GET /api/v1/terminals/{id}` (a query part in [...] and
    // a note after the closing backquote are not part of it). Whole routes, both ways: a route
    // missing from the doc and a documented route the hub does not have both fail.
    std::set<std::string> documented;
    for (size_t at = doc.find("\n### `"); at != std::string::npos; at = doc.find("\n### `", at + 1)) {
      size_t start = at + 6, end = doc.find_first_of("`[\n", start);
      documented.insert(doc.substr(start, end - start));
    }
    std::set<std::string> served(routes.begin(), routes.end());
    for (const auto& route : served) EXPECT_TRUE(documented.count(route)) << route << " is not in docs/api.md";
    for (const auto& route : documented) EXPECT_TRUE(served.count(route)) << route << " is documented but not served";
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rx::hub
