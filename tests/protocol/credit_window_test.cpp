// protocol/credit_window.cpp: the sender's CreditWindow and the receiver's ReceiveCursor, by
// edge cases and by random operations against a model of a few integers.
#include "protocol/credit_window.h"

#include <gtest/gtest.h>

#include <random>

namespace rx::protocol {
namespace {

TEST(CreditWindow, SendsUpToTheWindow) {
  CreditWindow w(100);
  EXPECT_EQ(w.available(), 100u);
  ASSERT_TRUE(w.on_sent(60).ok());
  EXPECT_EQ(w.in_flight(), 60u);
  EXPECT_EQ(w.available(), 40u);
  auto over = w.on_sent(41);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().code, "window_exceeded");
  EXPECT_EQ(w.sent(), 60u);  // unchanged
  ASSERT_TRUE(w.on_sent(40).ok());
  EXPECT_EQ(w.available(), 0u);
}

TEST(CreditWindow, AcksReturnCreditStaleOnesAreIgnoredFutureOnesRefused) {
  CreditWindow w(100, 1000);
  ASSERT_TRUE(w.on_sent(80).ok());
  ASSERT_TRUE(w.on_ack(1050).ok());
  EXPECT_EQ(w.available(), 70u);
  ASSERT_TRUE(w.on_ack(1010).ok());  // late, older ACK
  EXPECT_EQ(w.acked(), 1050u);
  auto bad = w.on_ack(1081);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, "ack_beyond_sent");
  EXPECT_EQ(w.acked(), 1050u);
}

TEST(CreditWindow, RewindAfterReconnect) {
  CreditWindow w(100);
  ASSERT_TRUE(w.on_sent(90).ok());
  ASSERT_TRUE(w.on_ack(50).ok());
  w.rewind(30);  // the peer lost state: resend from 30
  EXPECT_EQ(w.sent(), 30u);
  EXPECT_EQ(w.acked(), 30u);
  EXPECT_EQ(w.available(), 100u);
}

TEST(CreditWindow, ShrinkingTheWindowNeverUnderflows) {
  CreditWindow w(100);
  ASSERT_TRUE(w.on_sent(90).ok());
  w.set_window(50);
  EXPECT_EQ(w.available(), 0u);
  ASSERT_TRUE(w.on_ack(60).ok());
  EXPECT_EQ(w.available(), 20u);
}

TEST(ReceiveCursor, DuplicatesPartialDuplicatesAndGaps) {
  ReceiveCursor c(1000);
  auto a = c.on_data(0, 10);
  EXPECT_EQ(a.skip, 0u);
  EXPECT_EQ(a.gap, 0u);
  a = c.on_data(0, 10);  // full resend
  EXPECT_EQ(a.skip, 10u);
  a = c.on_data(5, 10);  // overlaps 5 bytes
  EXPECT_EQ(a.skip, 5u);
  EXPECT_EQ(c.received(), 15u);
  a = c.on_data(20, 5);  // 5 bytes never came
  EXPECT_EQ(a.gap, 5u);
  EXPECT_EQ(c.received(), 25u);
}

TEST(ReceiveCursor, AcksEveryQuarterWindowOrWhenForced) {
  ReceiveCursor c(1000);  // a quarter is 250
  c.on_data(0, 540);
  c.on_consumed(100);
  EXPECT_FALSE(c.take_ack());  // 100 < 250
  c.on_consumed(300);
  EXPECT_EQ(c.take_ack(), 300u);
  EXPECT_FALSE(c.take_ack());
  c.on_consumed(540);  // caught up, but only 240 since the last ACK: none (the sender has 3/4 of its credit)
  EXPECT_FALSE(c.take_ack());
  EXPECT_EQ(c.take_ack(true), 540u);  // forced, e.g. when the stream ends
  EXPECT_FALSE(c.take_ack(true));
  c.on_consumed(9999);  // clamped to received
  EXPECT_EQ(c.consumed(), 540u);
  c.on_consumed(10);  // never backwards
  EXPECT_EQ(c.consumed(), 540u);
}

TEST(CreditWindow, RandomOperationsMatchTheModel) {
  size_t operations = 0;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    uint32_t win = uint32_t(1 + rng() % 5000);
    CreditWindow w(win);
    uint64_t sent = 0, acked = 0;
    for (int i = 0; i < 3000; ++i, ++operations) {
      int op = int(rng() % 10);
      if (op < 5) {
        size_t n = rng() % (win + 10);
        bool fits = (sent - acked) <= win && n <= win - (sent - acked);
        ASSERT_EQ(w.on_sent(n).ok(), fits);
        if (fits) sent += n;
      } else if (op < 9) {
        uint64_t off = rng() % (sent + 20);
        bool ok = off <= sent;
        ASSERT_EQ(w.on_ack(off).ok(), ok);
        if (ok) acked = std::max(acked, off);
      } else {
        uint64_t off = rng() % (sent + 1);
        w.rewind(off);
        sent = acked = off;
      }
      ASSERT_EQ(w.sent(), sent);
      ASSERT_EQ(w.acked(), acked);
      ASSERT_EQ(w.available(), sent - acked >= win ? 0 : win - (sent - acked));
    }
  }
  EXPECT_GE(operations, 10000u);
}

TEST(ReceiveCursor, RandomOperationsMatchTheModel) {
  size_t operations = 0;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed * 31);
    uint32_t win = uint32_t(4 + rng() % 4000);
    ReceiveCursor c(win);
    uint64_t received = 0, consumed = 0, acked = 0;
    for (int i = 0; i < 3000; ++i, ++operations) {
      int op = int(rng() % 10);
      if (op < 5) {
        // resends, overlaps, exact continuations and gaps
        uint64_t off = received > 50 ? received - 50 + rng() % 100 : rng() % 100;
        size_t len = rng() % 80;
        auto a = c.on_data(off, len);
        uint64_t end = off + len;
        size_t skip = end <= received ? len : (off < received ? size_t(received - off) : 0);
        uint64_t gap = end > received && off > received ? off - received : 0;
        ASSERT_EQ(a.skip, skip);
        ASSERT_EQ(a.gap, gap);
        if (gap) consumed = std::max(consumed, off);
        received = std::max(received, end);
      } else if (op < 8) {
        uint64_t off = rng() % (received + 30);
        c.on_consumed(off);
        consumed = std::max(consumed, std::min(off, received));
      } else {
        bool force = rng() % 4 == 0;
        auto ack = c.take_ack(force);
        bool due = consumed > acked && (consumed - acked >= win / 4 || force);
        ASSERT_EQ(ack.has_value(), due);
        if (due) {
          ASSERT_EQ(*ack, consumed);
          acked = consumed;
        }
      }
      ASSERT_EQ(c.received(), received);
      ASSERT_EQ(c.consumed(), consumed);
      ASSERT_EQ(c.acked(), acked);
    }
  }
  EXPECT_GE(operations, 10000u);
}

}  // namespace
}  // namespace rx::protocol
