#include "rlab/policy/retry.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "gtest/gtest.h"
#include "rlab/core/rng.h"

namespace rlab::retry_test {
namespace {

constexpr int64_t kMs = 1'000'000;

// A budget that records every call and refuses retries once `allowed` run out.
class FakeBudget final : public RetryBudget {
 public:
  explicit FakeBudget(int allowed) : allowed_(allowed) {}
  void OnRequest(int64_t now_ns) override { log.push_back("request@" + std::to_string(now_ns)); }
  bool TryAcquireRetry(int64_t now_ns) override {
    log.push_back("acquire@" + std::to_string(now_ns));
    if (allowed_ <= 0) return false;
    --allowed_;
    return true;
  }
  void OnOutcome(int64_t now_ns, bool success, bool retryable_failure) override {
    log.push_back("outcome@" + std::to_string(now_ns) + (success ? ":ok" : "") +
                  (retryable_failure ? ":retryable" : ""));
  }
  std::vector<std::string> log;

 private:
  int allowed_;
};

// Max attempts 4, constant 100 ms delays: arithmetic in the tests stays readable.
RetryConfig ConstantConfig(int max_attempts = 4, int64_t delay_ns = 100 * kMs) {
  RetryConfig c;
  c.max_attempts = max_attempts;
  c.backoff.initial_ns = delay_ns;
  c.backoff.max_ns = delay_ns;
  c.backoff.multiplier = 1.0;
  c.backoff.jitter = Jitter::kNone;
  return c;
}

const Outcome kTimeout = Outcome::Of(OutcomeKind::kTimeout);

TEST(RetryEndReasonTest, NamesAreMetricLabels) {
  EXPECT_EQ(RetryEndReasonName(RetryEndReason::kSucceeded), "succeeded");
  EXPECT_EQ(RetryEndReasonName(RetryEndReason::kExhausted), "exhausted");
  EXPECT_EQ(RetryEndReasonName(RetryEndReason::kPermanent), "permanent");
  EXPECT_EQ(RetryEndReasonName(RetryEndReason::kDeadline), "deadline");
  EXPECT_EQ(RetryEndReasonName(RetryEndReason::kBudget), "budget");
  EXPECT_EQ(RetryEndReasonNames().size(), 5u);
}

TEST(RetryLoopTest, SucceedsFirstTime) {
  const RetryConfig c = ConstantConfig();
  RetryLoop loop(c, nullptr);
  ASSERT_TRUE(loop.OnAttemptStart(0));
  EXPECT_EQ(loop.OnAttemptEnd(Outcome::Success(), 5, 0.5),
            RetryStep::Done(RetryEndReason::kSucceeded));
  EXPECT_TRUE(loop.done());
  EXPECT_EQ(loop.attempts(), 1);
  EXPECT_EQ(loop.retries(), 0);
  EXPECT_FALSE(loop.OnAttemptStart(10));  // ended loops admit nothing more
}

TEST(RetryLoopTest, MaxAttemptsCountsAttemptsNotRetries) {
  for (int max_attempts = 1; max_attempts <= 6; ++max_attempts) {
    const RetryConfig c = ConstantConfig(max_attempts);
    RetryLoop loop(c, nullptr);
    int64_t now = 0;
    int calls = 0;
    for (;;) {
      ASSERT_TRUE(loop.OnAttemptStart(now));
      ++calls;
      const RetryStep step = loop.OnAttemptEnd(kTimeout, now, 0.5);
      if (step.done()) {
        EXPECT_EQ(step.reason, RetryEndReason::kExhausted);
        break;
      }
      EXPECT_EQ(step.delay_ns, 100 * kMs);
      now += step.delay_ns;
    }
    EXPECT_EQ(calls, max_attempts);
    EXPECT_EQ(loop.attempts(), max_attempts);
    EXPECT_EQ(loop.retries(), max_attempts - 1);
  }
}

TEST(RetryLoopTest, AttemptsNeverExceedMaxUnderRandomOutcomes) {
  RandomStream s(2024);
  const std::vector<Outcome> outcomes = {Outcome::Success(),
                                         kTimeout,
                                         Outcome::Of(OutcomeKind::kConnectionReset),
                                         Outcome::Http(503),
                                         Outcome::Http(429, 5 * kMs),
                                         Outcome::Http(404)};
  RetryConfig c;
  c.backoff.jitter = Jitter::kDecorrelated;
  for (int trial = 0; trial < 2000; ++trial) {
    c.max_attempts = 1 + static_cast<int>(s.UniformIndex(8));
    RetryLoop loop(c, nullptr);
    int64_t now = 0;
    while (loop.OnAttemptStart(now)) {
      const Outcome& o = outcomes[s.UniformIndex(outcomes.size())];
      const RetryStep step = loop.OnAttemptEnd(o, now, s.Uniform01());
      ASSERT_LE(loop.attempts(), c.max_attempts);
      if (step.done()) break;
      ASSERT_GE(step.delay_ns, 0);
      ASSERT_LE(step.delay_ns, std::max(c.backoff.max_ns, c.max_retry_after_ns));
      now += step.delay_ns;
    }
    ASSERT_TRUE(loop.done());
    ASSERT_LE(loop.attempts(), c.max_attempts);
    ASSERT_EQ(loop.retries(), loop.attempts() - 1);
  }
}

TEST(RetryLoopTest, DelaysFollowTheBackoff) {
  RetryConfig c;
  c.max_attempts = 5;
  c.backoff.initial_ns = 100 * kMs;
  c.backoff.multiplier = 2.0;
  c.backoff.max_ns = 300 * kMs;
  c.backoff.jitter = Jitter::kNone;
  RetryLoop loop(c, nullptr);
  std::vector<int64_t> delays;
  int64_t now = 0;
  while (loop.OnAttemptStart(now)) {
    const RetryStep step = loop.OnAttemptEnd(Outcome::Http(502), now, 0.3);
    if (step.done()) break;
    delays.push_back(step.delay_ns);
    now += step.delay_ns;
  }
  EXPECT_EQ(delays, (std::vector<int64_t>{100 * kMs, 200 * kMs, 300 * kMs, 300 * kMs}));
  EXPECT_EQ(loop.end_reason(), RetryEndReason::kExhausted);
}

TEST(RetryLoopTest, DecorrelatedLoopMatchesBackoffHelper) {
  RetryConfig c;
  c.max_attempts = 50;
  c.backoff.jitter = Jitter::kDecorrelated;
  RetryLoop loop(c, nullptr);
  Backoff reference(c.backoff);
  RandomStream s(3);
  while (loop.OnAttemptStart(0)) {
    const double u = s.Uniform01();
    const RetryStep step = loop.OnAttemptEnd(kTimeout, 0, u);
    if (step.done()) break;
    ASSERT_EQ(step.delay_ns, reference.NextDelayNs(u));
  }
  EXPECT_EQ(loop.attempts(), 50);
}

TEST(RetryLoopTest, PermanentOutcomesStopAtOnce) {
  const std::vector<Outcome> permanent = {
      Outcome::Http(400),
      Outcome::Http(404),
      Outcome::Http(501),
      Outcome::Of(OutcomeKind::kError),
      Outcome::Of(OutcomeKind::kCancelled),
      Outcome::Of(OutcomeKind::kBreakerOpen),
      Outcome::Of(OutcomeKind::kBreakerHalfOpenFull),
      Outcome::Of(OutcomeKind::kBulkheadFull),
      Outcome::Of(OutcomeKind::kThrottled),
  };
  RetryConfig c = ConstantConfig();
  // Even a config that lists them cannot make rejections or cancellation retryable.
  c.retryable.AddKind(OutcomeKind::kCancelled).AddKind(OutcomeKind::kBreakerOpen);
  for (const Outcome& o : permanent) {
    FakeBudget budget(10);
    RetryLoop loop(c, &budget);
    ASSERT_TRUE(loop.OnAttemptStart(0));
    EXPECT_EQ(loop.OnAttemptEnd(o, 1, 0.5), RetryStep::Done(RetryEndReason::kPermanent))
        << o.Label();
    EXPECT_EQ(loop.attempts(), 1);
    // A permanent failure is neither a success nor a retryable failure for the budget.
    EXPECT_EQ(budget.log, (std::vector<std::string>{"request@0", "outcome@1"})) << o.Label();
  }
  // The caller's classification cannot override either.
  RetryLoop loop(c, nullptr);
  ASSERT_TRUE(loop.OnAttemptStart(0));
  EXPECT_EQ(loop.OnAttemptEnd(Outcome::Of(OutcomeKind::kBulkheadFull), true, 0, 0.5).reason,
            RetryEndReason::kPermanent);
}

TEST(RetryLoopTest, CallerClassificationOverridesTheSet) {
  const RetryConfig c = ConstantConfig();
  RetryLoop loop(c, nullptr);
  ASSERT_TRUE(loop.OnAttemptStart(0));
  EXPECT_TRUE(loop.OnAttemptEnd(Outcome::Of(OutcomeKind::kError), true, 0, 0.5).retry());
  ASSERT_TRUE(loop.OnAttemptStart(0));
  EXPECT_EQ(loop.OnAttemptEnd(kTimeout, false, 0, 0.5).reason, RetryEndReason::kPermanent);
}

TEST(RetryLoopTest, CallerDeadlineOutcomeEndsWithDeadline) {
  const RetryConfig c = ConstantConfig();
  RetryLoop loop(c, nullptr);
  ASSERT_TRUE(loop.OnAttemptStart(0));
  EXPECT_EQ(loop.OnAttemptEnd(Outcome::Of(OutcomeKind::kDeadlineExceeded), 0, 0.5),
            RetryStep::Done(RetryEndReason::kDeadline));
}

TEST(RetryLoopTest, ExactDeadlineArithmetic) {
  const RetryConfig c = ConstantConfig(/*max_attempts=*/10, /*delay_ns=*/100);
  {
    // Sleep 100 from 899 ends at 999 < 1000: started.
    RetryLoop loop(c, nullptr, /*deadline_ns=*/1000);
    ASSERT_TRUE(loop.OnAttemptStart(0));
    EXPECT_EQ(loop.OnAttemptEnd(kTimeout, 899, 0.5), RetryStep::Retry(100));
    EXPECT_EQ(loop.RemainingNs(999), 1);
    ASSERT_TRUE(loop.OnAttemptStart(999));
    // From 900 it would end exactly at the deadline, leaving the attempt no time: not started.
    EXPECT_EQ(loop.OnAttemptEnd(kTimeout, 900, 0.5), RetryStep::Done(RetryEndReason::kDeadline));
    EXPECT_EQ(loop.attempts(), 2);
  }
  {
    // An attempt may not start at the deadline itself; one nanosecond before, it may.
    RetryLoop loop(c, nullptr, 1000);
    EXPECT_TRUE(loop.OnAttemptStart(999));
    EXPECT_EQ(loop.RemainingNs(1000), 0);
    RetryLoop late(c, nullptr, 1000);
    EXPECT_FALSE(late.OnAttemptStart(1000));
    EXPECT_TRUE(late.done());
    EXPECT_EQ(late.end_reason(), RetryEndReason::kDeadline);
    EXPECT_EQ(late.attempts(), 0);
  }
  {
    // An attempt that ends after the deadline is not retried.
    RetryLoop loop(c, nullptr, 1000);
    ASSERT_TRUE(loop.OnAttemptStart(0));
    EXPECT_EQ(loop.OnAttemptEnd(kTimeout, 1500, 0.5).reason, RetryEndReason::kDeadline);
  }
  {
    // No deadline: any delay goes.
    RetryLoop loop(c, nullptr);
    EXPECT_EQ(loop.RemainingNs(123), kNoDeadline);
    ASSERT_TRUE(loop.OnAttemptStart(kNoDeadline - 1));
    EXPECT_TRUE(loop.OnAttemptEnd(kTimeout, kNoDeadline - 1, 0.5).retry());
  }
}

TEST(RetryLoopTest, DeadlineNeverOvershotBySleeps) {
  RetryConfig c;
  c.max_attempts = 100;
  c.backoff.jitter = Jitter::kFull;
  RandomStream s(11);
  for (int trial = 0; trial < 500; ++trial) {
    const int64_t deadline = static_cast<int64_t>(s.UniformIndex(5 * kNsPerSecond)) + 1;
    RetryLoop loop(c, nullptr, deadline);
    int64_t now = 0;
    while (loop.OnAttemptStart(now)) {
      now += static_cast<int64_t>(s.UniformIndex(10 * kMs));  // the attempt takes time
      const RetryStep step = loop.OnAttemptEnd(kTimeout, now, s.Uniform01());
      if (step.done()) break;
      now += step.delay_ns;
      ASSERT_LT(now, deadline);  // every sleep ends strictly before the deadline
    }
    ASSERT_TRUE(loop.end_reason() == RetryEndReason::kDeadline ||
                loop.end_reason() == RetryEndReason::kExhausted);
  }
}

TEST(RetryLoopTest, RetryAfterHonouredAndCapped) {
  RetryConfig c = ConstantConfig(5, 100 * kMs);
  c.max_retry_after_ns = 2 * kNsPerSecond;
  RetryLoop loop(c, nullptr);
  ASSERT_TRUE(loop.OnAttemptStart(0));
  // A hint longer than the backoff wins.
  EXPECT_EQ(loop.OnAttemptEnd(Outcome::Http(429, 700 * kMs), 0, 0.5), RetryStep::Retry(700 * kMs));
  ASSERT_TRUE(loop.OnAttemptStart(0));
  // A hint shorter than the backoff does not shorten it.
  EXPECT_EQ(loop.OnAttemptEnd(Outcome::Http(503, 10 * kMs), 0, 0.5), RetryStep::Retry(100 * kMs));
  ASSERT_TRUE(loop.OnAttemptStart(0));
  // A huge hint is capped at max_retry_after.
  EXPECT_EQ(loop.OnAttemptEnd(Outcome::Http(503, 3600 * kNsPerSecond), 0, 0.5),
            RetryStep::Retry(2 * kNsPerSecond));
  ASSERT_TRUE(loop.OnAttemptStart(0));
  // Zero is a hint too ("retry now"): the backoff still applies.
  EXPECT_EQ(loop.OnAttemptEnd(Outcome::Http(503, 0), 0, 0.5), RetryStep::Retry(100 * kMs));
  // A non-retryable status with a hint is still permanent.
  RetryLoop other(c, nullptr);
  ASSERT_TRUE(other.OnAttemptStart(0));
  EXPECT_EQ(other.OnAttemptEnd(Outcome::Http(400, kNsPerSecond), 0, 0.5).reason,
            RetryEndReason::kPermanent);
  // The hint counts against the deadline like any sleep.
  RetryLoop bounded(c, nullptr, kNsPerSecond);
  ASSERT_TRUE(bounded.OnAttemptStart(0));
  EXPECT_EQ(bounded.OnAttemptEnd(Outcome::Http(429, kNsPerSecond), 0, 0.5).reason,
            RetryEndReason::kDeadline);
}

TEST(RetryLoopTest, BudgetSeesEveryAttemptAndCanRefuse) {
  const RetryConfig c = ConstantConfig(5, 100);
  FakeBudget budget(/*allowed=*/1);
  RetryLoop loop(c, &budget);
  ASSERT_TRUE(loop.OnAttemptStart(0));
  EXPECT_EQ(loop.OnAttemptEnd(kTimeout, 10, 0.5), RetryStep::Retry(100));
  ASSERT_TRUE(loop.OnAttemptStart(110));
  EXPECT_EQ(loop.OnAttemptEnd(Outcome::Http(503), 120, 0.5),
            RetryStep::Done(RetryEndReason::kBudget));
  EXPECT_EQ(loop.attempts(), 2);
  EXPECT_EQ(budget.log, (std::vector<std::string>{"request@0", "outcome@10:retryable", "acquire@10",
                                                  "outcome@120:retryable", "acquire@120"}));
}

TEST(RetryLoopTest, BudgetNotAskedForRetriesThatWillNotHappen) {
  const RetryConfig c = ConstantConfig(2, 100);
  {
    FakeBudget budget(10);
    RetryLoop loop(c, &budget);
    ASSERT_TRUE(loop.OnAttemptStart(0));
    ASSERT_TRUE(loop.OnAttemptEnd(kTimeout, 0, 0.5).retry());
    ASSERT_TRUE(loop.OnAttemptStart(100));
    EXPECT_EQ(loop.OnAttemptEnd(kTimeout, 100, 0.5).reason, RetryEndReason::kExhausted);
    EXPECT_EQ(budget.log, (std::vector<std::string>{"request@0", "outcome@0:retryable", "acquire@0",
                                                    "outcome@100:retryable"}));
  }
  {
    FakeBudget budget(10);
    RetryLoop loop(c, &budget, /*deadline_ns=*/50);
    ASSERT_TRUE(loop.OnAttemptStart(0));
    EXPECT_EQ(loop.OnAttemptEnd(kTimeout, 0, 0.5).reason, RetryEndReason::kDeadline);
    EXPECT_EQ(budget.log, (std::vector<std::string>{"request@0", "outcome@0:retryable"}));
  }
  {
    FakeBudget budget(10);
    RetryLoop loop(c, &budget);
    ASSERT_TRUE(loop.OnAttemptStart(0));
    EXPECT_EQ(loop.OnAttemptEnd(Outcome::Success(), 7, 0.5).reason, RetryEndReason::kSucceeded);
    EXPECT_EQ(budget.log, (std::vector<std::string>{"request@0", "outcome@7:ok"}));
  }
  {
    // A call whose deadline passed before its first attempt is not a request.
    FakeBudget budget(10);
    RetryLoop loop(c, &budget, 5);
    EXPECT_FALSE(loop.OnAttemptStart(5));
    EXPECT_TRUE(budget.log.empty());
  }
}

TEST(RetryLoopTest, EndedLoopIsIdempotent) {
  const RetryConfig c = ConstantConfig(1);
  RetryLoop loop(c, nullptr);
  ASSERT_TRUE(loop.OnAttemptStart(0));
  EXPECT_EQ(loop.OnAttemptEnd(kTimeout, 0, 0.5).reason, RetryEndReason::kExhausted);
  EXPECT_EQ(loop.OnAttemptEnd(Outcome::Success(), 0, 0.5).reason, RetryEndReason::kExhausted);
  EXPECT_FALSE(loop.OnAttemptStart(0));
  EXPECT_EQ(loop.attempts(), 1);
}

TEST(RetryConfigTest, Validation) {
  RetryConfig c;
  EXPECT_TRUE(Validate(c).ok());
  c.max_attempts = 0;
  EXPECT_EQ(Validate(c).message(), "max_attempts must be an integer in [1, 1000000], got 0");
  c.max_attempts = 3;
  c.max_retry_after_ns = -kNsPerSecond;
  EXPECT_EQ(Validate(c).message(), "max_retry_after must be a finite number in [0, 1e+06], got -1");
  c.max_retry_after_ns = 0;
  EXPECT_TRUE(Validate(c).ok());
  c.backoff.multiplier = 0.5;
  // The nested backoff's fields are named under their path.
  EXPECT_EQ(Validate(c).message(),
            "backoff.multiplier must be a finite number in [1, inf), got 0.5");
}

TEST(RetryLoopTest, NoAllocationAndSmall) {
  // Embedded per order by the engines: a handful of words, trivially destructible.
  static_assert(std::is_trivially_destructible_v<RetryLoop>);
  static_assert(std::is_trivially_copyable_v<RetryStep>);
  EXPECT_LE(sizeof(RetryLoop), 48u);
}

}  // namespace
}  // namespace rlab::retry_test
