// AWS SDK retry modes inside the order flow (model/aws_retry_call.h): the retry quota's
// arithmetic over a scripted run matches botocore's published numbers (retries/quota.py and
// standard.py: 500 units, 5 per retry, 10 per retry after a timeout, a success refunds its last
// retry's cost or 1), a refused retry ends the loop as a retry budget does, and the adaptive
// mode's send token turns into a sleep (or a refusal past max_wait).

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/core/rng.h"
#include "rlab/model/order_flow.h"
#include "rlab/model/scenario.h"
#include "rlab/policy/aws_retry.h"

namespace rlab::aws_retry_flow_test {
namespace {

constexpr int64_t kMs = kNsPerSecond / 1000;
using Kind = FlowAction::Kind;

struct Harness {
  explicit Harness(const AwsRetryConfig& aws) : rng(Rng(1).Stream("t")) {
    DependencyConfig d;
    d.aws_retry = aws;
    config.dependencies.push_back(d);
    EXPECT_TRUE(ValidateScenario(config).ok()) << ValidateScenario(config);
    deps.emplace_back(config.dependencies[0]);
    stats.resize(1);
  }
  int64_t quota() const { return deps[0].aws_retry->Snapshot().quota_available; }

  // Runs one order whose attempts end with `script` in turn (each 1 ms after it starts; sleeps
  // are taken in full). Returns the order's flow; `now` moves along.
  OrderFlow Run(const std::vector<Outcome>& script) {
    OrderFlow f(&deps, &stats, 0, kNoDeadline);
    FlowAction a = f.Begin(now, rng);
    size_t next = 0;
    while (a.kind != Kind::kDone) {
      if (a.kind == Kind::kSleep) {
        EXPECT_GE(a.until_ns, now);
        now = a.until_ns;
        a = f.OnSleepDone(now, rng);
        continue;
      }
      EXPECT_EQ(a.kind, Kind::kAttempt);
      EXPECT_LT(next, script.size()) << "more attempts than scripted";
      if (next >= script.size()) break;
      now += kMs;
      a = f.OnAttemptDone(now, script[next++], true, rng);
    }
    EXPECT_EQ(next, script.size()) << "fewer attempts than scripted";
    return f;
  }

