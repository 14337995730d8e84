// The simulated engine's flat path (sim/flat_run.h) against its general loop: on many drawn
// scenarios of the flat shape, both must give the same result, field by field and bit for bit.

#include "rlab/sim/flat_run.h"

#include <cmath>
#include <cstring>
#include <random>
#include <string>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/model/scenario.h"
#include "rlab/sim/sim_engine.h"

namespace rlab::flat_run_test {
namespace {

constexpr int64_t kS = kNsPerSecond;

// Draws one scenario of the flat shape from `g`.
class Drawer {
 public:
  explicit Drawer(uint64_t seed) : g_(seed) {}

  ScenarioConfig Scenario() {
    ScenarioConfig sc;
    sc.seed = g_();
    sc.duration_ns = Int(1, 40) * kS / 2;
    switch (Int(0, 3)) {
      case 0:
        sc.arrivals.kind = ArrivalConfig::Kind::kPoisson;
        break;
      case 1:
        sc.arrivals.kind = ArrivalConfig::Kind::kConstant;  // arrivals on a grid: ties
        break;
      case 2: {
        sc.arrivals.kind = ArrivalConfig::Kind::kSchedule;
        const int64_t half = sc.duration_ns / 2;
        sc.arrivals.schedule = {{0, half, Real(5, 60), Real(5, 60)},
                                {half, sc.duration_ns, Real(5, 200), Real(0, 60)}};
        break;
      }
      default: {
        sc.arrivals.kind = ArrivalConfig::Kind::kTrace;
        int64_t t = 0;
        for (int i = Int(1, 400); i > 0; --i) {
          t += Int(0, 3) == 0 ? 0 : Int(1, 50) * kS / 1000;  // repeated instants
          if (t >= sc.duration_ns) break;
          sc.arrivals.trace_ns.push_back(t);
        }
        if (sc.arrivals.trace_ns.empty()) sc.arrivals.trace_ns.push_back(0);
        break;
      }
    }
    sc.arrivals.rate = Real(1, 120);
    sc.workers = Int(1, 12);
    sc.queue_capacity = Int(0, 3) == 0 ? Int(0, 4) : Int(5, 500);
    sc.order_deadline_ns = Int(0, 2) == 0 ? Int(1, 3000) * kS / 1000 : 0;
    sc.release_worker_during_backoff = Int(0, 1) == 1;
    DependencyConfig d;
    d.name = Int(0, 1) ? "payment" : "inventory";
    d.faults.latency = Latency();
    d.faults.failure_rate = Int(0, 3) == 0 ? 0.0 : Real(0, 0.9);
    d.faults.mix.http500 = Real(0, 1);
    d.faults.mix.http503 = Real(0, 1);
    d.faults.mix.http429 = Real(0, 1);
    d.faults.mix.timeout = Int(0, 1) ? Real(0, 1) : 0.0;
    d.faults.mix.connection_reset = Real(0, 1);
    d.faults.mix.retry_after_ns = Int(0, 2000) * kS / 1000;
    d.faults.ambiguous_rate = Int(0, 2) == 0 ? Real(0, 0.2) : 0.0;
    d.faults.hang_ns = Int(1, 5000) * kS / 1000;
    if (Int(0, 3) == 0) {
      FaultPhase p;
      p.name = "outage";
      p.start_ns = sc.duration_ns / 4;
      p.end_ns = sc.duration_ns / 2;
      p.failure_rate = Real(0, 1);
      p.latency_multiplier = Real(1, 4);
      d.faults.phases.push_back(p);
    }
    if (Int(0, 1) == 1) {
      CapacityConfig& cap = d.faults.capacity;
      cap.max_in_service = Int(1, 8);
      cap.max_queue = Int(0, 2) == 0 ? -1 : Int(0, 20);
      cap.drop_abandoned = Int(0, 1) == 1;
      if (Int(0, 3) == 0) cap.discipline.kind = QueueDisciplineConfig::Kind::kCodel;
      if (Int(0, 3) == 0) cap.discipline.kind = QueueDisciplineConfig::Kind::kAdaptiveLifo;
    }
    if (Int(0, 2) == 0) {
      d.faults.capacity.load_slope = Real(0, 0.3);
      d.faults.capacity.load_knee = Int(0, 5);
    }
    d.attempt_timeout_ns = Int(0, 2) == 0 ? 0 : Int(1, 1500) * kS / 1000;
    if (Int(0, 3) != 0) {
      RetryConfig r;
      r.max_attempts = Int(1, 6);
      r.backoff.initial_ns = Int(0, 3) == 0 ? 0 : Int(1, 300) * kS / 1000;
      r.backoff.multiplier = Real(1, 3);
      r.backoff.max_ns = std::max<int64_t>(r.backoff.initial_ns, Int(1, 3) * kS);
      r.backoff.jitter = static_cast<Jitter>(Int(0, kNumJitterModes - 1));
      r.backoff.jitter_factor = Real(0, 1);
      r.max_retry_after_ns = Int(0, 3000) * kS / 1000;
      d.retry = r;
    }
    d.charges = Int(0, 1) == 1;
    d.idempotency_keys = !d.charges || Int(0, 1) == 1;
    sc.dependencies.push_back(d);
    return sc;
  }

