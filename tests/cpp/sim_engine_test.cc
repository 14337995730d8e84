#include "rlab/sim/sim_engine.h"

#include <cmath>

#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/model/scenario.h"

namespace rlab::sim_engine_test {
namespace {

constexpr int64_t kS = kNsPerSecond;

LatencyDist Exp(double mean_s) {
  LatencyDist d;
  d.kind = LatencyDist::Kind::kExponential;
  d.a = mean_s;
  return d;
}

LatencyDist Const(double v_s) {
  LatencyDist d;
  d.kind = LatencyDist::Kind::kConstant;
  d.a = v_s;
  return d;
}

ScenarioConfig MMc(double lambda, int c, double mean_service_s, int queue_capacity,
                   double duration_s, uint64_t seed) {
  ScenarioConfig sc;
  sc.arrivals.kind = ArrivalConfig::Kind::kPoisson;
  sc.arrivals.rate = lambda;
  sc.workers = c;
  sc.queue_capacity = queue_capacity;
  sc.duration_ns = static_cast<int64_t>(duration_s * kS);
  sc.seed = seed;
  DependencyConfig dep;
  dep.name = "payment";
  dep.faults.latency = Exp(mean_service_s);
  sc.dependencies.push_back(dep);
  return sc;
}

// Erlang C: the probability that an arrival waits in an M/M/c queue with offered load a = λ/μ.
double ErlangC(int c, double a) {
  double term = 1.0, sum = 1.0;  // sum_{k<c} a^k / k!
  for (int k = 1; k < c; ++k) {
    term *= a / k;
    sum += term;
  }
  const double top = term * a / c / (1.0 - a / c);  // a^c / c! * 1/(1-ρ)
  return top / (sum + top);
}

SimResult Simulate(const ScenarioConfig& sc, SimOptions opt = {}) {
  EXPECT_TRUE(ValidateScenario(sc).ok()) << ValidateScenario(sc);
  SimEngine engine(sc, opt);
  const absl::Status s = engine.Run();
  EXPECT_TRUE(s.ok()) << s;
  return std::move(engine.result());
}

int64_t Terminal(const SimResult& r) {
  int64_t n = 0;
  for (int s = static_cast<int>(OrderStatus::kCompleted); s < kNumOrderStatuses; ++s) {
    n += r.by_status[s];
  }
  return n;
}

TEST(SimEngineTest, SameSeedSameResultOtherSeedDifferent) {
  ScenarioConfig sc = MMc(50, 4, 0.05, 20, 200, 7);
  sc.dependencies[0].faults.failure_rate = 0.3;
  RetryConfig retry;
  retry.max_attempts = 3;
  sc.dependencies[0].retry = retry;
  const SimResult a = Simulate(sc), b = Simulate(sc);
  ASSERT_EQ(a.orders.size(), b.orders.size());
  for (size_t i = 0; i < a.orders.size(); ++i) {
    ASSERT_EQ(a.orders[i].arrival_ns, b.orders[i].arrival_ns);
    ASSERT_EQ(a.orders[i].end_ns, b.orders[i].end_ns);
    ASSERT_EQ(a.orders[i].attempts, b.orders[i].attempts);
  }
  EXPECT_EQ(a.events, b.events);
  sc.seed = 8;
  const SimResult c = Simulate(sc);
  EXPECT_NE(a.events, c.events);
}

TEST(SimEngineTest, EveryOrderEndsInExactlyOneTerminalState) {
  ScenarioConfig sc = MMc(100, 2, 0.05, 50, 100, 3);
  sc.order_deadline_ns = kS / 4;
  sc.dependencies[0].faults.failure_rate = 0.4;
  RetryConfig retry;
  retry.max_attempts = 4;
  sc.dependencies[0].retry = retry;
  const SimResult r = Simulate(sc);
  EXPECT_EQ(r.in_flight, 0);
  EXPECT_EQ(Terminal(r), r.arrived);
  EXPECT_EQ(static_cast<int64_t>(r.orders.size()), r.arrived);
  for (const OrderRecord& o : r.orders) {
    ASSERT_TRUE(IsTerminal(static_cast<OrderStatus>(o.status)));
    ASSERT_GE(o.end_ns, o.arrival_ns);
  }
  EXPECT_GT(r.by_status[static_cast<int>(OrderStatus::kFailed)], 0);
  EXPECT_GT(r.by_reason[static_cast<int>(FailReason::kDeadline)], 0);
  // Without a deadline the same overload fills the queue and intake rejects.
  sc.order_deadline_ns = 0;
  sc.queue_capacity = 5;
  const SimResult q = Simulate(sc);
  EXPECT_EQ(Terminal(q), q.arrived);
  EXPECT_GT(q.by_status[static_cast<int>(OrderStatus::kRejected)], 0);
  EXPECT_EQ(q.by_reason[static_cast<int>(FailReason::kQueueFull)],
            q.by_status[static_cast<int>(OrderStatus::kRejected)]);
}

TEST(SimEngineTest, ExpiredOrdersNeverReachTheDependency) {
  // 100 orders at t = 0, one worker, 0.1 s each, a 1 s deadline: the first ten complete; the
  // eleventh is dequeued exactly at its deadline and every later one after it: all expire.
  ScenarioConfig sc = MMc(1, 1, 0.1, 1000, 10, 1);
  sc.arrivals.kind = ArrivalConfig::Kind::kTrace;
  sc.arrivals.trace_ns.assign(100, 0);
  sc.dependencies[0].faults.latency = Const(0.1);
  sc.order_deadline_ns = kS;
  const SimResult r = Simulate(sc);
  EXPECT_EQ(r.by_status[static_cast<int>(OrderStatus::kCompleted)], 10);
  EXPECT_EQ(r.by_status[static_cast<int>(OrderStatus::kExpired)], 90);
  EXPECT_EQ(r.deps[0].flow.calls, 10);
}

TEST(SimEngineTest, MMcWaitingAgreesWithErlangC) {
  const double lambda = 18, mu = 1 / 0.1;
  const int c = 2;
  const ScenarioConfig sc = MMc(lambda, c, 1 / mu, 1'000'000, 20000, 11);
  const SimResult r = Simulate(sc);
  const double a = lambda / mu;
  const double pw = ErlangC(c, a);
  const double wq = pw / (c * mu - lambda);
  int64_t waited = 0;
  double wait_sum = 0;
  for (const OrderRecord& o : r.orders) {
    waited += o.start_ns > o.arrival_ns;
    wait_sum += NsToSeconds(o.start_ns - o.arrival_ns);
  }
  const double n = static_cast<double>(r.orders.size());
  EXPECT_NEAR(waited / n, pw, 0.02) << "P(wait)";
  EXPECT_NEAR(wait_sum / n, wq, 0.05 * wq) << "E[Wq]";
}

TEST(SimEngineTest, LittlesLaw) {
  const SimResult r = Simulate(MMc(30, 3, 0.08, 50, 5000, 5));
  const double T = NsToSeconds(r.end_ns);
  const double L = r.in_system_integral_s / T;
  const double lambda = r.arrived / T;
  const double W = r.sojourn_sum_s / r.arrived;
  EXPECT_NEAR(L, lambda * W, 1e-6 * L);
}

TEST(SimEngineTest, RetryArithmetic) {
  // Independent failures with p = 0.3 and up to 4 attempts: P(success) = 1 - p^4,
  // E[attempts] = (1 - p^4) / (1 - p).
  ScenarioConfig sc = MMc(200, 64, 0.001, 1000, 500, 21);
  sc.dependencies[0].faults.failure_rate = 0.3;
  sc.dependencies[0].faults.latency = Const(0.001);
  RetryConfig retry;
  retry.max_attempts = 4;
  retry.backoff.initial_ns = kS / 100;
  retry.backoff.max_ns = kS / 10;
  sc.dependencies[0].retry = retry;
  const SimResult r = Simulate(sc);
  const double p = 0.3;
  const double n = static_cast<double>(r.arrived);
  double attempts = 0;
  for (const OrderRecord& o : r.orders) attempts += o.attempts;
  EXPECT_NEAR(r.by_status[static_cast<int>(OrderStatus::kCompleted)] / n, 1 - std::pow(p, 4),
              0.003);
  EXPECT_NEAR(attempts / n, (1 - std::pow(p, 4)) / (1 - p), 0.01);
  EXPECT_EQ(r.by_reason[static_cast<int>(FailReason::kExhausted)],
            r.by_status[static_cast<int>(OrderStatus::kFailed)]);
}

TEST(SimEngineTest, BreakerOpensOnOutageAndRejectionStopsRetries) {
  // A constant trickle of orders, one worker, an outage from 10 s to 20 s: the breaker opens on
  // the 5th consecutive failure and rejects at once; probes every 5 s; it closes after the outage.
  ScenarioConfig sc;
  sc.arrivals.kind = ArrivalConfig::Kind::kConstant;
  sc.arrivals.rate = 10;
  sc.workers = 1;
  sc.queue_capacity = 100;
  sc.duration_ns = 40 * kS;
  DependencyConfig dep;
  dep.name = "payment";
  dep.faults.latency = Const(0.001);
  FaultPhase outage;
  outage.name = "outage";
  outage.start_ns = 10 * kS;
  outage.end_ns = 20 * kS;
  outage.failure_rate = 1.0;
  dep.faults.phases.push_back(outage);
  BreakerConfig b;
  b.consecutive_failures = 5;
  b.open_for_ns = 5 * kS;
  dep.breaker = b;
  RetryConfig retry;
  retry.max_attempts = 3;
  retry.backoff.jitter = Jitter::kNone;
  retry.backoff.initial_ns = kS / 1000;
  retry.backoff.max_ns = kS / 100;
  dep.retry = retry;
  sc.dependencies.push_back(dep);
  const SimResult r = Simulate(sc);
  std::vector<SimTransition> breaker;
  for (const SimTransition& t : r.transitions) {
    if (t.kind == SimTransition::Kind::kBreaker) breaker.push_back(t);
  }
  ASSERT_GE(breaker.size(), 3u);
  EXPECT_EQ(breaker[0].to, BreakerState::kOpen);
  // The first order in the outage arrives at 10.0 s (3 attempts) and the second at 10.1 s: the
  // 5th consecutive failure is the second order's second attempt, 1 ms later plus 1 ms backoff.
  EXPECT_NEAR(NsToSeconds(breaker[0].t_ns), 10.103, 0.002);
  EXPECT_EQ(breaker[1].to, BreakerState::kHalfOpen);
  EXPECT_NEAR(NsToSeconds(breaker[1].t_ns - breaker[0].t_ns), 5.0, 0.11);
  EXPECT_EQ(breaker.back().to, BreakerState::kClosed);
  EXPECT_GE(NsToSeconds(breaker.back().t_ns), 20.0);
  EXPECT_LE(NsToSeconds(breaker.back().t_ns), 25.2);
  EXPECT_GT(r.by_reason[static_cast<int>(FailReason::kBreakerOpen)], 50);
  // A breaker rejection is permanent: orders refused by the open breaker made exactly one attempt.
  for (const OrderRecord& o : r.orders) {
    if (o.reason == static_cast<uint8_t>(FailReason::kBreakerOpen) && o.arrival_ns > 11 * kS &&
        o.arrival_ns < 14 * kS) {
      EXPECT_EQ(o.attempts, 1);
    }
  }
}

// `n` orders at t = 0 (enough workers for all) against one dependency answering in `latency_s`.
ScenarioConfig Burst(int n, double latency_s) {
  ScenarioConfig sc = MMc(1, n, latency_s, 0, 10, 1);
  sc.arrivals.kind = ArrivalConfig::Kind::kTrace;
  sc.arrivals.trace_ns.assign(n, 0);
  sc.dependencies[0].faults.latency = Const(latency_s);
  return sc;
}

TEST(SimEngineTest, AFallbackNeverAbsorbsTheOrdersDeadline) {
  // A 1 s dependency, a 0.1 s deadline and a default fallback: the deadline ends each order as
  // failed (deadline) at 0.1 s; the fallback must not turn it into a degraded success.
  ScenarioConfig sc = Burst(8, 1.0);
  sc.order_deadline_ns = kS / 10;
  sc.dependencies[0].fallback.kind = FallbackConfig::Kind::kDefault;
  const SimResult r = Simulate(sc);
  EXPECT_EQ(r.by_status[static_cast<int>(OrderStatus::kFailed)], 8);
  EXPECT_EQ(r.by_reason[static_cast<int>(FailReason::kDeadline)], 8);
  EXPECT_EQ(r.by_status[static_cast<int>(OrderStatus::kCompleted)], 0);
  EXPECT_EQ(r.degraded, 0);
  EXPECT_EQ(r.deps[0].flow.fallbacks, 0);
  for (const OrderRecord& o : r.orders) {
    EXPECT_EQ(o.end_ns, kS / 10);
    EXPECT_EQ(o.degraded, 0);
  }
  // A retry loop that stops because its next backoff would cross the deadline is the deadline
  // too: 1 ms failures, a 0.5 s backoff, a 0.1 s deadline.
  sc.dependencies[0].faults.latency = Const(0.001);
  sc.dependencies[0].faults.failure_rate = 1.0;
  RetryConfig retry;
  retry.max_attempts = 3;
  retry.backoff.initial_ns = kS / 2;
  retry.backoff.max_ns = kS;
  retry.backoff.jitter = Jitter::kNone;
  sc.dependencies[0].retry = retry;
  const SimResult g = Simulate(sc);
  EXPECT_EQ(g.by_reason[static_cast<int>(FailReason::kDeadline)], 8);
  EXPECT_EQ(g.degraded, 0);
  EXPECT_EQ(g.deps[0].flow.fallbacks, 0);
}

TEST(SimEngineTest, AFallbackStillAbsorbsAFailureBeforeTheDeadline) {
  // The attempt's own timeout (50 ms) ends the call well before the 1 s deadline: the
  // dependency failed, the caller still waits, so the fallback serves the order.
  ScenarioConfig sc = Burst(8, 1.0);
  sc.order_deadline_ns = kS;
  sc.dependencies[0].attempt_timeout_ns = kS / 20;
  sc.dependencies[0].fallback.kind = FallbackConfig::Kind::kDefault;
  const SimResult r = Simulate(sc);
  EXPECT_EQ(r.by_status[static_cast<int>(OrderStatus::kCompleted)], 8);
  EXPECT_EQ(r.degraded, 8);
  EXPECT_EQ(r.deps[0].flow.fallbacks, 8);
}

TEST(SimEngineTest, AnOrderThatFailsAfterAFallbackIsNotDegraded) {
  // pricing fails at once and falls back; payment then takes 1 s against a 0.1 s deadline. The
  // fallback did serve pricing, but the order failed: failed (deadline), not degraded.
  ScenarioConfig sc = Burst(4, 1.0);
  DependencyConfig pricing;
  pricing.name = "pricing";
  pricing.faults.latency = Const(0.001);
  pricing.faults.failure_rate = 1.0;
  pricing.fallback.kind = FallbackConfig::Kind::kDefault;
  sc.dependencies.insert(sc.dependencies.begin(), pricing);
  sc.order_deadline_ns = kS / 10;
  const SimResult r = Simulate(sc);
  EXPECT_EQ(r.by_reason[static_cast<int>(FailReason::kDeadline)], 4);
  EXPECT_EQ(r.deps[0].flow.fallbacks, 4);
  EXPECT_EQ(r.degraded, 0);
  for (const OrderRecord& o : r.orders) EXPECT_EQ(o.degraded, 0);
}

TEST(SimEngineTest, AHungCallWithoutTimeoutOrDeadlineLastsTheHangDuration) {
  // Every call hangs; no attempt timeout, no deadline: the caller waits Faults.hang (3 s), then
  // the order fails and the run ends there, not at the end of representable time.
  ScenarioConfig sc = Burst(4, 0.01);
  sc.dependencies[0].faults.failure_rate = 1.0;
  sc.dependencies[0].faults.mix = FailureMix{0.0, 0.0, 0.0, 1.0, 0.0, kS};
  sc.dependencies[0].faults.hang_ns = 3 * kS;
  const SimResult r = Simulate(sc);
  EXPECT_EQ(r.in_flight, 0);
  EXPECT_EQ(Terminal(r), 4);
  EXPECT_EQ(r.by_status[static_cast<int>(OrderStatus::kFailed)], 4);
  EXPECT_EQ(r.end_ns, 3 * kS);
  for (const OrderRecord& o : r.orders) EXPECT_EQ(o.end_ns, 3 * kS);
  // The same through a server with limited capacity (the call waits in line first), and with
  // an ambiguous success (committed, answer lost) instead of a failure.
  sc.dependencies[0].faults.capacity.max_in_service = 2;
  sc.dependencies[0].faults.failure_rate = 0.0;
  sc.dependencies[0].faults.ambiguous_rate = 1.0;
  const SimResult q = Simulate(sc);
  EXPECT_EQ(Terminal(q), 4);
  EXPECT_EQ(q.by_status[static_cast<int>(OrderStatus::kFailed)], 4);
  // Two served at once: the last two start when the first two services end (10 ms).
  EXPECT_EQ(q.end_ns, 3 * kS + kS / 100);
}

TEST(SimEngineTest, MaxEventsStopsWithAClearError) {
  ScenarioConfig sc = MMc(100, 4, 0.01, 10, 100, 1);
  SimOptions opt;
  opt.max_events = 1000;
  SimEngine engine(sc, opt);
  const absl::Status s = engine.Run();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("max_events"), std::string::npos);
}

// A closed loop whose clients resubmit at once and whose calls take no time never advances the
// virtual clock: the run stops with an error that says so instead of spinning to max_events.
TEST(SimEngineTest, WorkThatTakesNoVirtualTimeStopsWithAClearError) {
  ScenarioConfig sc = MMc(1, 4, 0.0, 10, 10, 1);
  sc.arrivals.kind = ArrivalConfig::Kind::kClosedLoop;
  sc.arrivals.clients = 3;
  sc.arrivals.think_time = Const(0.0);
  sc.dependencies[0].faults.latency = Const(0.0);
  SimOptions opt;
  opt.max_events_at_one_instant = 10'000;
  SimEngine engine(sc, opt);
  const absl::Status s = engine.Run();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("no progress"), std::string::npos) << s.message();
  EXPECT_LT(engine.result().events, 20'000);

  // With a positive think time the same loop advances and ends.
  sc.arrivals.think_time = Const(0.001);
  SimEngine ok(sc, opt);
  EXPECT_TRUE(ok.Run().ok());
}

}  // namespace
}  // namespace rlab::sim_engine_test
