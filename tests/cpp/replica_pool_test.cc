#include "rlab/model/replica_pool.h"

#include <numeric>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/core/outcome.h"
#include "rlab/core/rng.h"
#include "rlab/model/scenario.h"

namespace rlab::replica_pool_test {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kS = kNsPerSecond;
constexpr int64_t kMs = kS / 1000;

ReplicasConfig Pool(int count, LbKind kind = LbKind::kRoundRobin) {
  ReplicasConfig c;
  c.count = count;
  c.balancer = kind;
  return c;
}

OutlierDetectionConfig Consecutive(int n, double max_percent = 100.0) {
  OutlierDetectionConfig o;
  o.consecutive_errors = n;
  o.success_rate = false;
  o.interval_ns = 1 * kS;
  o.base_ejection_ns = 5 * kS;
  o.max_ejection_ns = 50 * kS;
  o.max_ejection_percent = max_percent;
  return o;
}

TEST(ReplicaPoolTest, OverridesReplaceOneReplicasModelTheOthersShareTheDependencys) {
  ReplicasConfig c = Pool(4);
  FaultsConfig slow;
  slow.failure_rate = 0.5;
  c.overrides.push_back({2, slow});
  FaultsConfig base;
  base.failure_rate = 0.1;
  ReplicaPool pool(c, base);
  EXPECT_EQ(pool.count(), 4);
  EXPECT_DOUBLE_EQ(pool.faults(2).config().failure_rate, 0.5);
  for (int r : {0, 1, 3}) EXPECT_DOUBLE_EQ(pool.faults(r).config().failure_rate, 0.1);
  EXPECT_EQ(&pool.faults(0), &pool.faults(3));  // one shared model
}

TEST(ReplicaPoolTest, RoundRobinCyclesAndTotalsAddUp) {
  ReplicaPool pool(Pool(3), FaultsConfig{});
  RandomStream rng(1);
  std::vector<int> picks;
  for (int i = 0; i < 6; ++i) {
    int64_t outstanding = 0;
    const int r = pool.Begin(i * kMs, rng, &outstanding);
    EXPECT_EQ(outstanding, 1);
    picks.push_back(r);
    pool.End(r, i * kMs + kMs / 2, kMs / 2,
             r == 1 ? Outcome::Http(503) : Outcome::Of(OutcomeKind::kSuccess));
  }
  EXPECT_THAT(picks, ::testing::ElementsAre(0, 1, 2, 0, 1, 2));
  const auto totals = pool.Totals(10 * kMs);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(totals[r].calls, 2);
    EXPECT_EQ(totals[r].outstanding, 0);
    EXPECT_EQ(totals[r].failures, r == 1 ? 2 : 0);
    EXPECT_EQ(totals[r].latency_sum_ns, 2 * (kMs / 2));
  }
}

TEST(ReplicaPoolTest, ABeginConsumesTheSameDrawsWhateverTheBalancer) {
  for (LbKind k : {LbKind::kRoundRobin, LbKind::kRandom, LbKind::kLeastOutstanding,
                   LbKind::kPowerOfTwo, LbKind::kPeakEwma}) {
    ReplicaPool pool(Pool(5, k), FaultsConfig{});
    RandomStream used(9), fresh(9);
    pool.Begin(0, used);
    for (int i = 0; i < ReplicaPool::kDrawsPerPick; ++i) fresh.Uniform01();
    EXPECT_EQ(used.NextU64(), fresh.NextU64()) << LbKindName(k);
  }
}