  ScenarioConfig config;
  std::vector<DependencyRuntime> deps;
  std::vector<FlowStats> stats;
  RandomStream rng;
  int64_t now = 0;
};

const Outcome k503 = Outcome::Http(503);
const Outcome kTimeout = Outcome::Of(OutcomeKind::kTimeout);

TEST(AwsRetryFlowTest, ScenarioRules) {
  ScenarioConfig sc;
  sc.dependencies.emplace_back();
  DependencyConfig& d = sc.dependencies[0];
  d.aws_retry = AwsRetryConfig{};
  EXPECT_TRUE(ValidateScenario(sc).ok());
  d.aws_retry->max_attempts = 0;
  EXPECT_EQ(ValidateScenario(sc).message(),
            "payment.aws_retry.max_attempts must be an integer in [1, 100], got 0");
  d.aws_retry = AwsRetryConfig{};
  d.retry = RetryConfig{};
  EXPECT_EQ(ValidateScenario(sc).message(),
            "payment.retry must be None when aws_retry is set (the AWS retry mode runs "
            "the retries)");
  d.retry.reset();
  d.token_bucket = TokenBucketConfig{};
  EXPECT_EQ(ValidateScenario(sc).message(),
            "payment.budget must be None when aws_retry is set (its retry quota is the "
            "budget)");
}

TEST(AwsRetryFlowTest, QuotaArithmeticOfAScriptedRunMatchesBotocore) {
  Harness t(AwsRetryConfig{});  // botocore's defaults: 3 attempts, 500 units, 5 / 10 / 1
  EXPECT_EQ(t.quota(), 500);
  // Three 503s: two retries at 5 each, then max_attempts.
  OrderFlow a = t.Run({k503, k503, k503});
  EXPECT_EQ(a.status(), OrderStatus::kFailed);
  EXPECT_EQ(a.reason(), FailReason::kExhausted);
  EXPECT_EQ(t.quota(), 490);
  // A timeout (retry costs 10), then a success: the success refunds the last retry's 10.
  EXPECT_EQ(t.Run({kTimeout, Outcome::Success()}).status(), OrderStatus::kCompleted);
  EXPECT_EQ(t.quota(), 490);
  // A first-attempt success refunds no_retry_increment = 1.
  t.Run({Outcome::Success()});
  EXPECT_EQ(t.quota(), 491);
  // 503 (pay 5), timeout (pay 10), success: the refund is the last retry's cost, 10.
  t.Run({k503, kTimeout, Outcome::Success()});
  EXPECT_EQ(t.quota(), 491 - 5 - 10 + 10);
  // 429 is a throttling error: retried at the standard cost, 5.
  t.Run({Outcome::Http(429), Outcome::Http(429), Outcome::Http(429)});
  EXPECT_EQ(t.quota(), 486 - 10);
  // 400 is not retryable: nothing taken, nothing refunded.
  OrderFlow p = t.Run({Outcome::Http(400)});
  EXPECT_EQ(p.reason(), FailReason::kNonRetryable);
  EXPECT_EQ(t.quota(), 476);
  // Successes refill one unit each, never above the start.
  for (int i = 0; i < 30; ++i) t.Run({Outcome::Success()});
  EXPECT_EQ(t.quota(), 500);
  const FlowStats& s = t.stats[0];
  EXPECT_EQ(s.retries, 2 + 1 + 2 + 2);
  EXPECT_EQ(s.retry_ends[static_cast<size_t>(RetryEndReason::kExhausted)], 2);
  EXPECT_EQ(s.retry_ends[static_cast<size_t>(RetryEndReason::kSucceeded)], 3 + 30);
  EXPECT_EQ(s.retry_ends[static_cast<size_t>(RetryEndReason::kPermanent)], 1);
}

TEST(AwsRetryFlowTest, BackoffIsFullJitterOfTheTruncatedExponential) {
  AwsRetryConfig c;
  c.max_attempts = 5;
  Harness t(c);
  OrderFlow f(&t.deps, &t.stats, 0, kNoDeadline);
  FlowAction a = f.Begin(0, t.rng);
  int64_t now = 0;
  for (int attempt = 1; attempt <= 4; ++attempt) {
    ASSERT_EQ(a.kind, Kind::kAttempt);
    now += kMs;
    a = f.OnAttemptDone(now, k503, true, t.rng);
    ASSERT_EQ(a.kind, Kind::kSleep);
    // standard.py ExponentialBackoff: random() x min(1 s x 2^(attempt-1), 20 s).
    EXPECT_LE(a.until_ns - now, (int64_t{1} << (attempt - 1)) * kNsPerSecond);
    now = a.until_ns;
    a = f.OnSleepDone(now, t.rng);
  }
  EXPECT_EQ(t.quota(), 500 - 4 * 5);
}

TEST(AwsRetryFlowTest, AnEmptyQuotaEndsTheLoopAsARetryBudgetDoes) {
  AwsRetryConfig c;
  c.quota = 12;
  c.max_attempts = 10;
  Harness t(c);
  OrderFlow f = t.Run({k503, k503, k503});  // 12 -> 7 -> 2, then 5 > 2: refused
  EXPECT_EQ(f.status(), OrderStatus::kFailed);
  EXPECT_EQ(f.reason(), FailReason::kBudget);
  EXPECT_EQ(f.attempts(), 3);
  EXPECT_EQ(t.quota(), 2);
  EXPECT_EQ(t.stats[0].retry_ends[static_cast<size_t>(RetryEndReason::kBudget)], 1);
  // A success refunds 1 per call until a retry is affordable again.
  for (int i = 0; i < 3; ++i) t.Run({Outcome::Success()});
  EXPECT_EQ(t.quota(), 5);
  EXPECT_EQ(t.Run({k503, k503}).reason(), FailReason::kBudget);  // one retry paid, then none
  EXPECT_EQ(t.quota(), 0);
}

TEST(AwsRetryFlowTest, AdaptiveModeSleepsForItsSendTokenAfterThrottling) {
  AwsRetryConfig c;
  c.mode = AwsRetryMode::kAdaptive;
  c.base_delay_s = 1e-9;  // retry at once: the send token is the only wait
  Harness t(c);
  OrderFlow f(&t.deps, &t.stats, 0, kNoDeadline);
  FlowAction a = f.Begin(0, t.rng);
  ASSERT_EQ(a.kind, Kind::kAttempt);  // the limiter is off until the first throttling response
  EXPECT_FALSE(t.deps[0].aws_retry->Snapshot().limiter_enabled);
  a = f.OnAttemptDone(kMs, Outcome::Http(429), true, t.rng);
  ASSERT_EQ(a.kind, Kind::kSleep);  // the backoff (at most 1 ns)
  EXPECT_TRUE(t.deps[0].aws_retry->Snapshot().limiter_enabled);
  a = f.OnSleepDone(a.until_ns, t.rng);
  // The bucket starts empty and fills at the CUBIC rate: the send waits for its token.
  ASSERT_EQ(a.kind, Kind::kSleep);
  const int64_t woke = a.until_ns;
  EXPECT_GT(woke, kMs + 1);
  a = f.OnSleepDone(woke, t.rng);
  ASSERT_EQ(a.kind, Kind::kAttempt);  // no second token for the same attempt
  a = f.OnAttemptDone(woke + kMs, Outcome::Success(), true, t.rng);
  EXPECT_EQ(a.kind, Kind::kDone);
  EXPECT_EQ(f.status(), OrderStatus::kCompleted);
  EXPECT_EQ(f.attempts(), 2);
}

TEST(AwsRetryFlowTest, AdaptiveModeRefusesASendPastMaxWait) {
  AwsRetryConfig c;
  c.mode = AwsRetryMode::kAdaptive;
  c.base_delay_s = 1e-9;
  c.max_wait_s = 0.0;
  Harness t(c);
  OrderFlow f(&t.deps, &t.stats, 0, kNoDeadline);
  FlowAction a = f.Begin(0, t.rng);
  a = f.OnAttemptDone(kMs, Outcome::Http(429), true, t.rng);
  ASSERT_EQ(a.kind, Kind::kSleep);
  a = f.OnSleepDone(a.until_ns, t.rng);
  EXPECT_EQ(a.kind, Kind::kDone);  // the token is not due at once: refused, not sent
  EXPECT_EQ(f.status(), OrderStatus::kFailed);
  EXPECT_EQ(f.reason(), FailReason::kPermanent);  // a local rejection, like the throttle's
  EXPECT_EQ(f.attempts(), 1);
  EXPECT_EQ(t.stats[0].rejected_throttle, 1);
  EXPECT_EQ(t.stats[0].calls, 1);
}

}  // namespace
}  // namespace rlab::aws_retry_flow_test
