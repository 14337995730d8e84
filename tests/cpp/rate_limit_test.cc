#include "rlab/policy/rate_limit.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlab/core/clock.h"

namespace rlab::rate_limit_test {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kS = kNsPerSecond;

RateLimiterParams Config(RateLimitMode mode, int64_t permits, int64_t period_ns, int64_t burst = 1,
                         int64_t max_keys = 100) {
  RateLimiterParams c;
  c.mode = mode;
  c.permits = permits;
  c.period_ns = period_ns;
  c.burst = burst;
  c.max_keys = max_keys;
  return c;
}

// The parameters' ranges hold by construction (ToRateLimiterParams from a RateLimitConfig its
// field table validated): tests/cpp/limits_test.cc, RateLimitConfigTest.ParamsInRangeAtExtremes.
TEST(RateLimitTest, ModeNames) {
  EXPECT_FALSE(ParseRateLimitMode("leaky").ok());
  EXPECT_EQ(*ParseRateLimitMode("bursty"), RateLimitMode::kBursty);
}

TEST(SmoothRateTest, EvenlySpacedPermits) {
  RateLimiter r(Config(RateLimitMode::kSmooth, 10, kS));  // one every 100 ms
  EXPECT_TRUE(r.TryAcquire(0));
  EXPECT_FALSE(r.TryAcquire(0));
  EXPECT_FALSE(r.TryAcquire(99 * kMs));
  EXPECT_TRUE(r.TryAcquire(100 * kMs));
  // Reserve: the next permit is at 200 ms, 100 ms away.
  EXPECT_THAT(r.Reserve(100 * kMs, kS), Optional(100 * kMs));
  // The one after is at 300 ms: a wait of 200 ms is over a 150 ms bound, and changes nothing.
  EXPECT_EQ(r.Reserve(100 * kMs, 150 * kMs), std::nullopt);
  EXPECT_THAT(r.Reserve(100 * kMs, 200 * kMs), Optional(200 * kMs));
  const RateLimitStats s = r.Stats();
  EXPECT_EQ(s.granted, 2);
  EXPECT_EQ(s.reserved, 2);
  EXPECT_EQ(s.rejected, 3);
  // Idle time saves nothing beyond the burst of 1.
  EXPECT_TRUE(r.TryAcquire(10 * kS));
  EXPECT_FALSE(r.TryAcquire(10 * kS));
}

TEST(SmoothRateTest, BurstSavedUpWhileIdle) {
  RateLimiter r(Config(RateLimitMode::kSmooth, 10, kS, /*burst=*/3));
  EXPECT_EQ(r.Available(0), 3);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(r.TryAcquire(0)) << i;
  EXPECT_FALSE(r.TryAcquire(0));
  EXPECT_EQ(r.Available(0), 0);
  EXPECT_EQ(r.Available(100 * kMs), 1);
  EXPECT_TRUE(r.TryAcquire(100 * kMs));
  EXPECT_FALSE(r.TryAcquire(100 * kMs));
  EXPECT_EQ(r.Available(10 * kS), 3);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(r.TryAcquire(10 * kS));
  EXPECT_FALSE(r.TryAcquire(10 * kS));
}

TEST(SmoothRateTest, LongRunRateIsExact) {
  // Offered every 1 ms for 10 s at 10/s with a burst of 5: 5 + 10 * 10 permits.
  RateLimiter r(Config(RateLimitMode::kSmooth, 10, kS, 5));
  int granted = 0;
  for (int64_t t = 0; t <= 10 * kS; t += kMs) granted += r.TryAcquire(t) ? 1 : 0;
  EXPECT_EQ(granted, 5 + 100);
}

TEST(BurstyRateTest, RefreshPerPeriodWithoutCarryOver) {
  RateLimiter r(Config(RateLimitMode::kBursty, 3, kS));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(r.TryAcquire(0));
  EXPECT_FALSE(r.TryAcquire(999 * kMs));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(r.TryAcquire(kS)) << "a new period: all 3 again";
  EXPECT_EQ(r.Available(7 * kS + 1), 3) << "no carry-over from idle periods";
}

TEST(BurstyRateTest, ReservationsBorrowFromLaterPeriods) {
  RateLimiter r(Config(RateLimitMode::kBursty, 3, kS));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(r.TryAcquire(0));
  // Resilience4j's arithmetic: 800 ms to the next period, whose 3 permits are then owed.
  for (int i = 0; i < 3; ++i) EXPECT_THAT(r.Reserve(200 * kMs, kS), Optional(800 * kMs)) << i;
  // The 4th reservation needs one full period more: 1.8 s.
  EXPECT_EQ(r.Reserve(200 * kMs, kS), std::nullopt);
  EXPECT_THAT(r.Reserve(200 * kMs, 2 * kS), Optional(1800 * kMs));
  EXPECT_EQ(r.Available(kS), -1) << "period 1 refills 3, all 4 owed";
  EXPECT_FALSE(r.TryAcquire(kS));
  EXPECT_EQ(r.Available(2 * kS), 2);
  EXPECT_TRUE(r.TryAcquire(2 * kS));
}

TEST(KeyedRateTest, PerKeyLimitsAndLruEviction) {
  KeyedRateLimiter r(Config(RateLimitMode::kBursty, 1, kS, 1, /*max_keys=*/2));
  EXPECT_TRUE(r.TryAcquire("a", 0));
  EXPECT_FALSE(r.TryAcquire("a", 0));
  EXPECT_TRUE(r.TryAcquire("b", 0)) << "another tenant has its own allowance";
  EXPECT_FALSE(r.TryAcquire("a", 1));  // a is now the most recently used
  EXPECT_TRUE(r.TryAcquire("c", 1));   // evicts b, the least recently used
  RateLimitStats s = r.Stats();
  EXPECT_EQ(s.keys, 2);
  EXPECT_EQ(s.evictions, 1);
  EXPECT_FALSE(r.TryAcquire("a", 2)) << "a was kept";
  EXPECT_TRUE(r.TryAcquire("b", 2)) << "b was forgotten: a fresh allowance (evicts c)";
  s = r.Stats();
  EXPECT_EQ(s.keys, 2);
  EXPECT_EQ(s.evictions, 2);
}

TEST(RateLimitTest, NeverExceededUnderThreads) {
  for (RateLimitMode mode : {RateLimitMode::kSmooth, RateLimitMode::kBursty}) {
    RateLimiter r(Config(mode, 50, kS, 50));
    std::atomic<int> granted{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 1000; ++i) granted += r.TryAcquire(kS / 2) ? 1 : 0;
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(granted.load(), 50) << RateLimitModeName(mode);
    const RateLimitStats s = r.Stats();
    EXPECT_EQ(s.granted + s.rejected, 4000);
  }
}

}  // namespace
}  // namespace rlab::rate_limit_test
