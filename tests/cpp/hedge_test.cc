// Hedging and fan-out: the Hedger's delay and budget, the per-order round in OrderFlow with
// scripted answers and manual time, and the simulated engine on constant latencies.

#include "rlab/policy/hedge.h"

#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/core/rng.h"
#include "rlab/live/live_engine.h"
#include "rlab/model/order_flow.h"
#include "rlab/model/scenario.h"
#include "rlab/sim/sim_engine.h"

namespace rlab::hedge_test {
namespace {

constexpr int64_t kMs = kNsPerSecond / 1000;
constexpr int64_t kS = kNsPerSecond;

using Kind = FlowAction::Kind;

TEST(HedgeConfigTest, Validation) {
  HedgeConfig h;
  EXPECT_TRUE(Validate(h).ok());
  h.max_hedges = 0;
  EXPECT_EQ(Validate(h).message(), "max_hedges must be an integer in [1, 31], got 0");
  h = {};
  h.quantile = 1.0;
  EXPECT_EQ(Validate(h).message(), "quantile must be a finite number in (0, 1), got 1");
  h = {};
  h.budget_ratio = 32.0;
  EXPECT_FALSE(Validate(h).ok());
  h.budget_ratio = -1.0;  // no budget
  EXPECT_TRUE(Validate(h).ok());
  FanOutConfig f{3, 4};
  EXPECT_EQ(Validate(f).message(), "quorum must be an integer in [1, 3], got 4");
}

TEST(HedgeConfigTest, ScenarioRules) {
  ScenarioConfig sc;
  sc.dependencies.emplace_back();
  DependencyConfig& d = sc.dependencies[0];
  d.hedge = HedgeConfig{};
  EXPECT_TRUE(ValidateScenario(sc).ok());
  d.fanout = FanOutConfig{};
  EXPECT_EQ(ValidateScenario(sc).message(),
            "payment.hedge must be None when fanout is set (a call is either hedged or fanned "
            "out)");
  d.fanout.reset();
  d.charges = true;
  EXPECT_TRUE(ValidateScenario(sc).ok());  // idempotency keys: a retried charge applies once
  d.idempotency_keys = false;
  EXPECT_EQ(ValidateScenario(sc).message(),
            "payment.hedge must be None on a dependency that charges without idempotency keys "
            "(each copy would be charged; set idempotency_keys=True)");
  d.hedge.reset();
  d.fanout = FanOutConfig{};
  EXPECT_NE(ValidateScenario(sc).message().find("payment.fanout must be None"), std::string::npos);
  d.fanout = FanOutConfig{2, 3};
  d.idempotency_keys = true;
  EXPECT_EQ(ValidateScenario(sc).message(),
            "payment.fanout.quorum must be an integer in [1, 2], got 3");
}

TEST(HedgerTest, FixedDelayAndQuantileAfterTheWindowFills) {
  HedgeConfig c;
  c.delay_ns = 7 * kMs;
  c.quantile = 0.9;
  c.window = 10;
  Hedger h(c);
  for (int i = 1; i <= 9; ++i) h.RecordLatency(i * kMs);
  EXPECT_EQ(h.DelayNs(), 7 * kMs);  // nine latencies: the window is not full yet
  h.RecordLatency(10 * kMs);
  EXPECT_EQ(h.DelayNs(), 9 * kMs);  // nearest rank: ceil(0.9 * 10) = 9th smallest
  // The window slides: ten more of 100 ms push every old latency out.
  for (int i = 0; i < 10; ++i) h.RecordLatency(100 * kMs);
  EXPECT_EQ(h.DelayNs(), 100 * kMs);
}

TEST(HedgerTest, BudgetIsATokenBucket) {
  HedgeConfig c;
  c.budget_ratio = 0.25;
  c.budget_burst = 2.0;
  Hedger h(c);
  EXPECT_TRUE(h.TryHedge());  // starts full
  EXPECT_TRUE(h.TryHedge());
  EXPECT_FALSE(h.TryHedge());
  for (int i = 0; i < 3; ++i) h.OnCall();
  EXPECT_FALSE(h.TryHedge());  // 0.75 tokens
  h.OnCall();
  EXPECT_TRUE(h.TryHedge());
  for (int i = 0; i < 100; ++i) h.OnCall();
  EXPECT_DOUBLE_EQ(h.tokens(), 2.0);  // capped at the burst
  c.budget_ratio = -1.0;
  Hedger unlimited(c);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(unlimited.TryHedge());
}

// One dependency, driven by hand.
struct Harness {
  explicit Harness(DependencyConfig dep) : rng(Rng(1).Stream("t")) {
    config.dependencies.push_back(std::move(dep));
    EXPECT_TRUE(ValidateScenario(config).ok()) << ValidateScenario(config);
    deps.emplace_back(config.dependencies[0]);
    stats.resize(1);
  }
  OrderFlow Flow(int64_t deadline_ns = kNoDeadline) {
    return OrderFlow(&deps, &stats, 0, deadline_ns);
  }
  ScenarioConfig config;
  std::vector<DependencyRuntime> deps;
  std::vector<FlowStats> stats;
  RandomStream rng;
};

DependencyConfig Hedged(int max_hedges, int64_t delay_ns) {
  DependencyConfig d;
  HedgeConfig h;
  h.max_hedges = max_hedges;
  h.delay_ns = delay_ns;
  h.budget_ratio = -1.0;
  d.hedge = h;
  return d;
}

TEST(HedgeFlowTest, TheHedgeWinsAndTheFirstCopyIsCancelled) {
  Harness t(Hedged(1, 10 * kMs));
  OrderFlow f = t.Flow();
  FlowAction a = f.Begin(0, t.rng);
  ASSERT_EQ(a.kind, Kind::kAttempt);
  EXPECT_EQ(a.launch, 1u);
  EXPECT_EQ(a.hedge_at_ns, 10 * kMs);
  EXPECT_EQ(f.OnHedgeTimer(9 * kMs, t.rng).kind, Kind::kWait);  // early: ignored
  a = f.OnHedgeTimer(10 * kMs, t.rng);
  ASSERT_EQ(a.kind, Kind::kAttempt);
  EXPECT_EQ(a.launch, 2u);
  EXPECT_EQ(a.hedge_at_ns, kNoDeadline);  // max_hedges reached
  EXPECT_EQ(f.outstanding(), 3u);
  a = f.OnAttemptDone(15 * kMs, Outcome::Success(), true, t.rng, 1);
  EXPECT_EQ(a.kind, Kind::kDone);
  EXPECT_EQ(f.status(), OrderStatus::kCompleted);
  EXPECT_EQ(f.outstanding(), 0u);  // copy 0 cancelled
  EXPECT_EQ(f.attempts(), 2);
  const FlowStats& s = t.stats[0];
  EXPECT_EQ(s.calls, 2);
  EXPECT_EQ(s.hedges, 1);
  EXPECT_EQ(s.hedges_won, 1);
  EXPECT_EQ(s.successes, 1);
  EXPECT_EQ(s.failures, 0);
  EXPECT_EQ(s.cancelled, 1);
  EXPECT_EQ(s.calls, s.successes + s.failures + s.cancelled);
}

TEST(HedgeFlowTest, AFailedCopyWaitsForTheOthersThenTheRetryLoopBacksOff) {
  DependencyConfig d = Hedged(1, 10 * kMs);
  RetryConfig r;
  r.max_attempts = 2;
  r.backoff.initial_ns = 100 * kMs;
  r.backoff.jitter = Jitter::kNone;
  d.retry = r;
  Harness t(d);
  OrderFlow f = t.Flow();
  f.Begin(0, t.rng);
  f.OnHedgeTimer(10 * kMs, t.rng);
  // Copy 0 fails while the hedge is outstanding: the round goes on.
  EXPECT_EQ(f.OnAttemptDone(12 * kMs, Outcome::Http(503), false, t.rng, 0).kind, Kind::kWait);
  // The hedge fails too: the round failed, and the retry loop sleeps before the next round.
  FlowAction a = f.OnAttemptDone(20 * kMs, Outcome::Http(503), false, t.rng, 1);
  ASSERT_EQ(a.kind, Kind::kSleep);
  EXPECT_EQ(a.until_ns, 120 * kMs);
  // The second round: a fresh first copy and a fresh hedge timer.
  a = f.OnSleepDone(120 * kMs, t.rng);
  ASSERT_EQ(a.kind, Kind::kAttempt);
  EXPECT_EQ(a.launch, 1u);
  EXPECT_EQ(a.hedge_at_ns, 130 * kMs);
  a = f.OnAttemptDone(125 * kMs, Outcome::Success(), true, t.rng, 0);
  EXPECT_EQ(a.kind, Kind::kDone);
  EXPECT_EQ(f.status(), OrderStatus::kCompleted);
  EXPECT_EQ(t.stats[0].retries, 1);  // rounds, not copies
  EXPECT_EQ(t.stats[0].calls, 3);
  EXPECT_EQ(t.stats[0].hedges_won, 0);
  EXPECT_EQ(t.stats[0].cancelled, 0);
}

TEST(HedgeFlowTest, ACopyCancelledAfterTheDelayCountsForTheQuantile) {
  DependencyConfig d = Hedged(1, 10 * kMs);
  d.hedge->quantile = 0.5;
  d.hedge->window = 2;
  Harness t(d);
  OrderFlow f = t.Flow();
  f.Begin(0, t.rng);
  f.OnHedgeTimer(10 * kMs, t.rng);
  // The hedge answers in 2 ms; the first copy, cancelled after 12 ms, is slower than that.
  f.OnAttemptDone(12 * kMs, Outcome::Success(), true, t.rng, 1);
  // The window holds {2 ms, 12 ms} (without the cancelled copy it would not be full yet, and
  // the delay would stay 10 ms); its nearest-rank median is 2 ms.
  OrderFlow g = t.Flow();
  EXPECT_EQ(g.Begin(100 * kMs, t.rng).hedge_at_ns, 102 * kMs);
}

TEST(HedgeFlowTest, TheBudgetRefusesHedgesOnceSpent) {
  DependencyConfig d = Hedged(1, 10 * kMs);
  d.hedge->budget_ratio = 0.0;
  d.hedge->budget_burst = 1.0;
  Harness t(d);
  for (int order = 0; order < 3; ++order) {
    OrderFlow f = t.Flow();
    f.Begin(0, t.rng);
    const FlowAction a = f.OnHedgeTimer(10 * kMs, t.rng);
    EXPECT_EQ(a.kind, order == 0 ? Kind::kAttempt : Kind::kWait);
    EXPECT_EQ(f.OnAttemptDone(50 * kMs, Outcome::Success(), true, t.rng, 0).kind, Kind::kDone);
  }
  EXPECT_EQ(t.stats[0].hedges, 1);
  EXPECT_EQ(t.stats[0].hedges_denied, 2);
}

TEST(HedgeFlowTest, NoHedgeAtOrAfterTheDeadline) {
  Harness t(Hedged(2, 10 * kMs));
  OrderFlow f = t.Flow(/*deadline_ns=*/10 * kMs);
  const FlowAction a = f.Begin(0, t.rng);
  EXPECT_EQ(a.hedge_at_ns, kNoDeadline);
  EXPECT_EQ(a.until_ns, 10 * kMs);
  EXPECT_TRUE(a.until_is_deadline);
}

TEST(HedgeFlowTest, EveryCopyIsAnAttemptForTheBreaker) {
  DependencyConfig d = Hedged(1, 10 * kMs);
  BreakerConfig b;
  b.consecutive_failures = 2;
  d.breaker = b;
  Harness t(d);
  OrderFlow f = t.Flow();
  f.Begin(0, t.rng);
  f.OnHedgeTimer(10 * kMs, t.rng);
  f.OnAttemptDone(11 * kMs, Outcome::Http(500), false, t.rng, 0);
  f.OnAttemptDone(12 * kMs, Outcome::Http(500), false, t.rng, 1);
  EXPECT_EQ(f.status(), OrderStatus::kFailed);
  // Two failed copies of one call filled the breaker's window: it opened.
  EXPECT_EQ(t.deps[0].breaker->State(12 * kMs), BreakerState::kOpen);
  // The next order's first copy is refused: the order fails at once.
  OrderFlow g = t.Flow();
  EXPECT_EQ(g.Begin(13 * kMs, t.rng).kind, Kind::kDone);
  EXPECT_EQ(g.reason(), FailReason::kBreakerOpen);
}

DependencyConfig Fanned(int copies, int quorum) {
  DependencyConfig d;
  d.fanout = FanOutConfig{copies, quorum};
  return d;
}

TEST(FanoutFlowTest, TheQuorumDecides) {
  Harness t(Fanned(3, 2));
  OrderFlow f = t.Flow();
  FlowAction a = f.Begin(0, t.rng);
  ASSERT_EQ(a.kind, Kind::kAttempt);
  EXPECT_EQ(a.launch, 7u);
  EXPECT_EQ(a.hedge_at_ns, kNoDeadline);
  EXPECT_EQ(f.OnAttemptDone(5 * kMs, Outcome::Success(), true, t.rng, 2).kind, Kind::kWait);
  EXPECT_EQ(f.OnAttemptDone(6 * kMs, Outcome::Http(503), false, t.rng, 0).kind, Kind::kWait);
  EXPECT_EQ(f.OnAttemptDone(9 * kMs, Outcome::Success(), true, t.rng, 1).kind, Kind::kDone);
  EXPECT_EQ(f.status(), OrderStatus::kCompleted);
  EXPECT_EQ(f.attempts(), 3);
  EXPECT_EQ(t.stats[0].cancelled, 0);
}

TEST(FanoutFlowTest, AnUnreachableQuorumFailsAtOnceAndCancelsTheRest) {
  Harness t(Fanned(4, 3));
  OrderFlow f = t.Flow();
  f.Begin(0, t.rng);
  EXPECT_EQ(f.OnAttemptDone(1 * kMs, Outcome::Http(503), false, t.rng, 3).kind, Kind::kWait);
  EXPECT_EQ(f.OnAttemptDone(2 * kMs, Outcome::Http(503), false, t.rng, 1).kind, Kind::kDone);
  EXPECT_EQ(f.status(), OrderStatus::kFailed);
  EXPECT_EQ(f.reason(), FailReason::kExhausted);
  EXPECT_EQ(f.outstanding(), 0u);
  EXPECT_EQ(t.stats[0].cancelled, 2);
  EXPECT_EQ(t.stats[0].calls, t.stats[0].successes + t.stats[0].failures + t.stats[0].cancelled);
}

ScenarioConfig OneDependency(DependencyConfig dep, double latency_s, int orders) {
  ScenarioConfig sc;
  sc.arrivals.kind = ArrivalConfig::Kind::kConstant;
  sc.arrivals.rate = 10.0;
  sc.duration_ns = static_cast<int64_t>(orders) * kS / 10;
  sc.workers = 4;
  dep.faults.latency.kind = LatencyDist::Kind::kConstant;
  dep.faults.latency.a = latency_s;
  sc.dependencies.push_back(std::move(dep));
  return sc;
}

SimResult Simulate(const ScenarioConfig& sc) {
  EXPECT_TRUE(ValidateScenario(sc).ok()) << ValidateScenario(sc);
  SimEngine engine(sc, SimOptions{});
  const absl::Status s = engine.Run();
  EXPECT_TRUE(s.ok()) << s;
  return std::move(engine.result());
}

TEST(HedgeSimTest, ConstantLatencyTheFirstCopyAlwaysWinsAndTheHedgeIsWasted) {
  // 40 ms answers, a hedge after 10 ms: the first copy answers at 40 ms, the hedge (sent at
  // 10 ms, due at 50 ms) is cancelled after 30 ms of its 40 ms of service: all of it is wasted.
  const ScenarioConfig sc = OneDependency(Hedged(1, 10 * kMs), 0.04, 20);
  const SimResult r = Simulate(sc);
  const int64_t n = r.arrived;
  EXPECT_GE(n, 19);
  EXPECT_EQ(r.by_status[static_cast<int>(OrderStatus::kCompleted)], n);
  const DependencyTotals& d = r.deps[0];
  EXPECT_EQ(d.flow.calls, 2 * n);
  EXPECT_EQ(d.flow.hedges, n);
  EXPECT_EQ(d.flow.hedges_won, 0);
  EXPECT_EQ(d.flow.cancelled, n);
  EXPECT_EQ(d.wasted_attempt_ns, n * 40 * kMs);
  for (const OrderRecord& o : r.orders) {
    EXPECT_EQ(o.end_ns - o.start_ns, 40 * kMs);
    EXPECT_EQ(o.attempts, 2);
  }
  // The time series has the columns of a hedged dependency, summing to the totals.
  int col = -1;
  for (size_t i = 0; i < r.ts_columns.size(); ++i) {
    if (r.ts_columns[i] == "payment.hedges") col = static_cast<int>(i);
  }
  ASSERT_GE(col, 0);
  double sum = 0;
  for (double v : r.ts[col]) sum += v;
  EXPECT_EQ(sum, static_cast<double>(n));
}

TEST(HedgeSimTest, FanoutLatencyIsTheQuorumthOrderStatistic) {
  // Constant latencies: every copy takes 30 ms, so the quorum-th answer comes at 30 ms.
  const SimResult r = Simulate(OneDependency(Fanned(5, 3), 0.03, 10));
  const int64_t n = r.arrived;
  EXPECT_GE(n, 9);
  EXPECT_EQ(r.by_status[static_cast<int>(OrderStatus::kCompleted)], n);
  for (const OrderRecord& o : r.orders) EXPECT_EQ(o.end_ns - o.start_ns, 30 * kMs);
  EXPECT_EQ(r.deps[0].flow.calls, 5 * n);
  // Answers at the same instant arrive in launch order: copies 3 and 4 are cancelled.
  EXPECT_EQ(r.deps[0].flow.cancelled, 2 * n);
  EXPECT_EQ(r.deps[0].flow.successes, 3 * n);
}

std::unique_ptr<LiveEngine> StartLive(const ScenarioConfig& sc) {
  auto e = LiveEngine::Create(sc, LiveOptions{});
  EXPECT_TRUE(e.ok()) << e.status();
  if (!e.ok()) return nullptr;
  EXPECT_TRUE((*e)->Start().ok());
  return std::move(*e);
}

TEST(HedgeLiveTest, TheLiveEngineRunsTheRoundLikeTheSimulator) {
  // As ConstantLatencyTheFirstCopyAlwaysWinsAndTheHedgeIsWasted, on real threads.
  auto e = StartLive(OneDependency(Hedged(1, 10 * kMs), 0.04, 1));
  ASSERT_NE(e, nullptr);
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(e->Submit().ok());
  EXPECT_TRUE(e->WaitIdle(-1));
  e->Shutdown(1'000 * kMs);
  const SimResult& r = **e->result();
  EXPECT_EQ(r.by_status[static_cast<size_t>(OrderStatus::kCompleted)], 6);
  const DependencyTotals& d = r.deps[0];
  EXPECT_EQ(d.flow.calls, 12);
  EXPECT_EQ(d.flow.hedges, 6);
  EXPECT_EQ(d.flow.hedges_won, 0);
  EXPECT_EQ(d.flow.cancelled, 6);
  EXPECT_EQ(d.flow.successes, 6);
  EXPECT_EQ(d.wasted_attempt_ns, 6 * 40 * kMs);
}

TEST(HedgeLiveTest, ShutdownCancelsARoundInProgress) {
  DependencyConfig dep = Fanned(3, 2);
  auto e = StartLive(OneDependency(dep, 10.0, 1));
  ASSERT_NE(e, nullptr);
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(e->Submit().ok());
  const ShutdownReport rep = e->Shutdown(30 * kMs);
  EXPECT_EQ(rep.cancelled, 2);
  const SimResult& r = **e->result();
  EXPECT_EQ(r.in_flight, 0);
  EXPECT_EQ(r.by_status[static_cast<size_t>(OrderStatus::kCancelled)], 2);
  const FlowStats& f = r.deps[0].flow;
  // Each order that reached a worker sent its three copies; all were cancelled.
  EXPECT_EQ(f.calls % 3, 0);
  EXPECT_EQ(f.cancelled, f.calls);
  EXPECT_EQ(f.calls, f.successes + f.failures + f.cancelled);
}

TEST(HedgeLiveTest, ACapacityLimitedRoundIsSimulatorOnly) {
  DependencyConfig dep = Hedged(1, 10 * kMs);
  dep.faults.capacity.max_in_service = 2;
  const auto e = LiveEngine::Create(OneDependency(dep, 0.01, 1), LiveOptions{});
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().message(),
            "payment.hedge with a capacity limit (payment.faults.capacity.max_in_service = 2) is "
            "simulator-only for now: use simulate(), or set payment.hedge=None");
}

TEST(HedgerTest, TheBudgetLogsOnlyItsDryAndRefillEdges) {
  HedgeConfig c;
  c.budget_burst = 1.0;
  c.budget_ratio = 0.5;
  Hedger h(c);
  EXPECT_TRUE(h.TryHedge(1));
  EXPECT_FALSE(h.TryHedge(2));  // dry
  EXPECT_FALSE(h.TryHedge(3));  // still dry: no new edge
  h.OnCall(4);                  // 0.5 tokens: still dry
  EXPECT_FALSE(h.TryHedge(5));
  h.OnCall(6);  // 1 token: refilled
  h.OnCall(7);  // full, no edge
  EXPECT_TRUE(h.TryHedge(8));
  EXPECT_FALSE(h.TryHedge(9));  // dry again
  const std::vector<Hedger::BudgetEvent> e = h.BudgetEvents();
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].t_ns, 2);
  EXPECT_TRUE(e[0].dry);
  EXPECT_EQ(e[1].t_ns, 6);
  EXPECT_FALSE(e[1].dry);
  EXPECT_EQ(e[2].t_ns, 9);
  EXPECT_TRUE(e[2].dry);
  HedgeConfig none;
  none.budget_ratio = -1.0;
  Hedger unlimited(none);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(unlimited.TryHedge(i));
  EXPECT_TRUE(unlimited.BudgetEvents().empty());
}

}  // namespace
}  // namespace rlab::hedge_test
