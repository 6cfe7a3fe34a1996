// hub/channel/exec_lines.h: where a chunk of output may be cut so that text never ends inside a
// character, and the shape of a chunk line.
#include "hub/channel/exec_lines.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace rx::hub {
namespace {

TEST(ExecStreamText, IncompleteTailIsTheStartOfACharacterOnly) {
  EXPECT_EQ(incomplete_utf8_tail(""), 0u);
  EXPECT_EQ(incomplete_utf8_tail("abc"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("a\xe2\x82\xac"), 0u);  // whole
  EXPECT_EQ(incomplete_utf8_tail("a\xe2"), 1u);
  EXPECT_EQ(incomplete_utf8_tail("a\xe2\x82"), 2u);
  EXPECT_EQ(incomplete_utf8_tail("\xf0\x9f\x98"), 3u);   // U+1F600 less its last byte
  EXPECT_EQ(incomplete_utf8_tail("\xed\xa0"), 0u);       // a surrogate can never complete
  EXPECT_EQ(incomplete_utf8_tail("\xe0\x80"), 0u);       // nor an overlong
  EXPECT_EQ(incomplete_utf8_tail("\xf4\x90"), 0u);       // nor past U+10FFFF
  EXPECT_EQ(incomplete_utf8_tail("\xc0"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("\xff"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("\xf0\x41\xe2"), 1u);   // a broken lead before a real one
}

TEST(ExecStreamText, CarryHoldsASplitCharacterForTheNextChunk) {
  Utf8Carry carry;
  EXPECT_EQ(carry.take("x\xe2"), "x");
  EXPECT_EQ(carry.take("\x82"), "");
  EXPECT_EQ(carry.take("\xac!"), "\xe2\x82\xac!");
  EXPECT_EQ(carry.take("\xf0\x9f"), "");
  EXPECT_EQ(carry.rest(), "\xf0\x9f");
  EXPECT_EQ(carry.rest(), "");
}

TEST(ExecStreamText, ChunkLineIsTextOrBase64) {
  auto text = nlohmann::json::parse(chunk_line("box", "ag_1", false, "h\xc3\xa9\n"));
  EXPECT_EQ(text, (nlohmann::json{{"target", "box"}, {"agent", "ag_1"}, {"stream", "stdout"}, {"data", "h\xc3\xa9\n"}}));
  std::string line = chunk_line("box", "ag_1", true, "\xff\n");
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  auto bin = nlohmann::json::parse(line);
  EXPECT_EQ(bin["stream"], "stderr");
  EXPECT_EQ(bin["data"], "/wo=");
  EXPECT_EQ(bin["encoding"], "base64");
}

}  // namespace
}  // namespace rx::hub