TEST(ReplicaPoolTest, ConsecutiveErrorsEjectUntilTheTickAfterTheEjectionEnds) {
  ReplicasConfig c = Pool(3);
  c.outlier = Consecutive(2);
  ReplicaPool pool(c, FaultsConfig{});
  RandomStream rng(1);
  // Replica 0 fails twice in a row: ejected at the second error.
  int64_t t = 0;
  for (int i = 0; i < 6; ++i, t += 10 * kMs) {
    const int r = pool.Begin(t, rng);
    pool.End(r, t + kMs, kMs, r == 0 ? Outcome::Http(500) : Outcome::Of(OutcomeKind::kSuccess));
  }
  ASSERT_EQ(pool.Events().size(), 1u);
  EXPECT_TRUE(pool.Events()[0].ejected);
  EXPECT_EQ(pool.Events()[0].replica, 0);
  EXPECT_EQ(pool.Events()[0].reason, EjectionReason::kConsecutiveErrors);
  // While ejected, round robin skips it.
  for (int i = 0; i < 10; ++i, t += 10 * kMs) {
    const int r = pool.Begin(t, rng);
    EXPECT_NE(r, 0);
    pool.End(r, t + kMs, kMs, Outcome::Of(OutcomeKind::kSuccess));
  }
  // 5 s later (the next interval tick) it is back.
  bool back = false;
  for (int i = 0; i < 3; ++i) {
    const int r = pool.Begin(6 * kS + i * kMs, rng);
    back = back || r == 0;
    pool.End(r, 6 * kS + i * kMs + 1, 1, Outcome::Of(OutcomeKind::kSuccess));
  }
  EXPECT_TRUE(back);
  ASSERT_EQ(pool.Events().size(), 2u);
  EXPECT_FALSE(pool.Events()[1].ejected);
  EXPECT_EQ(pool.Totals(7 * kS)[0].ejections, 1);
}

TEST(ReplicaPoolTest, AttemptsTheCallerGaveUpOnAreNotTheReplicasFault) {
  ReplicasConfig c = Pool(2);
  c.outlier = Consecutive(1);
  ReplicaPool pool(c, FaultsConfig{});
  RandomStream rng(1);
  for (int i = 0; i < 20; ++i) {
    const int r = pool.Begin(i * kMs, rng);
    // Cancelled hedge copies, the order's deadline, and a 404 (the caller's fault).
    const Outcome o = i % 3 == 0   ? Outcome::Of(OutcomeKind::kCancelled)
                      : i % 3 == 1 ? Outcome::Of(OutcomeKind::kDeadlineExceeded)
                                   : Outcome::Http(404);
    pool.End(r, i * kMs + 1, 1, o);
  }
  EXPECT_TRUE(pool.Events().empty());
  const auto totals = pool.Totals(kS);
  EXPECT_EQ(totals[0].failures + totals[1].failures, 0);
  EXPECT_EQ(totals[0].abandoned + totals[1].abandoned, 14);
}

TEST(ReplicaPoolTest, EveryReplicaEjectedWithoutPanicLeavesNoReplica) {
  ReplicasConfig c = Pool(2);
  c.outlier = Consecutive(1);
  c.panic_threshold_percent = 0.0;
  ReplicaPool pool(c, FaultsConfig{});
  RandomStream rng(1);
  for (int i = 0; i < 2; ++i) {
    const int r = pool.Begin(i * kMs, rng);
    pool.End(r, i * kMs + 1, 1, Outcome::Http(503));
  }
  EXPECT_EQ(pool.Begin(10 * kMs, rng), -1);
  // With Envoy's default threshold (50 %) the same pool panics and picks anyway.
  c.panic_threshold_percent = 50.0;
  ReplicaPool panicking(c, FaultsConfig{});
  for (int i = 0; i < 2; ++i) {
    const int r = panicking.Begin(i * kMs, rng);
    panicking.End(r, i * kMs + 1, 1, Outcome::Http(503));
  }
  EXPECT_GE(panicking.Begin(10 * kMs, rng), 0);
  EXPECT_EQ(panicking.panic_picks(), 1);
}

TEST(ReplicaPoolTest, LoadTimeIsTheTimeSpentAtEachLevelOfOutstandingAttempts) {
  ReplicaPool pool(Pool(1), FaultsConfig{});
  RandomStream rng(1);
  const int a = pool.Begin(1 * kS, rng);
  const int b = pool.Begin(2 * kS, rng);
  pool.End(a, 4 * kS, 3 * kS, Outcome::Of(OutcomeKind::kSuccess));
  pool.End(b, 5 * kS, 3 * kS, Outcome::Of(OutcomeKind::kSuccess));
  const ReplicaTotals t = pool.Totals(10 * kS)[0];
  EXPECT_EQ(t.time_at_ns[0], 6 * kS);  // [0, 1) and [5, 10)
  EXPECT_EQ(t.time_at_ns[1], 2 * kS);  // [1, 2) and [4, 5)
  EXPECT_EQ(t.time_at_ns[2], 2 * kS);  // [2, 4)
}