  SimOptions Options() {
    SimOptions o;
    o.record_orders = Int(0, 1) == 1;
    o.record_events = Int(0, 1) == 1;
    o.sample_every_ns = Int(0, 1) ? 0 : Int(1, 20) * kS / 10;
    if (Int(0, 4) == 0) o.until_ns = Int(0, 20) * kS;
    return o;
  }

 private:
  int Int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g_); }
  double Real(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(g_); }
  LatencyDist Latency() {
    LatencyDist l;
    switch (Int(0, 3)) {
      case 0:  // constant latencies make ties between events
        l.kind = LatencyDist::Kind::kConstant;
        l.a = Int(0, 4) * 0.05;
        break;
      case 1:
        l.kind = LatencyDist::Kind::kExponential;
        l.a = Real(0.001, 0.5);
        break;
      case 2:
        l.kind = LatencyDist::Kind::kLogNormal;
        l.a = Real(0.001, 0.3);
        l.b = Real(0.1, 1.5);
        break;
      default:
        l.kind = LatencyDist::Kind::kUniform;
        l.a = Real(0, 0.1);
        l.b = l.a + Real(0, 0.4);
        break;
    }
    return l;
  }
  std::mt19937_64 g_;
};

std::string Histogram(const LogHistogram& h) {
  std::string s =
      absl::StrFormat("n=%d min=%d max=%d mean=%a q=", h.count(), h.min(), h.max(), h.mean());
  for (int i = 0; i <= 100; ++i) absl::StrAppend(&s, h.Quantile(i / 100.0), ",");
  return s;
}

// Doubles compared bit for bit (NaN columns included).
bool SameBits(double x, double y) { return std::memcmp(&x, &y, sizeof x) == 0; }

