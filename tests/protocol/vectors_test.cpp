// protocol/testdata: every NAME.msgpack decodes to NAME.json and re-encodes to the same bytes, and
// every NAME.json encodes to NAME.msgpack. (check_vectors.py checks the same with another decoder.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "protocol/codec.h"
#include "protocol/frame_json.h"

namespace rx::protocol {
namespace {

namespace fs = std::filesystem;

fs::path testdata() { return fs::path(REXEC_SOURCE_DIR) / "protocol" / "testdata"; }

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> vector_names() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(testdata()))
    if (e.path().extension() == ".json") names.push_back(e.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(Vectors, EveryFrameTypeHasAVector) {
  std::set<std::string> types;
  for (const auto& name : vector_names()) {
    std::ifstream in(testdata() / (name + ".json"));
    types.insert(nlohmann::json::parse(in).at("type").dump());
  }
  for (uint32_t t = 1; t <= 12; ++t)
    EXPECT_TRUE(types.count("\"" + std::string(frame_type_name(t)) + "\"")) << frame_type_name(t);
  EXPECT_GE(vector_names().size(), 20u);
}

class EachVector : public testing::TestWithParam<std::string> {};

TEST_P(EachVector, DecodesToItsJsonAndBack) {
  const std::string& name = GetParam();
  auto bytes = read_bytes(testdata() / (name + ".msgpack"));
  ASSERT_FALSE(bytes.empty()) << name << ".msgpack is missing: run protocol-vectors";
  std::ifstream in(testdata() / (name + ".json"));
  auto want = nlohmann::json::parse(in);

  auto frame = decode(bytes);
  ASSERT_TRUE(frame.ok()) << frame.error().code << ": " << frame.error().message;
  EXPECT_EQ(frame_to_json(*frame), want);  // json equality: key order does not matter
  EXPECT_EQ(*encode(*frame), bytes) << "re-encoding changed the bytes";

  auto from_json = frame_from_json(want);
  ASSERT_TRUE(from_json.ok()) << from_json.error().message;
  EXPECT_EQ(*from_json, *frame);
  EXPECT_EQ(*encode(*from_json), bytes);
}

INSTANTIATE_TEST_SUITE_P(Testdata, EachVector, testing::ValuesIn(vector_names()),
                         [](const auto& info) { return info.param; });

TEST(FrameJson, RefusesBadJson) {
  EXPECT_EQ(frame_from_json(nlohmann::json{{"type", "NOPE"}, {"channel", 1}}).error().code, "bad_json");
  EXPECT_EQ(frame_from_json(nlohmann::json{{"type", "ACK"}, {"channel", "one"}}).error().code, "bad_json");
  auto bad_b64 = nlohmann::json::parse(R"({"type":"DATA","channel":1,"stream":1,"offset":0,"bytes":{"base64":"%%%"}})");
  EXPECT_EQ(frame_from_json(bad_b64).error().code, "bad_json");
}

}  // namespace
}  // namespace rx::protocol
