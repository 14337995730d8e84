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

namespace rlab {
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

OutlierConfig Consecutive(int n, double max_percent = 100.0) {
  OutlierConfig o;
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
  FaultModelConfig slow;
  slow.failure_rate = 0.5;
  c.overrides.push_back({2, slow});
  FaultModelConfig base;
  base.failure_rate = 0.1;
  ReplicaPool pool(c, base);
  EXPECT_EQ(pool.count(), 4);
  EXPECT_DOUBLE_EQ(pool.faults(2).config().failure_rate, 0.5);
  for (int r : {0, 1, 3}) EXPECT_DOUBLE_EQ(pool.faults(r).config().failure_rate, 0.1);
  EXPECT_EQ(&pool.faults(0), &pool.faults(3));  // one shared model
}

TEST(ReplicaPoolTest, RoundRobinCyclesAndTotalsAddUp) {
  ReplicaPool pool(Pool(3), FaultModelConfig{});
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
    ReplicaPool pool(Pool(5, k), FaultModelConfig{});
    RandomStream used(9), fresh(9);
    pool.Begin(0, used);
    for (int i = 0; i < ReplicaPool::kDrawsPerPick; ++i) fresh.Uniform01();
    EXPECT_EQ(used.NextU64(), fresh.NextU64()) << LbKindName(k);
  }
}

TEST(ReplicaPoolTest, ConsecutiveErrorsEjectUntilTheTickAfterTheEjectionEnds) {
  ReplicasConfig c = Pool(3);
  c.outlier = Consecutive(2);
  ReplicaPool pool(c, FaultModelConfig{});
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
  ReplicaPool pool(c, FaultModelConfig{});
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
  ReplicaPool pool(c, FaultModelConfig{});
  RandomStream rng(1);
  for (int i = 0; i < 2; ++i) {
    const int r = pool.Begin(i * kMs, rng);
    pool.End(r, i * kMs + 1, 1, Outcome::Http(503));
  }
  EXPECT_EQ(pool.Begin(10 * kMs, rng), -1);
  // With Envoy's default threshold (50 %) the same pool panics and picks anyway.
  c.panic_threshold_percent = 50.0;
  ReplicaPool panicking(c, FaultModelConfig{});
  for (int i = 0; i < 2; ++i) {
    const int r = panicking.Begin(i * kMs, rng);
    panicking.End(r, i * kMs + 1, 1, Outcome::Http(503));
  }
  EXPECT_GE(panicking.Begin(10 * kMs, rng), 0);
  EXPECT_EQ(panicking.panic_picks(), 1);
}

TEST(ReplicaPoolTest, LoadTimeIsTheTimeSpentAtEachLevelOfOutstandingAttempts) {
  ReplicaPool pool(Pool(1), FaultModelConfig{});
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
  ReplicaPool pool(c, FaultModelConfig{});
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
  sc.dependencies[0].replicas->overrides.push_back({3, FaultModelConfig{}});
  EXPECT_THAT(std::string(ValidateScenario(sc).message()),
              HasSubstr("payment.replicas.overrides[0].index"));
  sc.dependencies[0].replicas->overrides = {{1, FaultModelConfig{}}, {1, FaultModelConfig{}}};
  EXPECT_THAT(std::string(ValidateScenario(sc).message()),
              HasSubstr("payment.replicas.overrides[1].index must be unique"));
  sc.dependencies[0].replicas->overrides = {{1, FaultModelConfig{}}};
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

}  // namespace
}  // namespace rlab
