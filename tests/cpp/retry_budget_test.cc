#include "rlab/policy/retry_budget.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/core/rng.h"

namespace rlab::retry_budget_test {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kS = kNsPerSecond;

TokenBucketBudget MakeBucket(double max_tokens, double token_ratio) {
  return TokenBucketBudget(TokenBucketConfig{max_tokens, token_ratio});
}

void Fail(TokenBucketBudget& b, int n = 1) {
  for (int i = 0; i < n; ++i) b.OnOutcome(0, /*success=*/false, /*retryable_failure=*/true);
}

void Succeed(TokenBucketBudget& b, int n = 1) {
  for (int i = 0; i < n; ++i) b.OnOutcome(0, /*success=*/true, /*retryable_failure=*/false);
}

TEST(TokenBucketBudgetTest, StartsFullWithIntegerThousandths) {
  TokenBucketBudget b(TokenBucketConfig{});
  EXPECT_EQ(b.max_milli_tokens(), 10'000);
  EXPECT_EQ(b.milli_token_ratio(), 100);
  EXPECT_EQ(b.threshold_milli_tokens(), 5'000);
  EXPECT_EQ(b.milli_tokens(), 10'000);
  EXPECT_DOUBLE_EQ(b.tokens(), 10.0);
  EXPECT_TRUE(b.TryAcquireRetry(0));
}

TEST(TokenBucketBudgetTest, A6SequenceMax10Ratio0_1) {
  TokenBucketBudget b = MakeBucket(10, 0.1);
  // Each retryable failure takes one token; retries need tokens > 5.
  Fail(b, 4);
  EXPECT_EQ(b.milli_tokens(), 6'000);
  EXPECT_TRUE(b.TryAcquireRetry(0));
  Fail(b);
  EXPECT_EQ(b.milli_tokens(), 5'000);
  EXPECT_FALSE(b.TryAcquireRetry(0)) << "exactly at the threshold: A6 requires strictly above";
  Fail(b);
  EXPECT_EQ(b.milli_tokens(), 4'000);
  EXPECT_FALSE(b.TryAcquireRetry(0));
  // Successes add exactly 0.1 each: 4.0 -> 5.0 after ten, still refused; 5.1 after eleven.
  Succeed(b, 10);
  EXPECT_EQ(b.milli_tokens(), 5'000);
  EXPECT_FALSE(b.TryAcquireRetry(0));
  Succeed(b);
  EXPECT_EQ(b.milli_tokens(), 5'100);
  EXPECT_TRUE(b.TryAcquireRetry(0));
  // TryAcquireRetry takes nothing.
  EXPECT_EQ(b.milli_tokens(), 5'100);
  const TokenBucketBudgetSnapshot snap = b.Snapshot();
  EXPECT_EQ(snap.retries_allowed, 2);
  EXPECT_EQ(snap.retries_refused, 3);
}

// gRFC A6 allows any positive tokenRatio; gRPC's own throttling tests use 1.6.
TEST(TokenBucketBudgetTest, A6RatioAboveOne) {
  ASSERT_TRUE(Validate(TokenBucketConfig{10, 1.6}).ok());
  TokenBucketBudget b = MakeBucket(10, 1.6);
  EXPECT_EQ(b.milli_token_ratio(), 1'600);
  Fail(b, 6);
  EXPECT_EQ(b.milli_tokens(), 4'000);
  EXPECT_FALSE(b.TryAcquireRetry(0));
  Succeed(b);
  EXPECT_EQ(b.milli_tokens(), 5'600);
  EXPECT_TRUE(b.TryAcquireRetry(0));
  Succeed(b, 3);
  EXPECT_EQ(b.milli_tokens(), 10'000) << "capped at max_tokens";
}

TEST(TokenBucketBudgetTest, ClampsToZeroAndMax) {
  TokenBucketBudget b = MakeBucket(3, 0.5);
  Succeed(b, 5);
  EXPECT_EQ(b.milli_tokens(), 3'000);
  Fail(b, 10);
  EXPECT_EQ(b.milli_tokens(), 0);
  Succeed(b);
  EXPECT_EQ(b.milli_tokens(), 500);
  // Threshold 1.5 tokens: 1.5 refused, 2.0 allowed.
  Succeed(b, 2);
  EXPECT_EQ(b.milli_tokens(), 1'500);
  EXPECT_FALSE(b.TryAcquireRetry(0));
  Succeed(b);
  EXPECT_TRUE(b.TryAcquireRetry(0));
}

TEST(TokenBucketBudgetTest, IgnoresRequestsAndNonRetryableFailures) {
  TokenBucketBudget b = MakeBucket(10, 0.1);
  Fail(b, 2);
  for (int i = 0; i < 100; ++i) b.OnRequest(i * kS);
  b.OnOutcome(0, /*success=*/false, /*retryable_failure=*/false);
  EXPECT_EQ(b.milli_tokens(), 8'000);
  // Both flags: success wins.
  b.OnOutcome(0, true, true);
  EXPECT_EQ(b.milli_tokens(), 8'100);
}

TEST(TokenBucketBudgetTest, RoundsToThousandths) {
  // 0.57 * 1000 is 569.99999999999989 as a double: rounding, not truncation, keeps 570.
  EXPECT_EQ(MakeBucket(10, 0.57).milli_token_ratio(), 570);
  EXPECT_EQ(MakeBucket(10, 0.0005).milli_token_ratio(), 1);
  EXPECT_EQ(MakeBucket(10, 0.1234).milli_token_ratio(), 123);
  EXPECT_EQ(MakeBucket(0.003, 1).max_milli_tokens(), 3);
  EXPECT_EQ(MakeBucket(0.003, 1).threshold_milli_tokens(), 1);  // integer halving, as in C-core
  EXPECT_EQ(MakeBucket(1000, 1).max_milli_tokens(), 1'000'000);
}

TEST(TokenBucketBudgetTest, ValidationNamesTheParameter) {
  auto message = [](double max_tokens, double ratio) {
    return std::string(Validate(TokenBucketConfig{max_tokens, ratio}).message());
  };
  EXPECT_TRUE(Validate(TokenBucketConfig{1000, 1}).ok());
  EXPECT_THAT(message(0, 0.1), HasSubstr("max_tokens must be a finite number in (0, 1000]"));
  EXPECT_THAT(message(1000.5, 0.1), HasSubstr("max_tokens"));
  EXPECT_THAT(message(std::nan(""), 0.1), HasSubstr("max_tokens"));
  EXPECT_THAT(message(INFINITY, 0.1), HasSubstr("max_tokens"));
  EXPECT_THAT(message(0.0001, 0.1), HasSubstr("max_tokens must be at least 0.0005"));
  EXPECT_THAT(message(10, 0), HasSubstr("token_ratio must be a finite number in (0, 1000]"));
  EXPECT_THAT(message(10, 1000.5), HasSubstr("token_ratio"));
  EXPECT_THAT(message(10, -INFINITY), HasSubstr("token_ratio"));
  EXPECT_THAT(message(10, 0.0004), HasSubstr("token_ratio must be at least 0.0005"));
  EXPECT_FALSE(TokenBucketBudget::Create(TokenBucketConfig{0, 0.1}).ok());
  EXPECT_TRUE(TokenBucketBudget::Create(TokenBucketConfig{}).ok());
}

TEST(TokenBucketBudgetTest, ManyThreadsKeepTokensInRange) {
  TokenBucketBudget b = MakeBucket(5, 0.3);
  constexpr int kThreads = 8;
  constexpr int kOps = 20'000;
  std::atomic<bool> out_of_range{false};
  std::atomic<int64_t> acquires{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      RandomStream rng(Rng::DeriveSeed(t, "bucket"));
      for (int i = 0; i < kOps; ++i) {
        const double u = rng.Uniform01();
        if (u < 0.4) {
          b.OnOutcome(i, false, true);
        } else if (u < 0.8) {
          b.OnOutcome(i, true, false);
        } else {
          b.TryAcquireRetry(i);
          acquires.fetch_add(1, std::memory_order_relaxed);
        }
        const int64_t m = b.milli_tokens();
        if (m < 0 || m > 5'000) out_of_range = true;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_FALSE(out_of_range);
  const TokenBucketBudgetSnapshot snap = b.Snapshot();
  EXPECT_EQ(snap.retries_allowed + snap.retries_refused, acquires.load());
  EXPECT_GE(snap.milli_tokens, 0);
  EXPECT_LE(snap.milli_tokens, 5'000);
  EXPECT_EQ(snap.milli_tokens % 100, 0) << "sums of 1000s and 300s, clamped at 0 and 5000";
}

RatioBudget MakeRatio(double ratio, double window_s, double min_per_s, int buckets = 10) {
  return RatioBudget(RatioBudgetConfig{ratio, SecondsToNs(window_s), min_per_s, buckets});
}

TEST(RatioBudgetTest, FloorAllowsRetriesWithoutRequests) {
  RatioBudget b = MakeRatio(0.1, 10, 1.0);  // floor: 1/s x 10 s = 10 retries
  EXPECT_DOUBLE_EQ(b.floor_retries(), 10.0);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(b.TryAcquireRetry(i * kS / 10)) << i;
  EXPECT_FALSE(b.TryAcquireRetry(kS));
  // Ten requests earn one more retry (0.1 each), on top of the floor.
  for (int i = 0; i < 10; ++i) b.OnRequest(kS);
  EXPECT_TRUE(b.TryAcquireRetry(kS));
  EXPECT_FALSE(b.TryAcquireRetry(kS));
  const RatioBudgetSnapshot snap = b.Snapshot(kS);
  EXPECT_EQ(snap.requests, 10);
  EXPECT_EQ(snap.retries, 11);
  EXPECT_DOUBLE_EQ(snap.allowance, 11.0);
  EXPECT_EQ(snap.retries_refused, 2);
}

TEST(RatioBudgetTest, RatioOfRequestsWithoutFloor) {
  RatioBudget b = MakeRatio(0.29, 10, 0.0);
  EXPECT_FALSE(b.TryAcquireRetry(0)) << "no requests, no floor: nothing to retry with";
  for (int i = 0; i < 100; ++i) b.OnRequest(0);
  // 0.29 * 100 is 28.999999999999996 as a double; the 29th retry must still be allowed.
  for (int i = 0; i < 29; ++i) EXPECT_TRUE(b.TryAcquireRetry(0)) << i;
  EXPECT_FALSE(b.TryAcquireRetry(0));
}

TEST(RatioBudgetTest, WindowExpiry) {
  RatioBudget b = MakeRatio(0.5, 10, 0.0);  // 1 s buckets
  for (int i = 0; i < 10; ++i) b.OnRequest(0);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.TryAcquireRetry(0));
  EXPECT_FALSE(b.TryAcquireRetry(0));
  for (int i = 0; i < 10; ++i) b.OnRequest(5 * kS);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.TryAcquireRetry(5 * kS));
  EXPECT_FALSE(b.TryAcquireRetry(5 * kS));
  // At 10.5 s the bucket of t=0 has expired: 10 requests, 5 retries left in the window.
  RatioBudgetSnapshot snap = b.Snapshot(10 * kS + kS / 2);
  EXPECT_EQ(snap.requests, 10);
  EXPECT_EQ(snap.retries, 5);
  EXPECT_FALSE(b.TryAcquireRetry(10 * kS + kS / 2));
  // At 15.5 s everything has expired.
  snap = b.Snapshot(15 * kS + kS / 2);
  EXPECT_EQ(snap.requests, 0);
  EXPECT_EQ(snap.retries, 0);
  b.OnRequest(16 * kS);
  EXPECT_FALSE(b.TryAcquireRetry(16 * kS)) << "0.5 retries earned: not a whole one";
  b.OnRequest(16 * kS);
  EXPECT_TRUE(b.TryAcquireRetry(16 * kS));
  EXPECT_FALSE(b.TryAcquireRetry(16 * kS));
}

TEST(RatioBudgetTest, FractionalFloor) {
  RatioBudget b = MakeRatio(0.0, 3, 0.5);  // floor 1.5: one retry per window
  EXPECT_TRUE(b.TryAcquireRetry(0));
  EXPECT_FALSE(b.TryAcquireRetry(0));
  EXPECT_TRUE(b.TryAcquireRetry(4 * kS));
}

TEST(RatioBudgetTest, OutcomesDoNotMatter) {
  RatioBudget b = MakeRatio(1.0, 10, 0.0);
  b.OnRequest(0);
  for (int i = 0; i < 10; ++i) b.OnOutcome(0, false, true);
  EXPECT_TRUE(b.TryAcquireRetry(0));
  EXPECT_FALSE(b.TryAcquireRetry(0));
}

TEST(RatioBudgetTest, ValidationNamesTheParameter) {
  auto message = [](RatioBudgetConfig c) { return std::string(Validate(c).message()); };
  RatioBudgetConfig ok;
  EXPECT_TRUE(Validate(ok).ok());
  RatioBudgetConfig c = ok;
  c.ratio = -0.1;
  EXPECT_THAT(message(c), HasSubstr("ratio must be a finite number in [0, 1000], got -0.1"));
  c = ok;
  c.ratio = std::nan("");
  EXPECT_THAT(message(c), HasSubstr("ratio"));
  c = ok;
  c.window_ns = 0;
  EXPECT_THAT(message(c), HasSubstr("window must be"));
  c = ok;
  c.min_retries_per_s = -1;
  EXPECT_THAT(message(c), HasSubstr("min_retries_per_second must be"));
  c = ok;
  c.min_retries_per_s = INFINITY;
  EXPECT_THAT(message(c), HasSubstr("min_retries_per_second must be"));
  c = ok;
  c.num_buckets = 0;
  EXPECT_THAT(message(c), HasSubstr("buckets must be an integer in [1, 1000]"));
  c = ok;
  c.window_ns = 5;
  c.num_buckets = 10;
  EXPECT_THAT(message(c), HasSubstr("buckets must be at most window"));
  EXPECT_EQ(message(c), "buckets must be at most window in nanoseconds (5), got 10");
  EXPECT_FALSE(RatioBudget::Create(c).ok());
  c.num_buckets = 5;  // one nanosecond per bucket
  EXPECT_TRUE(Validate(c).ok());
}

TEST(RatioBudgetTest, ManyThreadsNeverExceedTheAllowance) {
  RatioBudget b = MakeRatio(0.2, 10, 1.0);  // floor 10
  constexpr int kThreads = 8;
  constexpr int kOps = 10'000;
  std::atomic<int64_t> allowed{0}, requests{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      RandomStream rng(Rng::DeriveSeed(t, "ratio"));
      for (int i = 0; i < kOps; ++i) {
        if (rng.Bernoulli(0.5)) {
          b.OnRequest(kS);
          requests.fetch_add(1, std::memory_order_relaxed);
        } else if (b.TryAcquireRetry(kS)) {
          allowed.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  const RatioBudgetSnapshot snap = b.Snapshot(kS);
  EXPECT_EQ(snap.requests, requests.load());
  EXPECT_EQ(snap.retries, allowed.load());
  EXPECT_LE(static_cast<double>(snap.retries), 0.2 * static_cast<double>(snap.requests) + 10.0);
  EXPECT_EQ(snap.retries_refused + snap.retries, kThreads * kOps - snap.requests);
}

}  // namespace
}  // namespace rlab::retry_budget_test