TEST(ReplicaPoolTest, ConcurrentCallersKeepTheTotalsConsistent) {
  ReplicasConfig c = Pool(8, LbKind::kPowerOfTwo);
  c.outlier = Consecutive(3, 50.0);
  ReplicaPool pool(c, FaultsConfig{});
  constexpr int kThreads = 4;
  constexpr int kCalls = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&pool, t] {
      RandomStream rng(static_cast<uint64_t>(t) + 1);
      for (int i = 0; i < kCalls; ++i) {
        const int64_t now = i * kMs;
        const int r = pool.Begin(now, rng);
        if (r < 0) continue;
        pool.End(r, now + 1, 1, rng.Bernoulli(0.2) ? Outcome::Http(500) : Outcome::Http(200));
      }
    });
  }
  for (auto& th : threads) th.join();
  const auto totals = pool.Totals(kCalls * kMs);
  int64_t calls = 0;
  for (const ReplicaTotals& x : totals) {
    calls += x.calls;
    EXPECT_EQ(x.outstanding, 0);
  }
  EXPECT_EQ(calls, kThreads * kCalls);
}

TEST(ReplicaPoolTest, ValidationNamesTheDottedPath) {
  ScenarioConfig sc;
  DependencyConfig d;
  d.name = "payment";
  d.replicas = Pool(0);
  sc.dependencies.push_back(d);
  EXPECT_THAT(std::string(ValidateScenario(sc).message()), HasSubstr("payment.replicas.count"));
  sc.dependencies[0].replicas = Pool(3);
  sc.dependencies[0].replicas->overrides.push_back({3, FaultsConfig{}});
  EXPECT_THAT(std::string(ValidateScenario(sc).message()),
              HasSubstr("payment.replicas.overrides[0].index"));
  sc.dependencies[0].replicas->overrides = {{1, FaultsConfig{}}, {1, FaultsConfig{}}};
  EXPECT_THAT(std::string(ValidateScenario(sc).message()),
              HasSubstr("payment.replicas.overrides[1].index must be unique"));
  sc.dependencies[0].replicas->overrides = {{1, FaultsConfig{}}};
  sc.dependencies[0].replicas->overrides[0].faults.failure_rate = 2.0;
  EXPECT_THAT(std::string(ValidateScenario(sc).message()),
              HasSubstr("payment.replicas.overrides[0].faults.failure_rate"));
  sc.dependencies[0].replicas->overrides.clear();
  sc.dependencies[0].replicas->outlier = Consecutive(1);
  sc.dependencies[0].replicas->outlier->max_ejection_percent = 101.0;
  EXPECT_THAT(std::string(ValidateScenario(sc).message()),
              HasSubstr("payment.replicas.outlier.max_ejection_percent"));
  sc.dependencies[0].replicas->outlier->max_ejection_percent = 10.0;
  EXPECT_TRUE(ValidateScenario(sc).ok());
}

// Per-replica breakers (ReplicasConfig::breaker).

BreakerConfig ThreeStrikes() {
  BreakerConfig b;
  b.consecutive_failures = 3;
  b.open_for_ns = 5 * kS;
  return b;
}

