// CastIndexes: index documents built on libuv's pool and answered on the loop, a recording read
// again only for what it gained, a missing file a clear error, and the memory bound honoured by
// dropping the least recently asked.
#include "hub/fanout/cast_indexes.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <fstream>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "hub/fanout/asciicast.h"
#include "tests/support/process.h"

namespace rx::hub {
namespace {

class CastIndexesTest : public ::testing::Test {
 protected:
  CastIndexesTest() { uv_loop_init(&loop_); }
  ~CastIndexesTest() override {
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }

  std::string write_cast(const std::string& name, int events) {
    AsciicastEncoder enc;
    std::string text = AsciicastEncoder::header({80, 24, 1700000000, name, "xterm"});
    for (int i = 0; i < events; ++i) text += enc.output(0.01 * (i + 1), "output " + std::to_string(i) + " of " + name + "\r\n");
    std::ofstream(dir_ / name, std::ios::binary | std::ios::trunc) << text;
    return dir_ / name;
  }

  // Runs the loop until `ask` answers; the answer.
  Result<std::string> wait(const std::function<void(CastIndexes::Done)>& ask) {
    std::optional<Result<std::string>> got;
    bool called_inside = true;
    ask([&](Result<std::string> r) { got = std::move(r); });
    called_inside = got.has_value();
    EXPECT_FALSE(called_inside) << "answered from within the call, not from the loop";
    while (!got) uv_run(&loop_, UV_RUN_ONCE);
    return std::move(*got);
  }

  uv_loop_t loop_;
  test::TempDir dir_{"rexec-cast-indexes"};
};

TEST_F(CastIndexesTest, IndexesAndSegmentsComeBackOnTheLoopAndGrowWithTheFile) {
  CastIndexes indexes(&loop_, {.max_bytes = size_t(64) << 20, .segment_bytes = 500});
  std::string path = write_cast("a.cast", 100);
  auto doc = wait([&](auto done) { indexes.index("r_a", path, done); });
  ASSERT_TRUE(doc) << doc.error().message;
  auto index = nlohmann::json::parse(*doc);
  size_t segments = index["segments"].size();
  EXPECT_GT(segments, 3u);
  std::string url = index["segments"][1]["url"];
  uint64_t to = std::stoull(url.substr(url.find("to=") + 3));
  auto seg = wait([&](auto done) { indexes.segment("r_a", path, 1, to, done); });
  ASSERT_TRUE(seg) << seg.error().message;
  EXPECT_NE(seg->find("output "), std::string::npos);

  write_cast("a.cast", 300);  // the recording went on (rewritten longer: the same first lines)
  auto grown = nlohmann::json::parse(*wait([&](auto done) { indexes.index("r_a", path, done); }));
  EXPECT_GT(grown["segments"].size(), segments);
  EXPECT_EQ(indexes.cached(), 1u);

  indexes.forget("r_a");
  EXPECT_EQ(indexes.cached(), 0u);
}

TEST_F(CastIndexesTest, AMissingFileIsNotFoundAndTheMemoryBoundDropsTheOldest) {
  CastIndexes indexes(&loop_, {.max_bytes = 1, .segment_bytes = 200});  // any snapshot is over it
  auto missing = wait([&](auto done) { indexes.index("r_gone", dir_ / "gone.cast", done); });
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, "not_found");
  std::string a = write_cast("a.cast", 50), b = write_cast("b.cast", 50);
  ASSERT_TRUE(wait([&](auto done) { indexes.index("r_a", a, done); }));
  ASSERT_TRUE(wait([&](auto done) { indexes.index("r_b", b, done); }));
  EXPECT_EQ(indexes.cached(), 1u) << "over the bound, only the newest stays";
  auto again = wait([&](auto done) { indexes.index("r_a", a, done); });  // rebuilt from the file
  ASSERT_TRUE(again);
  EXPECT_NE(again->find("\"segments\""), std::string::npos);
}

}  // namespace
}  // namespace rx::hub
