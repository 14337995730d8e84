#include "rlab/policy/load_balancer.h"

#include <cmath>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/core/rng.h"

namespace rlab::load_balancer_test {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kS = kNsPerSecond;
constexpr int64_t kMs = kS / 1000;

LoadBalancerConfig Config(LbKind kind, int replicas) {
  LoadBalancerConfig c;
  c.kind = kind;
  c.replicas = replicas;
  return c;
}

TEST(LoadBalancerTest, KindNamesRoundTrip) {
  for (LbKind k : {LbKind::kRoundRobin, LbKind::kRandom, LbKind::kLeastOutstanding,
                   LbKind::kPowerOfTwo, LbKind::kPeakEwma}) {
    EXPECT_EQ(*ParseLbKind(LbKindName(k)), k);
  }
  EXPECT_THAT(ParseLbKind("fastest").status().message(),
              HasSubstr("load_balancer.kind must be one of"));
}

TEST(LoadBalancerTest, ValidateNamesDottedPathRangeAndValue) {
  LoadBalancerConfig c = Config(LbKind::kRandom, 0);
  EXPECT_THAT(Validate(c).message(),
              HasSubstr("load_balancer.replicas must be an integer in [1, 100000], got 0"));
  c = Config(LbKind::kRandom, 3);
  c.panic_threshold_percent = -1;
  EXPECT_THAT(Validate(c).message(), HasSubstr("load_balancer.panic_threshold"));
  OutlierDetectionConfig oc;
  oc.replicas = 4;
  EXPECT_THAT(
      LoadBalancer::Create(Config(LbKind::kRandom, 3), std::make_shared<OutlierDetector>(oc))
          .status()
          .message(),
      HasSubstr("load_balancer.outlier.replicas must equal"));
}

TEST(LoadBalancerTest, RoundRobinCyclesAndSkipsEjected) {
  LoadBalancer lb(Config(LbKind::kRoundRobin, 4));
  std::vector<int> picks;
  for (int i = 0; i < 5; ++i) picks.push_back(lb.Pick(0, 0.5, 0.5));
  EXPECT_EQ(picks, (std::vector<int>{0, 1, 2, 3, 0}));
  lb.SetEjected(2, true);
  picks.clear();
  for (int i = 0; i < 4; ++i) picks.push_back(lb.Pick(0, 0.5, 0.5));
  EXPECT_EQ(picks, (std::vector<int>{1, 3, 0, 1}));
}

TEST(LoadBalancerTest, RandomMapsTheDraw) {
  LoadBalancer lb(Config(LbKind::kRandom, 4));
  EXPECT_EQ(lb.Pick(0, 0.0, 0.9), 0);
  EXPECT_EQ(lb.Pick(0, 0.49, 0.9), 1);
  EXPECT_EQ(lb.Pick(0, 0.999999, 0.9), 3);
  lb.SetEjected(0, true);
  EXPECT_EQ(lb.Pick(0, 0.0, 0.9), 1) << "uniform over the three left";
}

TEST(LoadBalancerTest, LeastOutstandingBreaksTiesWithTheDraw) {
  LoadBalancer lb(Config(LbKind::kLeastOutstanding, 3));
  EXPECT_EQ(lb.Pick(0, 0.0, 0), 0);
  EXPECT_EQ(lb.Pick(0, 0.5, 0), 1);
  EXPECT_EQ(lb.Pick(0, 0.9, 0), 2);
  lb.OnStart(0);
  lb.OnStart(2);
  lb.OnStart(2);
  for (double u : {0.0, 0.5, 0.99}) EXPECT_EQ(lb.Pick(0, u, 0), 1);
  lb.OnStart(1);
  lb.OnStart(1);
  EXPECT_EQ(lb.Pick(0, 0.7, 0), 0);
  lb.OnEnd(2, kMs, kMs, true);
  EXPECT_EQ(lb.Pick(0, 0.0, 0), 0) << "0 and 2 tie at one; u = 0 takes the first";
  EXPECT_EQ(lb.Pick(0, 0.9, 0), 2);
}

TEST(LoadBalancerTest, PowerOfTwoPicksTwoDistinctAndKeepsTheLessLoaded) {
  LoadBalancer lb(Config(LbKind::kPowerOfTwo, 4));
  // u1 = 0.3 -> candidate 1; u2 = 0.4 -> index 1 among the other three -> replica 2.
  lb.OnStart(1);
  EXPECT_EQ(lb.Pick(0, 0.3, 0.4), 2);
  // u2 = 0.2 -> index 0 -> replica 0, idle while 1 is busy.
  EXPECT_EQ(lb.Pick(0, 0.3, 0.2), 0);
  lb.OnEnd(1, 0, 0, true);
  EXPECT_EQ(lb.Pick(0, 0.3, 0.2), 1) << "a tie keeps the first pick";
  // The two choices are always distinct.
  RandomStream rng(7);
  LoadBalancer busy(Config(LbKind::kPowerOfTwo, 2));
  busy.OnStart(0);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(busy.Pick(0, rng.Uniform01(), rng.Uniform01()), 1);
}

TEST(LoadBalancerTest, PeakEwmaCost) {
  LoadBalancerConfig c = Config(LbKind::kPeakEwma, 2);
  c.decay_ns = 10 * kS;
  LoadBalancer lb(c);
  EXPECT_DOUBLE_EQ(lb.Cost(0, 0), 0.0) << "unknown and idle: free";
  lb.OnStart(0);
  EXPECT_GT(lb.Cost(0, 0), 1e14) << "in flight with no latency seen: Finagle's penalty";
  lb.OnEnd(0, 1 * kS, 100 * kMs, true);
  EXPECT_DOUBLE_EQ(lb.Cost(0, 1 * kS), 100e6) << "the first latency is a peak";
  EXPECT_NEAR(lb.Cost(0, 11 * kS), 100e6 * std::exp(-1.0), 1e-3) << "decays with tau";
  lb.OnStart(0);
  lb.OnStart(0);
  EXPECT_DOUBLE_EQ(lb.Cost(0, 1 * kS), 3 * 100e6) << "times outstanding + 1";
  // A lower latency 1 s later moves the estimate with weight 1 - exp(-0.1).
  lb.OnEnd(0, 2 * kS, 20 * kMs, true);
  const double w = std::exp(-0.1);
  EXPECT_NEAR(lb.Cost(0, 2 * kS), 2 * (100e6 * w + 20e6 * (1 - w)), 1e-3);
  // A higher one jumps.
  lb.OnEnd(0, 2 * kS, 500 * kMs, false);
  EXPECT_DOUBLE_EQ(lb.Cost(0, 2 * kS), 500e6);
  EXPECT_EQ(lb.Load(0).errors, 1);
  // The picker prefers the cheaper of its two choices.
  lb.OnStart(1);
  lb.OnEnd(1, 2 * kS, 10 * kMs, true);
  EXPECT_EQ(lb.Pick(2 * kS, 0.1, 0.5), 1);
  EXPECT_EQ(lb.Pick(2 * kS, 0.9, 0.5), 1);
}

TEST(LoadBalancerTest, PanicBalancesOverTheWholePool) {
  LoadBalancerConfig c = Config(LbKind::kRandom, 4);
  c.panic_threshold_percent = 50.0;
  LoadBalancer lb(c);
  lb.SetEjected(0, true);
  lb.SetEjected(1, true);
  EXPECT_FALSE(lb.InPanic()) << "50% left is not below 50%";
  EXPECT_EQ(lb.Pick(0, 0.0, 0), 2);
  lb.SetEjected(2, true);
  EXPECT_TRUE(lb.InPanic());
  EXPECT_EQ(lb.Pick(0, 0.0, 0), 0) << "panic: ejected replicas are candidates again";
  EXPECT_EQ(lb.panic_picks(), 1);

  c.panic_threshold_percent = 0.0;
  LoadBalancer strict(c);
  for (int i = 0; i < 4; ++i) strict.SetEjected(i, true);
  EXPECT_EQ(strict.Pick(0, 0.5, 0.5), -1) << "no replica and no panic: nothing to pick";
}

TEST(LoadBalancerTest, UnmatchedEndsAndBadReplicasAreIgnored) {
  LoadBalancer lb(Config(LbKind::kLeastOutstanding, 2));
  lb.OnEnd(0, 0, 0, true);
  lb.OnStart(5);
  lb.OnEnd(-1, 0, 0, false);
  EXPECT_EQ(lb.Load(0).outstanding, 0);
  EXPECT_EQ(lb.Load(0).ends, 0);
}

TEST(LoadBalancerTest, OutlierDetectorEjectsThroughOnEndAndPickSkips) {
  OutlierDetectionConfig oc;
  oc.replicas = 4;
  oc.consecutive_errors = 2;
  oc.interval_ns = kS;
  oc.base_ejection_ns = 3 * kS;
  oc.max_ejection_ns = 30 * kS;
  oc.max_ejection_percent = 25.0;
  oc.success_rate = false;
  auto detector = std::make_shared<OutlierDetector>(oc);
  LoadBalancer lb(Config(LbKind::kRoundRobin, 4), detector);
  for (int i = 0; i < 2; ++i) {
    lb.OnStart(1);
    lb.OnEnd(1, 100 * kMs, kMs, false);
  }
  EXPECT_TRUE(detector->IsEjected(1));
  std::set<int> seen;
  for (int i = 0; i < 9; ++i) seen.insert(lb.Pick(2 * kS, 0.5, 0.5));
  EXPECT_EQ(seen, (std::set<int>{0, 2, 3}));
  // Back at the first tick at or after 0.1 + 3 s, i.e. 4 s: Pick runs the tick.
  seen.clear();
  for (int i = 0; i < 4; ++i) seen.insert(lb.Pick(4 * kS, 0.5, 0.5));
  EXPECT_EQ(seen, (std::set<int>{0, 1, 2, 3}));
}

TEST(LoadBalancerTest, ConcurrentCallersConserveCounts) {
  OutlierDetectionConfig oc;
  oc.replicas = 8;
  oc.consecutive_errors = 3;
  oc.interval_ns = kMs;
  oc.base_ejection_ns = 2 * kMs;
  oc.max_ejection_ns = 10 * kMs;
  oc.max_ejection_percent = 50.0;
  auto detector = std::make_shared<OutlierDetector>(oc);
  LoadBalancerConfig c = Config(LbKind::kPeakEwma, 8);
  LoadBalancer lb(c, detector);
  constexpr int kThreads = 4;
  constexpr int kCalls = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&lb, t] {
      RandomStream rng(static_cast<uint64_t>(t) + 1);
      for (int i = 0; i < kCalls; ++i) {
        const int64_t now = (static_cast<int64_t>(i) * kThreads + t) * 10'000;
        const int r = lb.Pick(now, rng.Uniform01(), rng.Uniform01());
        ASSERT_GE(r, 0);
        lb.OnStart(r);
        lb.OnEnd(r, now + 5000, 5000, r != 0 || rng.Bernoulli(0.2));
      }
    });
  }
  for (std::thread& th : threads) th.join();
  int64_t picks = 0;
  for (int r = 0; r < 8; ++r) {
    const ReplicaLoad load = lb.Load(r);
    EXPECT_EQ(load.outstanding, 0);
    EXPECT_EQ(load.starts, load.ends);
    EXPECT_EQ(load.starts, load.picks);
    picks += load.picks;
  }
  EXPECT_EQ(picks, kThreads * kCalls);
  EXPECT_GT(detector->State(0).times_ejected, 0) << "the failing replica was ejected";
}

}  // namespace
}  // namespace rlab::load_balancer_test