TEST(ReplicaPoolBreakerTest, AFailingReplicaOpensGetsNoCallsThenOneProbeAndClosesOnSuccess) {
  ReplicasConfig c = Pool(3);
  c.breaker = ThreeStrikes();
  ReplicaPool pool(c, FaultsConfig{});
  ASSERT_TRUE(pool.has_breakers());
  RandomStream rng(7);
  ManualClock clock;
  // Replica 1 fails every call; the others answer. Attempts end at once.
  auto call = [&](int* picked) {
    uint64_t permit = 0;
    const int r = pool.Begin(clock.NowNs(), rng, nullptr, &permit);
    *picked = r;
    if (r < 0) return;
    pool.End(r, clock.NowNs(), 0, r == 1 ? Outcome::Http(503) : Outcome::Success(), permit);
  };
  int r = 0;
  int failures_of_1 = 0;
  while (failures_of_1 < 3) {
    call(&r);
    if (r == 1) ++failures_of_1;
    clock.AdvanceNs(10 * kMs);
  }
  EXPECT_EQ(pool.BreakerStateOf(1), BreakerState::kOpen);
  // Open: 4.5 s of calls, none to replica 1.
  const int64_t opened_ns = clock.NowNs() - 10 * kMs;
  int to_1 = 0;
  int calls = 0;
  while (clock.NowNs() < opened_ns + 5 * kS - 10 * kMs) {
    call(&r);
    ASSERT_GE(r, 0);
    to_1 += r == 1 ? 1 : 0;
    ++calls;
    clock.AdvanceNs(10 * kMs);
  }
  EXPECT_EQ(to_1, 0);
  EXPECT_GT(calls, 400);
  // Past open_for: exactly one probe while it is in flight.
  clock.AdvanceToNs(opened_ns + 5 * kS);
  uint64_t probe = 0;
  int probes = 0;
  for (int i = 0; i < 9; ++i) {
    uint64_t permit = 0;
    const int x = pool.Begin(clock.NowNs(), rng, nullptr, &permit);
    ASSERT_GE(x, 0);
    if (x == 1) {
      ++probes;
      probe = permit;
    } else {
      pool.End(x, clock.NowNs(), 0, Outcome::Success(), permit);
    }
  }
  EXPECT_EQ(probes, 1);
  EXPECT_EQ(pool.BreakerStateOf(1), BreakerState::kHalfOpen);
  // The probe succeeds: closed, and replica 1 is picked again.
  pool.End(1, clock.NowNs(), 0, Outcome::Success(), probe);
  EXPECT_EQ(pool.BreakerStateOf(1), BreakerState::kClosed);
  int again = 0;
  for (int i = 0; i < 6; ++i) {
    uint64_t permit = 0;
    const int x = pool.Begin(clock.NowNs(), rng, nullptr, &permit);
    again += x == 1 ? 1 : 0;
    pool.End(x, clock.NowNs(), 0, Outcome::Success(), permit);
  }
  EXPECT_EQ(again, 2);  // round robin over 3
  const std::vector<ReplicaTotals> totals = pool.Totals(clock.NowNs());
  EXPECT_EQ(totals[1].breaker_opened, 1);
  EXPECT_EQ(totals[1].breaker_state, BreakerState::kClosed);
  EXPECT_EQ(totals[0].breaker_opened, 0);
  // Transitions in the events: open, half-open, closed, for replica 1 only.
  std::vector<BreakerState> seen;
  for (const ReplicaEvent& e : pool.Events()) {
    ASSERT_TRUE(e.breaker);
    EXPECT_EQ(e.replica, 1);
    seen.push_back(e.breaker_to);
  }
  EXPECT_THAT(seen, ::testing::ElementsAre(BreakerState::kOpen, BreakerState::kHalfOpen,
                                           BreakerState::kClosed));
}

TEST(ReplicaPoolBreakerTest, NoReplicaAdmittingRejectsAsBreakerOpenWithoutACall) {
  ReplicasConfig c = Pool(2, LbKind::kRandom);
  c.breaker = ThreeStrikes();
  ReplicaPool pool(c, FaultsConfig{});
  RandomStream rng(3);
  int64_t t = 0;
  for (int i = 0; i < 6; ++i) {
    uint64_t permit = 0;
    const int r = pool.Begin(t, rng, nullptr, &permit);
    ASSERT_GE(r, 0);
    pool.End(r, t, 0, Outcome::Of(OutcomeKind::kTimeout), permit);
  }
  // Random picks may take more than 6 calls to fail both three times.
  for (int i = 0; i < 100 && pool.BreakerStateOf(0) != BreakerState::kOpen; ++i) {
    uint64_t permit = 0;
    const int r = pool.Begin(t, rng, nullptr, &permit);
    if (r >= 0) pool.End(r, t, 0, Outcome::Of(OutcomeKind::kTimeout), permit);
  }
  ASSERT_EQ(pool.BreakerStateOf(0), BreakerState::kOpen);
  ASSERT_EQ(pool.BreakerStateOf(1), BreakerState::kOpen);
  const int64_t calls_before = pool.Totals(t)[0].calls + pool.Totals(t)[1].calls;
  EXPECT_EQ(pool.Begin(t + kS, rng), ReplicaPool::kBreakersOpen);
  EXPECT_EQ(pool.Totals(t)[0].calls + pool.Totals(t)[1].calls, calls_before);
  EXPECT_EQ(ReplicaPool::RefusalOutcome(ReplicaPool::kBreakersOpen).kind,
            OutcomeKind::kBreakerOpen);
  EXPECT_EQ(ReplicaPool::RefusalOutcome(ReplicaPool::kNoReplica).http_status, 503);
}

