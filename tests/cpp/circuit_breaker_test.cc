#include "rlab/policy/circuit_breaker.h"

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/core/rng.h"

namespace rlab::circuit_breaker_test {
namespace {

constexpr int64_t kS = kNsPerSecond;

BreakerConfig Consecutive(int n, int64_t open_for_ns = 5 * kS) {
  BreakerConfig c;
  c.consecutive_failures = n;
  c.open_for_ns = open_for_ns;
  return c;
}

void Fail(CircuitBreaker& b, int64_t now) {
  BreakerPermit p = b.Allow(now);
  ASSERT_TRUE(p.admitted);
  b.Record(p.token, CallResult::kFailure, now);
}

void Succeed(CircuitBreaker& b, int64_t now) {
  BreakerPermit p = b.Allow(now);
  ASSERT_TRUE(p.admitted);
  b.Record(p.token, CallResult::kSuccess, now);
}

TEST(BreakerConfigTest, ValidationNamesTheParameter) {
  BreakerConfig c;
  c.failure_rate_threshold = 1.5;
  EXPECT_THAT(std::string(ValidateBreakerConfig(c).message()),
              ::testing::HasSubstr("failure_rate_threshold must be a finite number in [0, 1]"));
  c = BreakerConfig();
  c.open_for_ns = 0;
  EXPECT_THAT(std::string(ValidateBreakerConfig(c).message()),
              ::testing::HasSubstr("open_for must be"));
  c = BreakerConfig();
  c.consecutive_failures = 0;
  EXPECT_FALSE(ValidateBreakerConfig(c).ok());  // no trip policy at all
  c = BreakerConfig();
  c.half_open_max_calls = 0;
  EXPECT_THAT(std::string(ValidateBreakerConfig(c).message()),
              ::testing::HasSubstr("half_open_max_calls"));
  c = BreakerConfig();
  c.open_growth = 2.0;
  c.max_open_for_ns = kS;  // below open_for
  EXPECT_FALSE(ValidateBreakerConfig(c).ok());
  EXPECT_TRUE(ValidateBreakerConfig(BreakerConfig()).ok());
}

// Each cross-field rule names the fields it ties and the value it refuses.
TEST(BreakerConfigTest, RulesNameTheirValues) {
  auto message = [](const BreakerConfig& c) {
    return std::string(ValidateBreakerConfig(c).message());
  };
  EXPECT_THAT(message(Consecutive(0)),
              ::testing::HasSubstr("at least one trip policy must be enabled: consecutive_failures "
                                   ">= 1, failure_rate_threshold in (0, 1] or "
                                   "slow_call_rate_threshold in (0, 1], got 0, 0 and 0"));
  BreakerConfig c;
  c.slow_call_rate_threshold = 0.5;
  EXPECT_EQ(message(c),
            "slow_call_duration must be in (0, 1e+06] seconds when slow_call_rate_threshold is "
            "set, got 0");
  c = Consecutive(5, 5 * kS);
  c.max_open_for_ns = kS;
  EXPECT_EQ(message(c),
            "max_open_for must be 0 (no cap beyond open_for) or at least open_for (5 s), got 1");
  c.max_open_for_ns = 5 * kS;
  EXPECT_TRUE(ValidateBreakerConfig(c).ok());
  // A time window's buckets span at least one nanosecond each.
  c = BreakerConfig();
  c.window = WindowKind::kTime;
  c.window_ns = 100;
  c.window_buckets = 100;
  EXPECT_TRUE(ValidateBreakerConfig(c).ok());
  c.window_buckets = 101;
  EXPECT_EQ(message(c),
            "window_buckets must be at most window_duration in nanoseconds (100), got 101");
}

// The engines record every attempt through BreakerResultOf: the one outcome table.
TEST(BreakerResultOfTest, FollowsTheOutcomeTable) {
  EXPECT_EQ(BreakerResultOf(Outcome::Success()), CallResult::kSuccess);
  EXPECT_EQ(BreakerResultOf(Outcome::Of(OutcomeKind::kTimeout)), CallResult::kFailure);
  EXPECT_EQ(BreakerResultOf(Outcome::Of(OutcomeKind::kConnectionReset)), CallResult::kFailure);
  EXPECT_EQ(BreakerResultOf(Outcome::Of(OutcomeKind::kError)), CallResult::kFailure);
  for (int st : {408, 429, 500, 503}) {
    EXPECT_EQ(BreakerResultOf(Outcome::Http(st)), CallResult::kFailure) << st;
  }
  // A 4xx is the caller's fault: the dependency answered, so it is healthy.
  for (int st : {400, 404, 409, 422}) {
    EXPECT_EQ(BreakerResultOf(Outcome::Http(st)), CallResult::kSuccess) << st;
  }
  for (OutcomeKind k :
       {OutcomeKind::kCancelled, OutcomeKind::kDeadlineExceeded, OutcomeKind::kBreakerOpen,
        OutcomeKind::kBreakerHalfOpenFull, OutcomeKind::kBulkheadFull, OutcomeKind::kThrottled}) {
    EXPECT_EQ(BreakerResultOf(Outcome::Of(k)), CallResult::kIgnored) << OutcomeKindName(k);
  }
}

TEST(CircuitBreakerTest, OpensOnTheNthConsecutiveFailure) {
  CircuitBreaker b(Consecutive(5));
  for (int i = 0; i < 4; ++i) Fail(b, 0);
  EXPECT_EQ(b.State(0), BreakerState::kClosed);
  Succeed(b, 0);  // a success resets the run
  for (int i = 0; i < 4; ++i) Fail(b, 0);
  EXPECT_EQ(b.State(0), BreakerState::kClosed);
  Fail(b, 0);
  EXPECT_EQ(b.State(0), BreakerState::kOpen);
  const BreakerPermit p = b.Allow(kS);
  EXPECT_FALSE(p.admitted);
  EXPECT_EQ(p.rejection, OutcomeKind::kBreakerOpen);
  EXPECT_EQ(p.retry_in_ns, 4 * kS);
}

TEST(CircuitBreakerTest, HalfOpenAfterOpenForAndReportedStateAgrees) {
  CircuitBreaker b(Consecutive(1, 5 * kS));
  Fail(b, 10 * kS);
  EXPECT_EQ(b.State(15 * kS - 1), BreakerState::kOpen);
  EXPECT_EQ(b.State(15 * kS), BreakerState::kHalfOpen);
  // The next admission is a probe.
  const BreakerPermit p = b.Allow(15 * kS);
  EXPECT_TRUE(p.admitted);
  EXPECT_TRUE(CircuitBreaker::TokenIsProbe(p.token));
}

TEST(CircuitBreakerTest, HalfOpenLimitsProbesWithADistinctReason) {
  BreakerConfig c = Consecutive(1, kS);
  c.half_open_max_calls = 2;
  c.success_threshold = 3;
  CircuitBreaker b(c);
  Fail(b, 0);
  const BreakerPermit p1 = b.Allow(kS), p2 = b.Allow(kS), p3 = b.Allow(kS);
  EXPECT_TRUE(p1.admitted);
  EXPECT_TRUE(p2.admitted);
  EXPECT_FALSE(p3.admitted);
  EXPECT_EQ(p3.rejection, OutcomeKind::kBreakerHalfOpenFull);
  b.Record(p1.token, CallResult::kSuccess, kS);
  const BreakerPermit p4 = b.Allow(kS);  // p1's slot is free again
  EXPECT_TRUE(p4.admitted);
  b.Record(p2.token, CallResult::kSuccess, kS);
  EXPECT_EQ(b.State(kS), BreakerState::kHalfOpen);
  b.Record(p4.token, CallResult::kSuccess, kS);
  EXPECT_EQ(b.State(kS), BreakerState::kClosed);
}

TEST(CircuitBreakerTest, AnyProbeFailureReopens) {
  BreakerConfig c = Consecutive(1, kS);
  c.half_open_max_calls = 2;
  CircuitBreaker b(c);
  Fail(b, 0);
  const BreakerPermit p1 = b.Allow(kS), p2 = b.Allow(kS);
  b.Record(p1.token, CallResult::kFailure, kS);
  EXPECT_EQ(b.State(kS), BreakerState::kOpen);
  // p2 was admitted under the previous generation: its success is ignored.
  b.Record(p2.token, CallResult::kSuccess, kS);
  EXPECT_EQ(b.State(kS), BreakerState::kOpen);
  EXPECT_EQ(b.Snapshot(kS).stale, 1);
}

TEST(CircuitBreakerTest, IgnoredResultsReleaseTheProbeAndCountNothing) {
  CircuitBreaker b(Consecutive(2, kS));
  Fail(b, 0);
  BreakerPermit p = b.Allow(0);
  b.Record(p.token, CallResult::kIgnored, 0);  // a cancellation does not extend the run
  EXPECT_EQ(b.Snapshot(0).consecutive_failures, 1);
  Fail(b, 0);
  EXPECT_EQ(b.State(0), BreakerState::kOpen);
  p = b.Allow(kS);
  ASSERT_TRUE(p.admitted);
  EXPECT_FALSE(b.Allow(kS).admitted);
  b.Record(p.token, CallResult::kIgnored, kS);
  EXPECT_EQ(b.State(kS), BreakerState::kHalfOpen);
  EXPECT_TRUE(b.Allow(kS).admitted);  // the slot came back
}

TEST(CircuitBreakerTest, ExceptionInsideAProbeIsAFailureAndReleasesTheSlot) {
  CircuitBreaker b(Consecutive(1, kS));
  ManualClock clock(0);
  Fail(b, 0);
  clock.AdvanceNs(kS);
  EXPECT_THROW(GuardedCall(b, clock, []() -> bool { throw std::runtime_error("boom"); }),
               std::runtime_error);
  EXPECT_EQ(b.State(clock.NowNs()), BreakerState::kOpen);  // the failure reopened it
  clock.AdvanceNs(kS);
  const BreakerPermit p = GuardedCall(b, clock, [] { return true; });
  EXPECT_TRUE(p.admitted);
  EXPECT_EQ(b.State(clock.NowNs()), BreakerState::kClosed);
}

TEST(CircuitBreakerTest, FailureRateOverCountWindowWithMinimumCalls) {
  BreakerConfig c;
  c.consecutive_failures = 0;
  c.failure_rate_threshold = 0.5;
  c.window_size = 10;
  c.minimum_calls = 4;
  CircuitBreaker b(c);
  Fail(b, 0);
  Fail(b, 0);
  Succeed(b, 0);  // 2/3: below minimum_calls
  EXPECT_EQ(b.State(0), BreakerState::kClosed);
  Succeed(b, 0);  // 2/4 = 0.5 >= 0.5: trips on this call
  EXPECT_EQ(b.State(0), BreakerState::kOpen);
}

TEST(CircuitBreakerTest, CountWindowForgetsOldCalls) {
  BreakerConfig c;
  c.consecutive_failures = 0;
  c.failure_rate_threshold = 0.5;
  c.window_size = 4;
  c.minimum_calls = 4;
  CircuitBreaker b(c);
  Fail(b, 0);
  for (int i = 0; i < 4; ++i) Succeed(b, 0);  // the failure has left the window
  Fail(b, 0);
  EXPECT_EQ(b.State(0), BreakerState::kClosed);  // 1/4
  Fail(b, 0);
  EXPECT_EQ(b.State(0), BreakerState::kOpen);  // 2/4
}

TEST(CircuitBreakerTest, FailureRateOverTimeWindow) {
  BreakerConfig c;
  c.consecutive_failures = 0;
  c.failure_rate_threshold = 0.6;
  c.window = WindowKind::kTime;
  c.window_ns = 10 * kS;
  c.window_buckets = 10;
  c.minimum_calls = 5;
  CircuitBreaker b(c);
  for (int i = 0; i < 3; ++i) Fail(b, 0);
  Succeed(b, 5 * kS);
  Succeed(b, 5 * kS);  // 3/5 = 0.6 trips
  EXPECT_EQ(b.State(5 * kS), BreakerState::kOpen);

  CircuitBreaker later(c);
  for (int i = 0; i < 3; ++i) Fail(later, 0);
  Succeed(later, 11 * kS);  // the failures at t = 0 have expired
  Succeed(later, 11 * kS);
  Fail(later, 11 * kS);
  EXPECT_EQ(later.Snapshot(11 * kS).window_calls, 3);
  EXPECT_EQ(later.State(11 * kS), BreakerState::kClosed);
}

TEST(CircuitBreakerTest, SlowCallRateTrips) {
  BreakerConfig c;
  c.consecutive_failures = 0;
  c.slow_call_rate_threshold = 0.5;
  c.slow_call_duration_ns = kS;
  c.window_size = 4;
  c.minimum_calls = 4;
  CircuitBreaker b(c);
  for (int i = 0; i < 2; ++i) {
    BreakerPermit p = b.Allow(0);
    b.Record(p.token, CallResult::kSuccess, 0, kS / 2);
  }
  BreakerPermit p = b.Allow(0);
  b.Record(p.token, CallResult::kSuccess, 0, 2 * kS);
  EXPECT_EQ(b.State(0), BreakerState::kClosed);
  p = b.Allow(0);
  b.Record(p.token, CallResult::kSuccess, 0, 2 * kS);  // 2/4 slow
  EXPECT_EQ(b.State(0), BreakerState::kOpen);
}

TEST(CircuitBreakerTest, OpenDurationGrowsOnRepeatedTripsAndIsCapped) {
  BreakerConfig c = Consecutive(1, kS);
  c.open_growth = 2.0;
  c.max_open_for_ns = 3 * kS;
  CircuitBreaker b(c);
  Fail(b, 0);
  EXPECT_EQ(b.Snapshot(0).open_until_ns, kS);
  Fail(b, kS);  // probe fails: second trip, 2 s
  EXPECT_EQ(b.Snapshot(kS).open_until_ns, 3 * kS);
  Fail(b, 3 * kS);  // third trip: 4 s capped to 3 s
  EXPECT_EQ(b.Snapshot(3 * kS).open_until_ns, 6 * kS);
  Succeed(b, 6 * kS);  // closes: the growth resets
  EXPECT_EQ(b.State(6 * kS), BreakerState::kClosed);
  Fail(b, 7 * kS);
  EXPECT_EQ(b.Snapshot(7 * kS).open_until_ns, 8 * kS);
}

TEST(CircuitBreakerTest, ResultsFromBeforeATransitionAreIgnored) {
  CircuitBreaker b(Consecutive(2));
  const BreakerPermit early = b.Allow(0);
  Fail(b, 0);
  Fail(b, 0);  // opens
  b.Record(early.token, CallResult::kFailure, 0);
  EXPECT_EQ(b.Snapshot(0).failures, 2);
  EXPECT_EQ(b.Snapshot(0).stale, 1);
}

TEST(CircuitBreakerTest, ListenersSeeEachTransitionOnceInOrder) {
  CircuitBreaker b(Consecutive(1, kS));
  std::vector<std::pair<BreakerState, BreakerState>> seen;
  b.AddListener([&](const BreakerTransition& t) { seen.emplace_back(t.from, t.to); });
  Fail(b, 0);
  Succeed(b, kS);
  using S = BreakerState;
  EXPECT_THAT(seen, ::testing::ElementsAre(std::pair{S::kClosed, S::kOpen},
                                           std::pair{S::kOpen, S::kHalfOpen},
                                           std::pair{S::kHalfOpen, S::kClosed}));
}

TEST(CircuitBreakerTest, ListenerMayCallBackIntoTheBreaker) {
  CircuitBreaker b(Consecutive(1, kS));
  std::vector<BreakerState> states;
  b.AddListener([&](const BreakerTransition& t) {
    states.push_back(b.PeekState());  // would deadlock if called under the lock
    if (t.to == BreakerState::kOpen) b.ForceState(BreakerState::kClosed, t.at_ns);
  });
  Fail(b, 0);
  ASSERT_EQ(states.size(), 2u);  // open, then the forced close, delivered after the first returns
  EXPECT_EQ(b.PeekState(), BreakerState::kClosed);
}

TEST(CircuitBreakerTest, ConcurrentProbesNeverExceedTheLimitAndTransitionsStayOrdered) {
  BreakerConfig c = Consecutive(3, 1000);
  c.half_open_max_calls = 3;
  c.success_threshold = 2;
  CircuitBreaker b(c);
  std::atomic<int> in_probe{0};
  std::atomic<int> max_in_probe{0};
  std::atomic<int64_t> now{0};
  std::vector<BreakerTransition> seen;  // written only by the (serial) dispatcher
  b.AddListener([&](const BreakerTransition& t) { seen.push_back(t); });
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      RandomStream rng(Rng::DeriveSeed(99, "thread") + t);
      for (int i = 0; i < 20000; ++i) {
        const int64_t ts = now.fetch_add(1) + 1;
        const BreakerPermit p = b.Allow(ts);
        if (!p.admitted) continue;
        const bool probe = CircuitBreaker::TokenIsProbe(p.token);
        if (probe) {
          const int n = in_probe.fetch_add(1) + 1;
          int m = max_in_probe.load();
          while (n > m && !max_in_probe.compare_exchange_weak(m, n)) {
          }
        }
        const bool ok = rng.Bernoulli(0.6);
        if (probe) in_probe.fetch_sub(1);
        b.Record(p.token, ok ? CallResult::kSuccess : CallResult::kFailure, now.load());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(max_in_probe.load(), 3);
  const BreakerSnapshot snap = b.Snapshot(now.load());
  ASSERT_EQ(static_cast<int64_t>(seen.size()), snap.transitions);
  EXPECT_GT(seen.size(), 10u);
  BreakerState state = BreakerState::kClosed;
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].from, state);
    EXPECT_EQ(seen[i].generation, i + 1);
    const bool legal =
        (seen[i].from == BreakerState::kClosed && seen[i].to == BreakerState::kOpen) ||
        (seen[i].from == BreakerState::kOpen && seen[i].to == BreakerState::kHalfOpen) ||
        (seen[i].from == BreakerState::kHalfOpen && seen[i].to != BreakerState::kHalfOpen);
    EXPECT_TRUE(legal) << i;
    state = seen[i].to;
  }
  EXPECT_EQ(snap.admitted, snap.successes + snap.failures + snap.ignored + snap.stale);
}

}  // namespace
}  // namespace rlab::circuit_breaker_test