void ExpectSame(const SimResult& g, const SimResult& f) {
  EXPECT_EQ(g.arrived, f.arrived);
  EXPECT_EQ(g.by_status, f.by_status);
  EXPECT_EQ(g.by_reason, f.by_reason);
  EXPECT_EQ(g.degraded, f.degraded);
  EXPECT_EQ(g.in_flight, f.in_flight);
  EXPECT_EQ(Histogram(g.latency_completed), Histogram(f.latency_completed));
  EXPECT_EQ(Histogram(g.latency_terminal), Histogram(f.latency_terminal));
  EXPECT_EQ(Histogram(g.queue_wait), Histogram(f.queue_wait));
  EXPECT_TRUE(SameBits(g.sojourn_sum_s, f.sojourn_sum_s)) << g.sojourn_sum_s << f.sojourn_sum_s;
  EXPECT_TRUE(SameBits(g.in_system_integral_s, f.in_system_integral_s));
  EXPECT_EQ(g.busy_integral_ns, f.busy_integral_ns);
  EXPECT_EQ(g.end_ns, f.end_ns);
  EXPECT_EQ(g.charges, f.charges);
  EXPECT_EQ(g.applied_charges, f.applied_charges);
  EXPECT_EQ(g.double_charged_orders, f.double_charged_orders);
  EXPECT_EQ(g.events, f.events);
  ASSERT_EQ(g.deps.size(), f.deps.size());
  for (size_t i = 0; i < g.deps.size(); ++i) {
    const DependencyTotals& x = g.deps[i];
    const DependencyTotals& y = f.deps[i];
    EXPECT_EQ(std::memcmp(&x.flow, &y.flow, sizeof x.flow), 0) << "dep " << i << " flow stats";
    EXPECT_EQ(x.flow.calls, y.flow.calls);
    EXPECT_EQ(x.flow.retries, y.flow.retries);
    EXPECT_EQ(x.flow.failures, y.flow.failures);
    EXPECT_EQ(x.breaker.has_value(), y.breaker.has_value());
    EXPECT_EQ(x.trips, y.trips);
    EXPECT_TRUE(SameBits(x.budget_tokens, y.budget_tokens));
    EXPECT_EQ(x.wasted_service, y.wasted_service);
    EXPECT_EQ(x.rejected_by_capacity, y.rejected_by_capacity);
    EXPECT_EQ(x.max_load, y.max_load);
    EXPECT_EQ(x.wasted_attempt_ns, y.wasted_attempt_ns);
    EXPECT_TRUE(SameBits(x.hedge_tokens, y.hedge_tokens));
    EXPECT_EQ(x.replicas.size(), y.replicas.size());
    EXPECT_EQ(x.panic_picks, y.panic_picks);
    EXPECT_EQ(x.dropped_by_queue, y.dropped_by_queue);
  }
  ASSERT_EQ(g.orders.size(), f.orders.size());
  for (size_t i = 0; i < g.orders.size(); ++i) {
    ASSERT_EQ(std::memcmp(&g.orders[i], &f.orders[i], sizeof(OrderRecord)), 0)
        << "order record " << i;
  }
  EXPECT_EQ(g.ts_columns, f.ts_columns);
  ASSERT_EQ(g.ts.size(), f.ts.size());
  for (size_t c = 0; c < g.ts.size(); ++c) {
    ASSERT_EQ(g.ts[c].size(), f.ts[c].size()) << g.ts_columns[c];
    for (size_t i = 0; i < g.ts[c].size(); ++i) {
      ASSERT_TRUE(SameBits(g.ts[c][i], f.ts[c][i])) << g.ts_columns[c] << " row " << i;
    }
  }
  ASSERT_EQ(g.transitions.size(), f.transitions.size());
  for (size_t i = 0; i < g.transitions.size(); ++i) {
    EXPECT_EQ(g.transitions[i].t_ns, f.transitions[i].t_ns);
    EXPECT_EQ(g.transitions[i].kind, f.transitions[i].kind);
    EXPECT_EQ(g.transitions[i].phase, f.transitions[i].phase);
  }
  EXPECT_EQ(g.origins.enabled(), f.origins.enabled());
  EXPECT_EQ(g.services.size(), f.services.size());
}

struct Both {
  absl::Status general_status;
  absl::Status flat_status;
  SimResult general;
  SimResult flat;
};

Both RunBoth(const ScenarioConfig& sc, SimOptions opt) {
  Both b;
  opt.flat_path = false;
  SimEngine general(sc, opt);
  b.general_status = general.Run();
  b.general = std::move(general.result());
  opt.flat_path = true;
  SimEngine flat(sc, opt);
  b.flat_status = flat.Run();
  b.flat = std::move(flat.result());
  return b;
}

