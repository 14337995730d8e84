// The load balancers against theory, in a small deterministic simulation of N M/M/1 FIFO
// servers fed by one Poisson stream that the balancer routes.
//
// The simulation is the uniformized Markov chain: events come at the constant total rate
// lambda_total + N * mu_max; each is an arrival with probability lambda_total / total, else a
// service completion at a uniformly chosen server, effective with probability mu_k / mu_max
// when the server is busy. Every event lasts an exponential time of the same mean, so the
// time average of a state function is its average over events (no weighting needed), while
// the drawn times give the latencies that Peak EWMA needs.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/core/rng.h"
#include "rlab/policy/load_balancer.h"
#include "rlab/policy/outlier_detector.h"

namespace rlab::load_balancer_theory_test {
namespace {

constexpr int kMaxTail = 8;

struct SimResult {
  // tail[i]: time-average fraction of servers with at least i customers (tail[0] = 1).
  std::vector<double> tail = std::vector<double>(kMaxTail + 1, 0.0);
  std::vector<int64_t> arrivals;  // routed to each server after warm-up
  int64_t unrouted = 0;           // arrivals the balancer could not place
};

struct SimSpec {
  std::vector<double> mu;     // service rate of each server
  double lambda_total = 1.0;  // Poisson arrival rate into the pool
  double warmup_time = 0.0;
  double run_time = 1.0;
  uint64_t seed = 1;
  std::vector<bool> fails;  // servers whose every call ends with an error
};

SimResult Simulate(LoadBalancer& lb, const SimSpec& spec) {
  const size_t n = spec.mu.size();
  double mu_max = 0;
  for (double m : spec.mu) mu_max = std::max(mu_max, m);
  const double total_rate = spec.lambda_total + static_cast<double>(n) * mu_max;
  const double p_arrival = spec.lambda_total / total_rate;
  RandomStream rng(spec.seed);
  std::vector<std::deque<double>> queues(n);  // arrival times of the customers at each server
  std::vector<int64_t> at_least(kMaxTail + 2, 0);
  at_least[0] = static_cast<int64_t>(n);
  SimResult out;
  out.arrivals.assign(n, 0);
  std::vector<double> tail_sum(kMaxTail + 1, 0.0);
  int64_t samples = 0;
  double now = 0.0;
  const double end = spec.warmup_time + spec.run_time;
  while (now < end) {
    now += rng.Exponential(1.0 / total_rate);
    const bool measuring = now >= spec.warmup_time;
    if (measuring) {
      for (int i = 0; i <= kMaxTail; ++i) {
        tail_sum[i] += static_cast<double>(at_least[i]) / static_cast<double>(n);
      }
      ++samples;
    }
    const int64_t now_ns = SecondsToNs(now);
    if (rng.Uniform01() < p_arrival) {
      const double u1 = rng.Uniform01();
      const double u2 = rng.Uniform01();
      const int k = lb.Pick(now_ns, u1, u2);
      if (k < 0) {
        ++out.unrouted;
        continue;
      }
      lb.OnStart(k);
      auto& q = queues[static_cast<size_t>(k)];
      q.push_back(now);
      const size_t len = q.size();
      if (len <= kMaxTail) ++at_least[len];
      if (measuring) ++out.arrivals[static_cast<size_t>(k)];
    } else {
      const size_t k = static_cast<size_t>(rng.UniformIndex(n));
      const double u = rng.Uniform01();
      auto& q = queues[k];
      if (q.empty() || u * mu_max >= spec.mu[k]) continue;
      const size_t len = q.size();
      if (len <= kMaxTail) --at_least[len];
      const double latency = now - q.front();
      q.pop_front();
      const bool ok = spec.fails.empty() || !spec.fails[k];
      lb.OnEnd(static_cast<int>(k), now_ns, SecondsToNs(latency), ok);
    }
  }
  for (int i = 0; i <= kMaxTail; ++i) out.tail[i] = tail_sum[i] / static_cast<double>(samples);
  return out;
}

LoadBalancerConfig Config(LbKind kind, int replicas) {
  LoadBalancerConfig c;
  c.kind = kind;
  c.replicas = replicas;
  c.decay_ns = 10 * kNsPerSecond;
  return c;
}

// Supermarket model (Vvedenskaya, Dobrushin & Karpelevich 1996; Mitzenmacher, IEEE TPDS 2001):
// N -> infinity servers of rate 1 at load lambda, each arrival joining the shorter of d
// uniform choices, the fraction of servers with at least i customers has the fixed point
// s_i = lambda^((d^i - 1) / (d - 1)): lambda^(2^i - 1) for d = 2; for d = 1 (random) every
// server is an M/M/1 queue and s_i = lambda^i.
//
// Tolerance: 0.025 absolute on s_1 .. s_5, from N = 100 (the fixed point's finite-N error is
// O(1/N)) and 4000 time units of run (the standard error of the pooled time average is below
// 0.01 at this seed's run length; random routing mixes slowest, its M/M/1 queues relaxing in
// about 1 / (1 - sqrt(lambda))^2 ~ 380 time units).
constexpr int kN = 100;
constexpr double kLambda = 0.9;
constexpr double kTolerance = 0.025;

SimSpec Supermarket() {
  SimSpec spec;
  spec.mu.assign(kN, 1.0);
  spec.lambda_total = kLambda * kN;
  spec.warmup_time = 500.0;
  spec.run_time = 4000.0;
  spec.seed = 20260101;
  return spec;
}

TEST(LoadBalancerTheoryTest, PowerOfTwoMatchesTheSupermarketFixedPoint) {
  LoadBalancer lb(Config(LbKind::kPowerOfTwo, kN));
  const SimResult r = Simulate(lb, Supermarket());
  for (int i = 1; i <= 5; ++i) {
    const double theory = std::pow(kLambda, std::pow(2.0, i) - 1.0);
    std::printf("p2c    s_%d = %.4f (fixed point %.4f)\n", i, r.tail[i], theory);
    EXPECT_NEAR(r.tail[i], theory, kTolerance) << "s_" << i;
  }
  // The tail is doubly exponential: almost no queue reaches 7.
  EXPECT_LT(r.tail[7], 0.01);
}

TEST(LoadBalancerTheoryTest, RandomMatchesIndependentMM1Queues) {
  LoadBalancer lb(Config(LbKind::kRandom, kN));
  const SimResult r = Simulate(lb, Supermarket());
  for (int i = 1; i <= 5; ++i) {
    std::printf("random s_%d = %.4f (M/M/1 %.4f)\n", i, r.tail[i], std::pow(kLambda, i));
    EXPECT_NEAR(r.tail[i], std::pow(kLambda, i), kTolerance) << "s_" << i;
  }
  // And the two differ where the theory says they do (s_3: 0.729 vs 0.478).
  LoadBalancer p2c(Config(LbKind::kPowerOfTwo, kN));
  const SimResult q = Simulate(p2c, Supermarket());
  EXPECT_GT(r.tail[3] - q.tail[3], 0.2);
}

// One slow replica (a quarter of the speed) among ten at half the pool's capacity: round robin
// sends it exactly its 1/N share; the load-aware balancers must send it less.
double SlowShare(LbKind kind) {
  SimSpec spec;
  spec.mu.assign(10, 1.0);
  spec.mu[0] = 0.25;
  spec.lambda_total = 0.5 * 9.25;
  spec.warmup_time = 50.0;
  spec.run_time = 2000.0;
  spec.seed = 7;
  LoadBalancer lb(Config(kind, 10));
  const SimResult r = Simulate(lb, spec);
  int64_t total = 0;
  for (int64_t a : r.arrivals) total += a;
  return static_cast<double>(r.arrivals[0]) / static_cast<double>(total);
}

TEST(LoadBalancerTheoryTest, LoadAwareBalancersSendTheSlowReplicaLess) {
  const double rr = SlowShare(LbKind::kRoundRobin);
  const double lo = SlowShare(LbKind::kLeastOutstanding);
  const double p2c = SlowShare(LbKind::kPowerOfTwo);
  const double ewma = SlowShare(LbKind::kPeakEwma);
  std::printf("slow replica's share: rr %.4f lo %.4f p2c %.4f peak_ewma %.4f\n", rr, lo, p2c, ewma);
  EXPECT_NEAR(rr, 0.1, 0.001);
  // Its fair share by speed is 0.25 / 9.25 = 0.027; each load-aware balancer sits well
  // below round robin's 0.1.
  EXPECT_LT(lo, 0.07);
  EXPECT_LT(p2c, 0.07);
  EXPECT_LT(ewma, 0.07);
  EXPECT_LT(lo, rr);
  EXPECT_LT(p2c, rr);
  EXPECT_LT(ewma, rr);
}

TEST(LoadBalancerTheoryTest, EjectionRemovesAFailingReplicaAndReturnsIt) {
  OutlierDetectionConfig oc;
  oc.replicas = 10;
  oc.consecutive_errors = 2;
  oc.interval_ns = 1 * kNsPerSecond;
  oc.base_ejection_ns = 30 * kNsPerSecond;
  oc.max_ejection_ns = 300 * kNsPerSecond;
  oc.max_ejection_percent = 10.0;
  oc.success_rate = false;
  auto detector = std::make_shared<OutlierDetector>(oc);
  LoadBalancer lb(Config(LbKind::kRoundRobin, 10), detector);
  SimSpec spec;
  spec.mu.assign(10, 10.0);
  spec.lambda_total = 50.0;
  spec.run_time = 200.0;
  spec.seed = 11;
  spec.fails.assign(10, false);
  spec.fails[3] = true;
  const SimResult r = Simulate(lb, spec);

  const std::vector<EjectionEvent> events = detector->Events();
  ASSERT_GE(events.size(), 3u);
  for (const EjectionEvent& e : events) EXPECT_EQ(e.replica, 3);
  // Eject, return, eject, ... alternating. The replica gets about 5 calls a second, so it fails
  // twice again well within the interval after each return, before a healthy tick could earn
  // back a step: ejection k lasts 30 s * k, plus less than one interval (returns happen at
  // ticks).
  int64_t k = 0;
  for (size_t i = 0; i + 1 < events.size(); i += 2) {
    ++k;
    ASSERT_TRUE(events[i].ejected);
    ASSERT_FALSE(events[i + 1].ejected);
    const int64_t length = events[i + 1].time_ns - events[i].time_ns;
    EXPECT_GE(length, 30 * k * kNsPerSecond);
    EXPECT_LT(length, (30 * k + 1) * kNsPerSecond);
  }
  // The failing replica was out most of the time: far below round robin's 10%.
  int64_t total = 0;
  for (int64_t a : r.arrivals) total += a;
  const double share = static_cast<double>(r.arrivals[3]) / static_cast<double>(total);
  std::printf("failing replica's share %.5f, %zu ejection events\n", share, events.size());
  EXPECT_LT(share, 0.02);
  EXPECT_EQ(r.unrouted, 0);
}

}  // namespace
}  // namespace rlab::load_balancer_theory_test
