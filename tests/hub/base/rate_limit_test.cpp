// hub/base/rate_limit.h: a token bucket per key, driven here by explicit time points (the clock
// parameter), so refills and waits are exact and nothing sleeps.
#include "hub/base/rate_limit.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace rx::hub {
namespace {

using std::chrono::seconds;
using Clock = RateLimiter::Clock;

// Far from the clock's epoch, as a real steady clock is: the limiter's first prune is due at once.
const Clock::time_point t0 = Clock::time_point{} + std::chrono::hours(1000);

// How many events `key` may cause at `at` before the first refusal.
int allowed(RateLimiter& limiter, const std::string& key, Clock::time_point at) {
  int n = 0;
  while (!limiter.take(key, at) && n < 10000) ++n;
  return n;
}

TEST(RateLimiter, AFreshKeyMayBurstItsWholeAllowance) {
  RateLimiter limiter(6);
  EXPECT_EQ(limiter.limit(), 6);
  EXPECT_EQ(allowed(limiter, "k", t0), 6);
}

TEST(RateLimiter, RetryAfterIsTheSecondsUntilTheNextToken) {
  RateLimiter limiter(6);  // one token every 10 s
  EXPECT_EQ(allowed(limiter, "k", t0), 6);
  EXPECT_EQ(limiter.take("k", t0), 10);
  EXPECT_EQ(limiter.take("k", t0 + seconds(5)), 5);  // half a token back
  EXPECT_EQ(limiter.take("k", t0 + seconds(9)), 1);
  // Never 0 while refused, even a moment before the token is whole.
  EXPECT_EQ(limiter.take("k", t0 + std::chrono::milliseconds(9999)), 1);
  RateLimiter fast(600);  // a token every 0.1 s: still "retry in 1 s", the least Retry-After says
  EXPECT_EQ(allowed(fast, "k", t0), 600);
  EXPECT_EQ(fast.take("k", t0), 1);
}

TEST(RateLimiter, TokensComeBackOverTime) {
  RateLimiter limiter(6);
  EXPECT_EQ(allowed(limiter, "k", t0), 6);
  EXPECT_EQ(allowed(limiter, "k", t0 + seconds(10)), 1);
  EXPECT_EQ(allowed(limiter, "k", t0 + seconds(40)), 3);
  // Refused takes cost nothing: a client retrying early does not push its next token back.
  EXPECT_EQ(limiter.take("k", t0 + seconds(45)), 5);
  EXPECT_EQ(limiter.take("k", t0 + seconds(45)), 5);
  EXPECT_EQ(allowed(limiter, "k", t0 + seconds(50)), 1);
}

TEST(RateLimiter, RefillStopsAtTheAllowance) {
  RateLimiter limiter(6);
  EXPECT_EQ(allowed(limiter, "k", t0), 6);
  EXPECT_EQ(allowed(limiter, "k", t0 + std::chrono::hours(5)), 6);
}

TEST(RateLimiter, KeysAreIndependent) {
  RateLimiter limiter(6);
  EXPECT_EQ(allowed(limiter, "alice", t0), 6);
  EXPECT_TRUE(limiter.take("alice", t0));
  EXPECT_EQ(allowed(limiter, "bob", t0), 6);
  EXPECT_EQ(limiter.take("alice", t0 + seconds(5)), 5);  // bob's events did not touch alice's wait
}

TEST(RateLimiter, ZeroOrNegativeMeansUnlimited) {
  for (int limit : {0, -1}) {
    RateLimiter limiter(limit);
    EXPECT_EQ(allowed(limiter, "k", t0), 10000) << limit;
    EXPECT_FALSE(limiter.wait("k", t0)) << limit;
  }
}

TEST(RateLimiter, WaitSaysWhatTakeWouldWithoutTaking) {
  RateLimiter limiter(6);
  EXPECT_FALSE(limiter.wait("k", t0));  // never seen: a full bucket
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(limiter.wait("k", t0));
  EXPECT_EQ(allowed(limiter, "k", t0), 6);  // all those waits took nothing
  EXPECT_EQ(limiter.wait("k", t0), 10);
  EXPECT_EQ(limiter.wait("k", t0 + seconds(4)), 6);
  EXPECT_FALSE(limiter.wait("k", t0 + seconds(10)));
  EXPECT_FALSE(limiter.wait("k", t0 + seconds(10)));
  EXPECT_EQ(allowed(limiter, "k", t0 + seconds(10)), 1);
}

TEST(RateLimiter, ForgettingIdleKeysNeverRefillsOneEarly) {
  // Buckets idle a minute are dropped (they are full by then); a key seen less than a minute
  // before a prune keeps its state: dropping it would hand it a whole new allowance.
  RateLimiter limiter(6);
  EXPECT_EQ(allowed(limiter, "old", t0), 6);  // prunes at t0
  EXPECT_EQ(allowed(limiter, "recent", t0 + seconds(50)), 6);
  // t0 + 61 s: the next prune. "old" is a minute idle, "recent" 11 s: 1.1 tokens back.
  EXPECT_EQ(allowed(limiter, "recent", t0 + seconds(61)), 1);
  EXPECT_EQ(allowed(limiter, "old", t0 + seconds(61)), 6);
  // Long after, every bucket forgotten or full: each key has its whole allowance again.
  EXPECT_EQ(allowed(limiter, "recent", t0 + seconds(200)), 6);
  EXPECT_EQ(allowed(limiter, "old", t0 + seconds(200)), 6);
}

}  // namespace
}  // namespace rx::hub