TEST(FlatRunTest, ShapeIsDecidedFromTheConfig) {
  ScenarioConfig sc;
  sc.dependencies.push_back({});
  EXPECT_TRUE(IsFlatScenario(sc));
  sc.dependencies[0].retry = RetryConfig{};
  sc.dependencies[0].faults.capacity.max_in_service = 3;
  sc.order_deadline_ns = kS;
  EXPECT_TRUE(IsFlatScenario(sc));
  ScenarioConfig two = sc;
  two.dependencies.push_back({});
  two.dependencies[1].name = "other";
  EXPECT_FALSE(IsFlatScenario(two));
  ScenarioConfig closed = sc;
  closed.arrivals.kind = ArrivalConfig::Kind::kClosedLoop;
  EXPECT_FALSE(IsFlatScenario(closed));
  ScenarioConfig breaker = sc;
  breaker.dependencies[0].breaker = BreakerConfig{};
  EXPECT_FALSE(IsFlatScenario(breaker));
  ScenarioConfig fallback = sc;
  fallback.dependencies[0].fallback.kind = FallbackConfig::Kind::kDefault;
  EXPECT_FALSE(IsFlatScenario(fallback));
  ScenarioConfig lifo = sc;
  lifo.intake.discipline.kind = QueueDisciplineConfig::Kind::kLifo;
  EXPECT_FALSE(IsFlatScenario(lifo));
}

// The bench's two models (bench/sim_vs_simpy.py), long enough for many ties and retries.
TEST(FlatRunTest, BenchModelsAreIdentical) {
  for (const bool retrying : {false, true}) {
    ScenarioConfig sc;
    sc.arrivals.rate = 180.0;
    sc.workers = retrying ? 29 : 20;
    sc.queue_capacity = 10'000'000;
    sc.duration_ns = 200 * kS;
    sc.seed = 12345;
    sc.release_worker_during_backoff = retrying;
    DependencyConfig d;
    d.faults.latency.kind = LatencyDist::Kind::kExponential;
    d.faults.latency.a = 0.1;
    if (retrying) {
      d.faults.failure_rate = 0.3;
      RetryConfig r;
      r.max_attempts = 4;
      d.retry = r;
    }
    sc.dependencies.push_back(d);
    ASSERT_TRUE(ValidateScenario(sc).ok()) << ValidateScenario(sc);
    SimOptions opt;
    opt.sample_every_ns = 0;
    opt.record_orders = true;
    const Both b = RunBoth(sc, opt);
    ASSERT_TRUE(b.general_status.ok()) << b.general_status;
    ASSERT_TRUE(b.flat_status.ok()) << b.flat_status;
    EXPECT_GT(b.flat.arrived, 30'000);
    ExpectSame(b.general, b.flat);
  }
}

TEST(FlatRunTest, DrawnScenariosAreIdentical) {
  Drawer draw(20261207);
  int checked = 0;
  for (int i = 0; i < 600; ++i) {
    const ScenarioConfig sc = draw.Scenario();
    const SimOptions opt = draw.Options();
    const absl::Status valid = ValidateScenario(sc);
    ASSERT_TRUE(valid.ok()) << "scenario " << i << ": " << valid;
    ASSERT_TRUE(IsFlatScenario(sc));
    SCOPED_TRACE(absl::StrFormat("scenario %d", i));
    const Both b = RunBoth(sc, opt);
    ASSERT_EQ(b.general_status, b.flat_status);
    if (!b.general_status.ok()) continue;
    ExpectSame(b.general, b.flat);
    if (::testing::Test::HasFailure()) return;
    ++checked;
  }
  EXPECT_GT(checked, 550);
}

// The engine's limits hold on the flat path too, with the general loop's errors.
TEST(FlatRunTest, EventLimitsGiveTheSameErrors) {
  ScenarioConfig sc;
  sc.arrivals.kind = ArrivalConfig::Kind::kTrace;
  sc.arrivals.trace_ns.assign(50, 0);  // 50 orders at t = 0, answered in zero time
  sc.duration_ns = kS;
  sc.workers = 4;
  sc.queue_capacity = 100;
  sc.dependencies.push_back({});
  ASSERT_TRUE(ValidateScenario(sc).ok()) << ValidateScenario(sc);
  SimOptions opt;
  opt.max_events_at_one_instant = 20;
  Both b = RunBoth(sc, opt);
  EXPECT_EQ(b.general_status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(b.general_status, b.flat_status);
  opt.max_events_at_one_instant = 1'000;
  opt.max_events = 30;
  b = RunBoth(sc, opt);
  EXPECT_EQ(b.general_status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(b.general_status, b.flat_status);
}

}  // namespace
}  // namespace rlab::flat_run_test