TEST(ReplicaPoolBreakerTest, AProbeCancelledOrTimedOutFreesItsSlot) {
  ReplicasConfig c = Pool(1);
  c.breaker = ThreeStrikes();
  ReplicaPool pool(c, FaultsConfig{});
  RandomStream rng(5);
  for (int i = 0; i < 3; ++i) {
    uint64_t permit = 0;
    ASSERT_EQ(pool.Begin(0, rng, nullptr, &permit), 0);
    pool.End(0, 0, 0, Outcome::Http(500), permit);
  }
  ASSERT_EQ(pool.Begin(kS, rng), ReplicaPool::kBreakersOpen);
  // A probe whose caller gives up (a cancelled hedge copy, a shutdown): ignored, slot freed.
  uint64_t probe = 0;
  ASSERT_EQ(pool.Begin(5 * kS, rng, nullptr, &probe), 0);
  EXPECT_EQ(pool.Begin(5 * kS, rng), ReplicaPool::kBreakersOpen);  // the one slot is taken
  pool.End(0, 6 * kS, kS, Outcome::Of(OutcomeKind::kCancelled), probe);
  EXPECT_EQ(pool.BreakerStateOf(0), BreakerState::kHalfOpen);
  // The next probe times out: a failure, open again; the slot is not held.
  ASSERT_EQ(pool.Begin(6 * kS, rng, nullptr, &probe), 0);
  pool.End(0, 7 * kS, kS, Outcome::Of(OutcomeKind::kTimeout), probe);
  EXPECT_EQ(pool.BreakerStateOf(0), BreakerState::kOpen);
  EXPECT_EQ(pool.Totals(7 * kS)[0].breaker_opened, 2);
  ASSERT_EQ(pool.Begin(12 * kS, rng, nullptr, &probe), 0);  // open_for later: a probe again
  pool.End(0, 12 * kS, 0, Outcome::Success(), probe);
  EXPECT_EQ(pool.BreakerStateOf(0), BreakerState::kClosed);
}

TEST(ReplicaPoolBreakerTest, BlockedReplicasStayOutInPanicToo) {
  // Every replica ejected (panic: the whole pool) but replica 0's breaker open: never picked.
  ReplicasConfig c = Pool(3, LbKind::kRandom);
  c.breaker = ThreeStrikes();
  c.outlier = Consecutive(1);
  c.panic_threshold_percent = 100.0;
  ReplicaPool pool(c, FaultsConfig{});
  RandomStream rng(11);
  for (int i = 0; i < 200; ++i) {
    uint64_t permit = 0;
    const int r = pool.Begin(0, rng, nullptr, &permit);
    ASSERT_GE(r, 0);
    pool.End(r, 0, 0, r == 0 ? Outcome::Http(500) : Outcome::Success(), permit);
  }
  ASSERT_EQ(pool.BreakerStateOf(0), BreakerState::kOpen);
  for (int i = 0; i < 200; ++i) {
    uint64_t permit = 0;
    const int r = pool.Begin(kS, rng, nullptr, &permit);
    ASSERT_GE(r, 1);
    pool.End(r, kS, 0, Outcome::Success(), permit);
  }
  EXPECT_GT(pool.panic_picks(), 0);
}

TEST(ReplicaPoolBreakerTest, ValidationNamesTheDottedPath) {
  ScenarioConfig sc;
  DependencyConfig d;
  d.name = "payment";
  d.replicas = Pool(3);
  d.replicas->breaker = ThreeStrikes();
  d.replicas->breaker->open_for_ns = 0;
  sc.dependencies.push_back(d);
  EXPECT_THAT(std::string(ValidateScenario(sc).message()),
              HasSubstr("payment.replicas.breaker.open_for"));
  sc.dependencies[0].replicas->breaker->open_for_ns = kS;
  EXPECT_TRUE(ValidateScenario(sc).ok());
}

}  // namespace
}  // namespace rlab::replica_pool_test
