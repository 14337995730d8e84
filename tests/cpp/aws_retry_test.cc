// Tests of the AWS SDK retry modes against botocore's published unit tests
// (boto/botocore tests/unit/retries/test_quota.py, test_standard.py, test_throttling.py,
// test_bucket.py, test_adaptive.py), transcribed into tables.
#include "rlab/policy/aws_retry.h"

#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <vector>

namespace rlab::aws_retry_test {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

// ---- quota.py (tests/unit/retries/test_quota.py, RetryQuota(50)) ----------------------------

TEST(RetryQuotaTest, BotocoreVectors) {
  RetryQuota q(50);
  EXPECT_TRUE(q.Acquire(5));  // test_can_acquire_amount
  EXPECT_EQ(q.available(), 45);
  q.Release(5);  // test_can_release_amount
  EXPECT_EQ(q.available(), 50);
  EXPECT_TRUE(q.Acquire(5));  // test_cant_exceed_max_capacity
  q.Release(10);
  EXPECT_EQ(q.available(), 50);
  q.Release(10);  // test_noop_if_at_max_capacity
  EXPECT_EQ(q.available(), 50);
  EXPECT_TRUE(q.Acquire(49));  // test_cant_go_below_zero
  EXPECT_EQ(q.available(), 1);
  EXPECT_FALSE(q.Acquire(10));
  EXPECT_EQ(q.available(), 1);
}

// ---- standard.py ExponentialBackoff (test_standard.py TestExponentialBackoff) ---------------

TEST(AwsBackoffTest, RangeWithDrawOne) {
  // test_range_of_exponential_backoff: random = lambda: 1, attempts 1..9.
  const std::vector<double> expected_s = {1, 2, 4, 8, 16, 20, 20, 20, 20};
  for (int attempt = 1; attempt <= 9; ++attempt) {
    EXPECT_EQ(AwsBackoffNs(attempt, 1.0, 1.0, 20.0),
              static_cast<int64_t>(expected_s[attempt - 1] * kSecond))
        << attempt;
  }
}

TEST(AwsBackoffTest, FullJitterBounds) {
  // test_exponential_backoff_with_jitter: attempt 3 stays within [0, 4] s.
  for (double draw : {0.0, 0.25, 0.5, 0.999999}) {
    const int64_t d = AwsBackoffNs(3, draw, 1.0, 20.0);
    EXPECT_GE(d, 0);
    EXPECT_LE(d, 4 * kSecond);
    EXPECT_EQ(d, std::llround(draw * 4e9));
  }
  EXPECT_EQ(AwsBackoffNs(100, 0.5, 1.0, 20.0), 10 * kSecond);  // capped, no overflow
  EXPECT_EQ(AwsBackoffNs(2, 0.5, 0.05, 20.0), 50'000'000);     // scaled base
}

// ---- throttling.py CubicCalculator (test_throttling.py) --------------------------------------

TEST(CubicCalculatorTest, StartingParams) {
  CubicCalculator cubic(10.0, 0.0);
  EXPECT_NEAR(cubic.k(), 1.9574338205844317, 1e-12);
}

TEST(CubicCalculatorTest, SuccessResponsesUntilMaxHit) {
  CubicCalculator cubic(10.0, 0.0);
  const double k = cubic.k();
  EXPECT_LE(cubic.SuccessReceived(k / 3.0), 10.0);
  EXPECT_LE(cubic.SuccessReceived(k / 2.0), 10.0);
  EXPECT_LE(cubic.SuccessReceived(k / 1.1), 10.0);
  EXPECT_NEAR(cubic.SuccessReceived(k), 10.0, 1e-7);
  EXPECT_GE(cubic.SuccessReceived(k * 1.1), 10.0);
  EXPECT_GE(cubic.SuccessReceived(k * 2.0), 10.0);
}

TEST(CubicCalculatorTest, ErrorResponseDecreasesRateByBeta) {
  CubicCalculator cubic(10.0, 0.0, 0.4, 0.7);
  EXPECT_NEAR(cubic.ErrorReceived(8.0, 1.0), 8.0 * 0.7, 1e-12);
  EXPECT_EQ(cubic.w_max(), 8.0);
  EXPECT_NEAR(cubic.k(), 1.8171205928321397, 1e-12);
  EXPECT_EQ(cubic.last_fail_s(), 1.0);
}

TEST(CubicCalculatorTest, TZeroMatchesBetaDecrease) {
  CubicCalculator cubic(10.0, 0.0, 0.4, 0.6);
  EXPECT_EQ(cubic.ErrorReceived(10.0, 1.0), 6.0);
  EXPECT_NEAR(cubic.SuccessReceived(1.0), 6.0, 1e-7);
}

// ---- bucket.py TokenBucket (test_bucket.py; created at t=0 with min_rate 0.1) ----------------

TEST(ClientTokenBucketTest, CanAcquireAmount) {
  ClientTokenBucket b(10.0, 0.0, 0.1);
  for (double t : {1.0, 2.0, 3.0, 4.0, 5.0}) EXPECT_TRUE(b.TryAcquire(t)) << t;
}

TEST(ClientTokenBucketTest, CanChangeMaxCapacityLower) {
  ClientTokenBucket b(10.0, 0.0, 0.1);
  for (double t : {1.0, 2.0, 3.0, 4.0, 5.0}) EXPECT_TRUE(b.TryAcquire(t)) << t;
  b.SetMaxRate(5.0, 1.0);
  EXPECT_EQ(b.max_capacity(), 1.0);
  for (double t : {6.0, 7.0, 8.0, 9.0, 10.0}) EXPECT_TRUE(b.TryAcquire(t)) << t;
}

TEST(ClientTokenBucketTest, MaxCapacityIsAtLeastOne) {
  ClientTokenBucket b(10.0, 0.0, 0.1);
  b.SetMaxRate(1.0, 0.5);
  EXPECT_EQ(b.max_rate(), 0.5);
  EXPECT_EQ(b.max_capacity(), 1.0);
}

TEST(ClientTokenBucketTest, NonBlockingAcquireFails) {
  ClientTokenBucket b(10.0, 0.0, 0.1);
  EXPECT_FALSE(b.TryAcquire(1.0, 100.0));
  EXPECT_EQ(b.available(), 10.0);  // nothing taken
}

TEST(ClientTokenBucketTest, CanRetrieveAtMaxSendRate) {
  ClientTokenBucket b(10.0, 0.0, 0.1);
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(b.TryAcquire(1.0 + 0.1 * i)) << i;
}

TEST(ClientTokenBucketTest, AcquireAnswersTheWaitWhenEmpty) {
  // test_acquiring_blocks_when_capacity_reached: botocore sleeps 0.05 s at t=0.15, wakes at 0.2.
  ClientTokenBucket b(10.0, 0.0, 0.1);
  EXPECT_TRUE(b.TryAcquire(0.1));
  EXPECT_EQ(b.available(), 0.0);
  const std::optional<double> wait = b.Acquire(0.15, 60.0);
  ASSERT_TRUE(wait.has_value());
  EXPECT_NEAR(*wait, 0.05, 1e-12);
  b.Refill(0.2);
  EXPECT_NEAR(b.available(), 0.0, 1e-12);
  EXPECT_TRUE(b.TryAcquire(0.300001));
}

TEST(ClientTokenBucketTest, WaitOverTheBoundIsRefusedAndChangesNothing) {
  ClientTokenBucket b(1.0, 0.0, 0.5);
  EXPECT_FALSE(b.Acquire(0.0, 0.5).has_value());  // 1 token at 1/s: 1 s > 0.5 s
  EXPECT_EQ(b.available(), 0.0);
  EXPECT_EQ(b.Acquire(0.0, 1.0), std::optional<double>(1.0));
  EXPECT_EQ(b.available(), -1.0);
  EXPECT_EQ(b.Acquire(0.0, 10.0), std::optional<double>(2.0));  // queued behind the first
}

TEST(ClientTokenBucketTest, RateCantGoBelowMin) {
  ClientTokenBucket b(1.0, 0.0, 0.2);
  b.SetMaxRate(1.0, 0.1);
  EXPECT_EQ(b.max_rate(), 0.2);
  EXPECT_EQ(b.max_capacity(), 1.0);
}

// ---- adaptive.py RateClocker (test_adaptive.py TestRateClocker; created at t=0) --------------

TEST(RateClockerTest, InitialRateIsZeroAndFirstBucket) {
  RateClocker c(0.0);
  EXPECT_EQ(c.measured_rate(), 0.0);
  EXPECT_EQ(c.Record(1.0), 0.8);  // 1 * 0.8 + 0 * 0.2
}

TEST(RateClockerTest, MeasuresConstantRate) {
  RateClocker c(0.0);
  for (int t = 1; t <= 20; ++t) c.Record(t);
  EXPECT_NEAR(c.measured_rate(), 1.0, 1e-7);
}

TEST(RateClockerTest, SmoothingFavoursRecentWeights) {
  RateClocker c(0.0);
  for (double t : {1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0}) c.Record(t);
  EXPECT_GE(c.measured_rate(), 1.99);
  EXPECT_LE(c.measured_rate(), 2.0);
  c.Record(14.0);
  EXPECT_GE(c.measured_rate(), 0.1);
  EXPECT_LE(c.measured_rate(), 2.0);
}

TEST(RateClockerTest, NoopWhenDeltaTIsZero) {
  RateClocker c(0.0);
  for (double t : {1.0, 1.0, 1.0, 2.0, 3.0}) c.Record(t);
  EXPECT_GE(c.measured_rate(), 1.0);
}

TEST(RateClockerTest, TimesAreGroupedPerBucket) {
  RateClocker c(0.0);
  for (double t : {0.1, 0.2, 0.3, 0.4, 0.49}) c.Record(t);
  EXPECT_EQ(c.measured_rate(), 0.0);
  c.Record(0.5);
  EXPECT_EQ(c.measured_rate(), 12 * 0.8);
}

// ---- adaptive.py ClientRateLimiter (test_adaptive.py TestClientRateLimiter, with the real
// collaborators instead of mocks) --------------------------------------------------------------

TEST(ClientRateLimiterTest, BucketOnlyUsedOnceEnabledByThrottling) {
  ClientRateLimiter limiter({}, 0.0);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(limiter.OnSendingRequest(0.0, 60.0), 0.0);
  EXPECT_FALSE(limiter.enabled());
  limiter.OnReceivingResponse(0.1, /*throttling=*/false);
  EXPECT_FALSE(limiter.enabled());
  limiter.OnReceivingResponse(0.2, /*throttling=*/true);
  EXPECT_TRUE(limiter.enabled());
}

TEST(ClientRateLimiterTest, ThrottlingCutsRateToBetaOfMeasured) {
  ClientRateLimiter limiter({}, 0.0);
  // 10 requests per half second for 5 s: measured rate settles at 20/s.
  for (int i = 0; i < 100; ++i) limiter.OnReceivingResponse(i / 20.0, false);
  const double t = 5.0;
  const double measured = limiter.clocker().measured_rate();
  EXPECT_NEAR(measured, 20.0, 1e-3);
  limiter.OnReceivingResponse(t, /*throttling=*/true);
  // CUBIC: new rate = beta x measured (not yet enabled: the measured rate is used); the cap at
  // 2x measured does not bind. The bucket's rate is the new rate.
  EXPECT_NEAR(limiter.bucket().max_rate(), 0.7 * limiter.clocker().measured_rate(), 1e-9);
  EXPECT_NEAR(limiter.cubic().w_max(), limiter.clocker().measured_rate(), 1e-9);
}

TEST(ClientRateLimiterTest, MaxRateCapsAtTwiceMeasured) {
  // test_max_rate_cant_exceed_20_percent_max: on success the CUBIC rate is capped at 2x the
  // measured rate. Long after the last failure the curve is far above it.
  ClientRateLimiter limiter({}, 0.0);
  limiter.OnReceivingResponse(0.6, false);  // measured: 1 / 0.5 s x 0.8 = 1.6
  EXPECT_NEAR(limiter.clocker().measured_rate(), 1.6, 1e-12);
  limiter.OnReceivingResponse(100.0, false);
  const double measured = limiter.clocker().measured_rate();
  EXPECT_NEAR(limiter.bucket().max_rate(), std::max(0.5, 2.0 * measured), 1e-9);
}

// ---- The policy ---------------------------------------------------------------------------

AwsRetryConfig Standard() { return AwsRetryConfig{}; }

TEST(AwsRetryPolicyTest, ClassifiesOutcomes) {
  EXPECT_EQ(ClassifyAwsOutcome(Outcome::Success()), AwsErrorKind::kSuccess);
  EXPECT_EQ(ClassifyAwsOutcome(Outcome::Of(OutcomeKind::kTimeout)), AwsErrorKind::kTimeout);
  EXPECT_EQ(ClassifyAwsOutcome(Outcome::Of(OutcomeKind::kConnectionReset)),
            AwsErrorKind::kTransient);
  for (int status : {408, 500, 502, 503, 504}) {
    EXPECT_EQ(ClassifyAwsOutcome(Outcome::Http(status)), AwsErrorKind::kTransient) << status;
  }
  EXPECT_EQ(ClassifyAwsOutcome(Outcome::Http(429)), AwsErrorKind::kThrottling);
  for (int status : {400, 403, 404, 501}) {
    EXPECT_EQ(ClassifyAwsOutcome(Outcome::Http(status)), AwsErrorKind::kPermanent) << status;
  }
  EXPECT_EQ(ClassifyAwsOutcome(Outcome::Of(OutcomeKind::kError)), AwsErrorKind::kPermanent);
  for (OutcomeKind k :
       {OutcomeKind::kCancelled, OutcomeKind::kDeadlineExceeded, OutcomeKind::kBreakerOpen,
        OutcomeKind::kBulkheadFull, OutcomeKind::kThrottled}) {
    EXPECT_EQ(ClassifyAwsOutcome(Outcome::Of(k)), AwsErrorKind::kGaveUp);
  }
  for (const char* name : {"success", "transient", "timeout", "throttling", "permanent"}) {
    ASSERT_TRUE(ParseAwsErrorKind(name).ok());
    EXPECT_EQ(AwsErrorKindName(*ParseAwsErrorKind(name)), name);
  }
  EXPECT_FALSE(ParseAwsErrorKind("nope").ok());
}

// test_standard.py TestRetryQuotaChecker, through the policy (quota 500).
TEST(AwsRetryPolicyTest, QuotaArithmetic) {
  AwsRetryPolicy p(Standard(), 0);
  // test_can_acquire_quota_non_timeout_error / _for_timeout_error: costs 5 and 10.
  AwsRetryStep s = p.OnAttemptEnd(1, 0, AwsErrorKind::kTransient, 0, 0.5);
  EXPECT_EQ(s.verdict, AwsRetryVerdict::kRetry);
  EXPECT_EQ(s.cost, 5);
  EXPECT_EQ(s.delay_ns, kSecond / 2);
  EXPECT_EQ(p.Snapshot().quota_available, 495);
  // test_can_release_quota_based_on_context_value_on_success.
  EXPECT_EQ(p.OnAttemptEnd(2, s.cost, AwsErrorKind::kSuccess, 0, 0).verdict,
            AwsRetryVerdict::kSucceeded);
  EXPECT_EQ(p.Snapshot().quota_available, 500);

  s = p.OnAttemptEnd(1, 0, AwsErrorKind::kTimeout, 0, 0.5);
  EXPECT_EQ(s.cost, 10);
  EXPECT_EQ(p.Snapshot().quota_available, 490);
  // A throttling retry costs the standard 5; the refund is the last retry's cost only.
  s = p.OnAttemptEnd(2, s.cost, AwsErrorKind::kThrottling, 0, 0.5);
  EXPECT_EQ(s.cost, 5);
  EXPECT_EQ(s.delay_ns, kSecond);  // 0.5 x 2^1
  EXPECT_EQ(p.Snapshot().quota_available, 485);
  p.OnAttemptEnd(3, s.cost, AwsErrorKind::kSuccess, 0, 0);
  EXPECT_EQ(p.Snapshot().quota_available, 490);
  // test_can_release_default_quota_if_not_in_context: a first-try success refunds 1.
  p.OnAttemptEnd(1, 0, AwsErrorKind::kSuccess, 0, 0);
  EXPECT_EQ(p.Snapshot().quota_available, 491);
  // test_dont_release_quota_if_all_retries_failed: exhausted and permanent refund nothing,
  // and max attempts is checked before the quota is charged.
  s = p.OnAttemptEnd(1, 0, AwsErrorKind::kTransient, 0, 0);
  s = p.OnAttemptEnd(2, s.cost, AwsErrorKind::kTransient, 0, 0);
  EXPECT_EQ(p.Snapshot().quota_available, 481);
  EXPECT_EQ(p.OnAttemptEnd(3, s.cost, AwsErrorKind::kTransient, 0, 0).verdict,
            AwsRetryVerdict::kExhausted);
  EXPECT_EQ(p.OnAttemptEnd(1, 0, AwsErrorKind::kPermanent, 0, 0).verdict,
            AwsRetryVerdict::kPermanent);
  EXPECT_EQ(p.OnAttemptEnd(1, 0, AwsErrorKind::kGaveUp, 0, 0).verdict, AwsRetryVerdict::kPermanent);
  EXPECT_EQ(p.Snapshot().quota_available, 481);
}

TEST(AwsRetryPolicyTest, QuotaExhaustionRefusesRetries) {
  // test_acquire_quota_fails: a quota of 5 pays for one retry, then refuses.
  AwsRetryConfig c = Standard();
  c.quota = 5;
  AwsRetryPolicy p(c, 0);
  EXPECT_EQ(p.OnAttemptEnd(1, 0, AwsErrorKind::kTransient, 0, 0).verdict, AwsRetryVerdict::kRetry);
  EXPECT_EQ(p.OnAttemptEnd(1, 0, AwsErrorKind::kTransient, 0, 0).verdict, AwsRetryVerdict::kQuota);
  EXPECT_EQ(p.Snapshot().quota_available, 0);
  // test_quota_reached_adds_retry_metadata: a quota of 0 never retries.
  c.quota = 0;
  AwsRetryPolicy zero(c, 0);
  EXPECT_EQ(zero.OnAttemptEnd(1, 0, AwsErrorKind::kTimeout, 0, 0).verdict, AwsRetryVerdict::kQuota);
}

TEST(AwsRetryPolicyTest, StandardModeNeverWaitsToSend) {
  AwsRetryPolicy p(Standard(), 0);
  for (int i = 0; i < 10; ++i) p.OnAttemptEnd(1, 0, AwsErrorKind::kThrottling, i, 0);
  EXPECT_EQ(p.BeforeAttempt(0), std::optional<int64_t>(0));
  EXPECT_FALSE(p.Snapshot().limiter_enabled);
}

TEST(AwsRetryPolicyTest, AdaptiveModeThrottlesSendRate) {
  AwsRetryConfig c = Standard();
  c.mode = AwsRetryMode::kAdaptive;
  AwsRetryPolicy p(c, 0);
  int64_t now = 0;
  // 20 requests/s for 5 s, all successful: no waits.
  for (int i = 0; i < 100; ++i, now += kSecond / 20) {
    ASSERT_EQ(p.BeforeAttempt(now), std::optional<int64_t>(0));
    p.OnAttemptEnd(1, 0, AwsErrorKind::kSuccess, now, 0);
  }
  // A throttling answer: the limiter turns on at 0.7 x the measured ~20/s.
  p.OnAttemptEnd(1, 0, AwsErrorKind::kThrottling, now, 0);
  AwsRetrySnapshot snap = p.Snapshot();
  EXPECT_TRUE(snap.limiter_enabled);
  EXPECT_NEAR(snap.fill_rate, 0.7 * snap.measured_rate, 1e-9);
  // A burst at one instant: the tokens saved up go at once, then each send waits 1 / fill_rate
  // longer than the one before (botocore's sleeps, answered instead of slept).
  int64_t waited = 0;
  int sent_at_once = 0;
  for (int i = 0; i < 30; ++i) {
    const std::optional<int64_t> wait = p.BeforeAttempt(now);
    ASSERT_TRUE(wait.has_value());
    if (*wait == 0) {
      ++sent_at_once;
    } else {
      EXPECT_GT(*wait, waited);
      waited = *wait;
    }
  }
  EXPECT_NEAR(sent_at_once, std::floor(snap.tokens), 1.0);
  EXPECT_NEAR(static_cast<double>(waited) / kSecond, (30.0 - snap.tokens) / snap.fill_rate, 1e-6);
}

TEST(AwsRetryPolicyTest, AdaptiveWaitIsBounded) {
  AwsRetryConfig c = Standard();
  c.mode = AwsRetryMode::kAdaptive;
  c.max_wait_s = 0.5;
  AwsRetryPolicy p(c, 0);
  // At t = 1 s the measured rate is 0.8/s: CUBIC cuts it to 0.56/s; the bucket, created at
  // 1/s, has saved up its one token.
  p.OnAttemptEnd(1, 0, AwsErrorKind::kThrottling, kSecond, 0);
  EXPECT_TRUE(p.Snapshot().limiter_enabled);
  EXPECT_NEAR(p.Snapshot().fill_rate, 0.56, 1e-12);
  EXPECT_EQ(p.BeforeAttempt(kSecond), std::optional<int64_t>(0));
  EXPECT_FALSE(p.BeforeAttempt(kSecond).has_value());  // 1 / 0.56 s > 0.5 s: refused
  EXPECT_NEAR(p.Snapshot().tokens, 0.0, 1e-12);        // and nothing reserved
}

TEST(AwsRetryPolicyTest, ValidateNamesFieldRangeAndValue) {
  AwsRetryConfig c = Standard();
  c.max_attempts = 0;
  absl::Status s = Validate(c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("aws_retry.max_attempts"), std::string::npos) << s;
  EXPECT_NE(s.message().find("[1, 100]"), std::string::npos) << s;
  c = Standard();
  c.adaptive.beta = 1.0;
  EXPECT_NE(Validate(c).message().find("aws_retry.beta"), std::string::npos);
  c = Standard();
  c.quota = -1;
  EXPECT_FALSE(AwsRetryPolicy::Create(c, 0).ok());
  EXPECT_TRUE(AwsRetryPolicy::Create(Standard(), 0).ok());
  EXPECT_FALSE(ParseAwsRetryMode("legacy").ok());
}

}  // namespace
}  // namespace rlab::aws_retry_test
