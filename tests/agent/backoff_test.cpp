// agent/backoff.cpp: full jitter between 0 and min(cap, base * 2^attempt), reset on success.
#include "agent/backoff.h"

#include <gtest/gtest.h>

namespace rx::agent {
namespace {

using ms = std::chrono::milliseconds;

TEST(Backoff, CeilingDoublesFromBaseToCap) {
  Backoff b(ms(500), ms(30000), 1);
  std::vector<int64_t> ceilings;
  for (int i = 0; i < 10; ++i) {
    ceilings.push_back(b.ceiling().count());
    b.next();
  }
  EXPECT_EQ(ceilings, (std::vector<int64_t>{500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000}));
  for (int i = 0; i < 100; ++i) b.next();  // no overflow after many attempts
  EXPECT_EQ(b.ceiling().count(), 30000);
  b.reset();
  EXPECT_EQ(b.ceiling().count(), 500);
  EXPECT_EQ(b.attempt(), 0u);
}

TEST(Backoff, DelaysAreSpreadOverTheWholeRange) {
  // Full jitter: draws cover [0, ceiling], not a narrow band around it (which would make a
  // thousand agents reconnect in lockstep).
  Backoff b(ms(500), ms(30000), 42);
  for (int i = 0; i < 8; ++i) b.next();  // at the cap now
  int64_t lo = INT64_MAX, hi = 0;
  double sum = 0;
  const int n = 5000;
  for (int i = 0; i < n; ++i) {
    auto d = b.next().count();
    ASSERT_GE(d, 0);
    ASSERT_LE(d, 30000);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
    sum += double(d);
  }
  EXPECT_LT(lo, 1000);
  EXPECT_GT(hi, 29000);
  EXPECT_NEAR(sum / n, 15000, 1000);  // mean of a uniform draw on [0, 30000]
}

}  // namespace
}  // namespace rx::agent
