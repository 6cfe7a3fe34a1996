// hub/rfc3339: the times reservations are given in.
#include "hub/base/rfc3339.h"

#include <gtest/gtest.h>

namespace rx::hub {
namespace {

TEST(Rfc3339, ParsesUtcOffsetsAndFractions) {
  EXPECT_EQ(parse_rfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse_rfc3339("2026-12-02T10:00:00Z"), 1796205600);
  EXPECT_EQ(parse_rfc3339("2026-12-02T11:30:00+01:30"), 1796205600);
  EXPECT_EQ(parse_rfc3339("2026-12-02T08:00:00-02:00"), 1796205600);
  EXPECT_EQ(parse_rfc3339("2026-12-02T10:00:00.987Z"), 1796205600);
  EXPECT_EQ(parse_rfc3339("2024-02-29t10:00:00z"), 1709200800);  // a leap day; lower-case T and Z
}

TEST(Rfc3339, RefusesWhatIsNotADateTimeWithAZone) {
  for (const char* bad : {"", "tomorrow", "2026-12-02", "2026-12-02T10:00:00", "2026-12-02 10:00:00Z",
                          "2026-13-02T10:00:00Z", "2026-02-30T10:00:00Z", "2025-02-29T10:00:00Z", "2026-12-02T24:00:00Z",
                          "2026-12-02T10:60:00Z", "2026-12-02T10:00:00+1:00", "2026-12-02T10:00:00Zjunk",
                          "2026-12-02T10:00:00.Z", "1969-12-31T23:59:59Z", "2026-12-02T10:00:00+24:00", "1796205600"})
    EXPECT_FALSE(parse_rfc3339(bad)) << bad;
}

TEST(Rfc3339, FormatsUtcWholeSecondsAndRoundTrips) {
  EXPECT_EQ(format_rfc3339(1796205600), "2026-12-02T10:00:00Z");
  for (int64_t t : {int64_t(0), int64_t(951782400), int64_t(1796205659)}) EXPECT_EQ(parse_rfc3339(format_rfc3339(t)), t);
}

}  // namespace
}  // namespace rx::hub
