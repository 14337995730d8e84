// CircuitBreaker::Reconfigure: the parameters of a running breaker changed at `now_ns` (the
// control room's knob). Exact transitions on manual time.
#include <atomic>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/policy/circuit_breaker.h"

namespace rlab::breaker_reconfigure_test {
namespace {

using ::testing::HasSubstr;

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

// Records every transition a breaker reports.
struct Recorder {
  explicit Recorder(CircuitBreaker& b) {
    b.AddListener([this](const BreakerTransition& t) { seen.push_back(t); });
  }
  std::vector<BreakerTransition> seen;
};

TEST(BreakerReconfigureTest, InvalidConfigChangesNothing) {
  CircuitBreaker b(Consecutive(3));
  Fail(b, 1 * kS);
  BreakerConfig bad = Consecutive(3, -1 * kS);
  absl::Status s = b.Reconfigure(bad, 2 * kS);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("open_for must be"));
  bad = Consecutive(0);  // no trip policy left
  EXPECT_FALSE(b.Reconfigure(bad, 2 * kS).ok());
  const BreakerSnapshot snap = b.Snapshot(2 * kS);
  EXPECT_EQ(snap.generation, 0u);
  EXPECT_EQ(snap.consecutive_failures, 1);  // the run survives a refused change
  EXPECT_EQ(b.config().consecutive_failures, 3);
  EXPECT_EQ(b.config().open_for_ns, 5 * kS);
}

TEST(BreakerReconfigureTest, ClosedStaysClosedAndCountsAfreshUnderTheNewThreshold) {
  CircuitBreaker b(Consecutive(5));
  Recorder rec(b);
  for (int i = 0; i < 4; ++i) Fail(b, 1 * kS);
  ASSERT_TRUE(b.Reconfigure(Consecutive(3), 2 * kS).ok());
  BreakerSnapshot snap = b.Snapshot(2 * kS);
  EXPECT_EQ(snap.state, BreakerState::kClosed);
  EXPECT_EQ(snap.generation, 1u);  // a new generation, no transition
  EXPECT_EQ(snap.consecutive_failures, 0);
  EXPECT_EQ(snap.transitions, 0);
  EXPECT_TRUE(rec.seen.empty());
  // The lowered threshold does not trip on the four earlier failures: it needs three new ones.
  Fail(b, 3 * kS);
  Fail(b, 3 * kS);
  EXPECT_EQ(b.PeekState(), BreakerState::kClosed);
  Fail(b, 3 * kS);
  EXPECT_EQ(b.PeekState(), BreakerState::kOpen);
  ASSERT_EQ(rec.seen.size(), 1u);
  EXPECT_EQ(rec.seen[0].from, BreakerState::kClosed);
  EXPECT_EQ(rec.seen[0].to, BreakerState::kOpen);
  EXPECT_EQ(rec.seen[0].at_ns, 3 * kS);
  EXPECT_EQ(b.Snapshot(3 * kS).open_until_ns, 8 * kS);
}

TEST(BreakerReconfigureTest, CallsAdmittedBeforeReportStale) {
  CircuitBreaker b(Consecutive(2));
  const BreakerPermit before = b.Allow(1 * kS);
  ASSERT_TRUE(before.admitted);
  Fail(b, 1 * kS);
  ASSERT_TRUE(b.Reconfigure(Consecutive(1), 2 * kS).ok());
  // Under threshold 1 this failure would trip; it was admitted under the old parameters.
  b.Record(before.token, CallResult::kFailure, 3 * kS);
  BreakerSnapshot snap = b.Snapshot(3 * kS);
  EXPECT_EQ(snap.state, BreakerState::kClosed);
  EXPECT_EQ(snap.stale, 1);
  // A call admitted after the change counts (the fast path hands out the new generation).
  Fail(b, 4 * kS);
  EXPECT_EQ(b.PeekState(), BreakerState::kOpen);
}

TEST(BreakerReconfigureTest, OpenPeriodIsRemeasuredFromTheTrip) {
  CircuitBreaker b(Consecutive(1, 60 * kS));
  Recorder rec(b);
  Fail(b, 10 * kS);  // open until 70 s
  ASSERT_EQ(b.PeekState(), BreakerState::kOpen);
  // Longer: open until 10 + 30 = 40 s.
  ASSERT_TRUE(b.Reconfigure(Consecutive(1, 30 * kS), 12 * kS).ok());
  EXPECT_EQ(b.PeekState(), BreakerState::kOpen);
  BreakerPermit p = b.Allow(39 * kS);
  EXPECT_FALSE(p.admitted);
  EXPECT_EQ(p.rejection, OutcomeKind::kBreakerOpen);
  EXPECT_EQ(p.retry_in_ns, 1 * kS);
  // Shorter and already over (10 + 5 = 15 s < 20 s): half-open at once, reported at 20 s.
  ASSERT_TRUE(b.Reconfigure(Consecutive(1, 5 * kS), 20 * kS).ok());
  EXPECT_EQ(b.PeekState(), BreakerState::kHalfOpen);
  ASSERT_EQ(rec.seen.size(), 2u);
  EXPECT_EQ(rec.seen[1].from, BreakerState::kOpen);
  EXPECT_EQ(rec.seen[1].to, BreakerState::kHalfOpen);
  EXPECT_EQ(rec.seen[1].at_ns, 20 * kS);
  p = b.Allow(20 * kS);
  EXPECT_TRUE(p.admitted);
  EXPECT_TRUE(CircuitBreaker::TokenIsProbe(p.token));
}

TEST(BreakerReconfigureTest, OpenGrowthKeepsTheRunOfTrips) {
  BreakerConfig c = Consecutive(1, 10 * kS);
  c.open_growth = 2.0;
  c.max_open_for_ns = 100 * kS;
  CircuitBreaker b(c);
  Fail(b, 0);  // trip 1: open 10 s
  BreakerPermit probe = b.Allow(10 * kS);
  ASSERT_TRUE(probe.admitted);
  b.Record(probe.token, CallResult::kFailure, 10 * kS);  // trip 2: open 20 s, until 30 s
  ASSERT_EQ(b.Snapshot(10 * kS).open_until_ns, 30 * kS);
  c.open_growth = 3.0;
  ASSERT_TRUE(b.Reconfigure(c, 11 * kS).ok());
  const BreakerSnapshot snap = b.Snapshot(11 * kS);
  EXPECT_EQ(snap.trips_in_row, 2);
  EXPECT_EQ(snap.open_until_ns, 40 * kS);  // 10 + 10 * 3^(2-1)
}

TEST(BreakerReconfigureTest, HalfOpenProbesRestartUnderTheNewParameters) {
  CircuitBreaker b(Consecutive(1, 5 * kS));
  Fail(b, 0);
  const BreakerPermit old_probe = b.Allow(5 * kS);
  ASSERT_TRUE(old_probe.admitted);
  ASSERT_EQ(b.PeekState(), BreakerState::kHalfOpen);
  EXPECT_EQ(b.Allow(5 * kS).rejection, OutcomeKind::kBreakerHalfOpenFull);
  BreakerConfig c = Consecutive(1, 5 * kS);
  c.half_open_max_calls = 2;
  c.success_threshold = 2;
  ASSERT_TRUE(b.Reconfigure(c, 6 * kS).ok());
  EXPECT_EQ(b.PeekState(), BreakerState::kHalfOpen);
  // The old probe's slot is free and its result is stale: two new probes fit.
  const BreakerPermit p1 = b.Allow(6 * kS);
  const BreakerPermit p2 = b.Allow(6 * kS);
  ASSERT_TRUE(p1.admitted);
  ASSERT_TRUE(p2.admitted);
  EXPECT_FALSE(b.Allow(6 * kS).admitted);
  b.Record(old_probe.token, CallResult::kFailure, 7 * kS);  // would reopen; stale instead
  EXPECT_EQ(b.PeekState(), BreakerState::kHalfOpen);
  b.Record(p1.token, CallResult::kSuccess, 7 * kS);
  EXPECT_EQ(b.PeekState(), BreakerState::kHalfOpen);  // success_threshold is 2 now
  b.Record(p2.token, CallResult::kSuccess, 7 * kS);
  EXPECT_EQ(b.PeekState(), BreakerState::kClosed);
}

TEST(BreakerReconfigureTest, WindowIsRebuiltInTheNewShape) {
  BreakerConfig c;
  c.consecutive_failures = 0;
  c.failure_rate_threshold = 0.5;
  c.window_size = 10;
  c.minimum_calls = 4;
  CircuitBreaker b(c);
  for (int i = 0; i < 3; ++i) Fail(b, 1 * kS);
  EXPECT_EQ(b.Snapshot(1 * kS).window_calls, 3);
  c.window = WindowKind::kTime;
  c.window_ns = 10 * kS;
  c.window_buckets = 10;
  c.minimum_calls = 2;
  ASSERT_TRUE(b.Reconfigure(c, 2 * kS).ok());
  EXPECT_EQ(b.Snapshot(2 * kS).window_calls, 0);
  Fail(b, 3 * kS);
  EXPECT_EQ(b.PeekState(), BreakerState::kClosed);  // one call < minimum_calls 2
  Fail(b, 3 * kS);
  EXPECT_EQ(b.PeekState(), BreakerState::kOpen);
  // Back to consecutive-only: no window at all.
  ASSERT_TRUE(b.Reconfigure(Consecutive(2), 4 * kS).ok());
  EXPECT_EQ(b.Snapshot(4 * kS).window_calls, 0);
}

// Workers keep calling while an operator turns the knob: no crash, no leaked probe slot, and the
// breaker still closes once calls succeed.
TEST(BreakerReconfigureTest, ConcurrentWithCalls) {
  CircuitBreaker b(Consecutive(3, 1));
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&b, &stop, w] {
      int64_t now = 0;
      for (int i = 0; !stop.load() || i < 1000; ++i) {
        now += 2;
        const BreakerPermit p = b.Allow(now);
        if (p.admitted) {
          b.Record(p.token, (i + w) % 3 == 0 ? CallResult::kFailure : CallResult::kSuccess, now);
        }
      }
    });
  }
  for (int i = 0; i < 2000; ++i) {
    BreakerConfig c = Consecutive(1 + i % 4, 1 + i % 3);
    c.half_open_max_calls = 1 + i % 2;
    ASSERT_TRUE(b.Reconfigure(c, i).ok());
  }
  stop = true;
  for (std::thread& t : workers) t.join();
  const int64_t kLate = int64_t{1} << 60;  // after any time a worker used
  ASSERT_TRUE(b.Reconfigure(Consecutive(1, 1), kLate).ok());
  const BreakerPermit p = b.Allow(kLate + 1);
  ASSERT_TRUE(p.admitted);
  b.Record(p.token, CallResult::kSuccess, kLate + 1);
  EXPECT_EQ(b.State(kLate + 1), BreakerState::kClosed);
  EXPECT_EQ(b.Snapshot(kLate + 1).half_open_in_flight, 0);
}

}  // namespace
}  // namespace rlab::breaker_reconfigure_test
