// protocol/log_line.cpp: key=value lines that hostile values cannot break.
#include "protocol/log_line.h"

#include <gtest/gtest.h>

namespace rx {
namespace {

TEST(LogLine, PlainAndQuotedValues) {
  EXPECT_EQ(format_log_line("info", "agent.online", {{"agent", "ag_1"}, {"name", "gpu box"}}),
            "level=info event=agent.online agent=ag_1 name=\"gpu box\"\n");
  EXPECT_EQ(format_log_line("warn", "x", {{"empty", ""}}), "level=warn event=x empty=\"\"\n");
}

TEST(LogLine, HostileValuesCannotForgeFieldsOrLines) {
  auto line = format_log_line("info", "t", {{"name", "a\" admin=1\nlevel=error event=forged"}});
  EXPECT_EQ(line, "level=info event=t name=\"a\\\" admin=1\\nlevel=error event=forged\"\n");
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  EXPECT_EQ(format_log_line("info", "t", {{"v", std::string_view("\x1b[31m\0", 6)}}),
            "level=info event=t v=\"\\x1b[31m\\x00\"\n");
}

TEST(LogLine, BytesThatAreNotUtf8AreEscaped) {
  // A peer's name in another encoding: the line stays valid UTF-8 and shows the bytes.
  EXPECT_EQ(format_log_line("info", "t", {{"name", "caf\xe9 \xc3\xa9"}}), "level=info event=t name=\"caf\\xe9 \xc3\xa9\"\n");
  EXPECT_EQ(format_log_line("info", "t", {{"v", "\xed\xa0\x80"}}), "level=info event=t v=\"\\xed\\xa0\\x80\"\n");
}

TEST(LogLine, RedactKeepsOnlyTheKind) {
  EXPECT_EQ(redact("rxk_abcdefghijklmnop"), "rxk_…");
  EXPECT_EQ(redact("secretwithoutprefix"), "…");
}

}  // namespace
}  // namespace rx
