// Hot-path costs of the policies, single-threaded and uncontended unless a benchmark says
// otherwise. Targets (issue: foundation): breaker Allow + Record <= 30 ns. Backoff and the token
// bucket have no numeric target; bench/run.py reports them for information.
#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "rlab/core/clock.h"
#include "rlab/core/rng.h"
#include "rlab/policy/backoff.h"
#include "rlab/policy/circuit_breaker.h"
#include "rlab/policy/load_balancer.h"
#include "rlab/policy/outlier_detector.h"
#include "rlab/policy/retry_budget.h"

namespace rlab {
namespace {

void BM_BreakerAllowRecordClosed(benchmark::State& state) {
  BreakerConfig config;
  config.consecutive_failures = 5;
  CircuitBreaker breaker(config);
  int64_t now_ns = 0;
  for (auto _ : state) {
    const BreakerPermit p = breaker.Allow(++now_ns);
    breaker.Record(p.token, CallResult::kSuccess, now_ns);
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_BreakerAllowRecordClosed);

void BM_BreakerAllowRecordRateWindow(benchmark::State& state) {
  BreakerConfig config;
  config.consecutive_failures = 0;
  config.failure_rate_threshold = 0.5;
  config.window = state.range(0) == 0 ? WindowKind::kCount : WindowKind::kTime;
  CircuitBreaker breaker(config);
  int64_t now_ns = 0;
  for (auto _ : state) {
    now_ns += 1000;
    const BreakerPermit p = breaker.Allow(now_ns);
    breaker.Record(p.token, CallResult::kSuccess, now_ns);
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_BreakerAllowRecordRateWindow)->Arg(0)->Arg(1)->ArgName("time_window");

void BM_BreakerRejectOpen(benchmark::State& state) {
  BreakerConfig config;
  config.consecutive_failures = 1;
  config.open_for_ns = int64_t{1} << 60;
  CircuitBreaker breaker(config);
  breaker.Record(breaker.Allow(0).token, CallResult::kFailure, 0);
  int64_t now_ns = 0;
  for (auto _ : state) benchmark::DoNotOptimize(breaker.Allow(++now_ns));
}
BENCHMARK(BM_BreakerRejectOpen);

// The same shared breaker from several threads: contention on its one mutex.
void BM_BreakerAllowRecordContended(benchmark::State& state) {
  static CircuitBreaker* breaker = [] {
    BreakerConfig config;
    config.consecutive_failures = 5;
    return new CircuitBreaker(config);
  }();
  int64_t now_ns = 0;
  for (auto _ : state) {
    const BreakerPermit p = breaker->Allow(++now_ns);
    breaker->Record(p.token, CallResult::kSuccess, now_ns);
  }
}
BENCHMARK(BM_BreakerAllowRecordContended)->Threads(1)->Threads(2);

void BM_SteadyClockNow(benchmark::State& state) {
  SteadyClock clock;
  for (auto _ : state) benchmark::DoNotOptimize(clock.NowNs());
}
BENCHMARK(BM_SteadyClockNow);

void BM_RandomUniform(benchmark::State& state) {
  RandomStream rng(1);
  for (auto _ : state) benchmark::DoNotOptimize(rng.Uniform01());
}
BENCHMARK(BM_RandomUniform);

// ---------------------------------------------------------------------------------------------
// Backoff: one delay computation, per jitter mode (Arg = the Jitter enum value).

// Uniform draws made before timing, so that the benchmark measures the delay arithmetic and not
// the random generator (BM_RandomUniform measures that). 64 draws, cycled.
const std::array<double, 64>& PrecomputedUniforms() {
  static const std::array<double, 64> draws = [] {
    std::array<double, 64> d{};
    RandomStream rng(7);
    for (double& u : d) u = rng.Uniform01();
    return d;
  }();
  return draws;
}

BackoffConfig BenchBackoffConfig(int64_t jitter) {
  BackoffConfig config;  // initial 0.1 s, multiplier 2, max 30 s
  config.jitter = static_cast<Jitter>(jitter);
  config.jitter_factor = 0.5;
  return config;
}

// The pure function: retry numbers cycle 1..8 (below and at the cap of 30 s), the previous delay
// is fed back as a caller would for the decorrelated recurrence.
void BM_BackoffDelayNs(benchmark::State& state) {
  const BackoffConfig config = BenchBackoffConfig(state.range(0));
  const auto& draws = PrecomputedUniforms();
  int64_t previous_ns = config.initial_ns;
  size_t i = 0;
  for (auto _ : state) {
    const int64_t retry = static_cast<int64_t>(i & 7) + 1;
    previous_ns = BackoffDelayNs(config, retry, previous_ns, draws[i & 63]);
    benchmark::DoNotOptimize(previous_ns);
    ++i;
  }
  state.SetLabel(std::string(JitterName(config.jitter)));
}
BENCHMARK(BM_BackoffDelayNs)->DenseRange(0, kNumJitterModes - 1)->ArgName("jitter");

// The stateful sequence of one caller, including the draw from a seeded stream (what the engines
// do per retry); reset every 8 retries, like a call that used up its attempts.
void BM_BackoffNextDelayWithDraw(benchmark::State& state) {
  Backoff backoff(BenchBackoffConfig(state.range(0)));
  RandomStream rng(11);
  for (auto _ : state) {
    if (backoff.retries() == 8) backoff.Reset();
    benchmark::DoNotOptimize(backoff.NextDelayNs(rng.Uniform01()));
  }
  state.SetLabel(std::string(JitterName(backoff.config().jitter)));
}
BENCHMARK(BM_BackoffNextDelayWithDraw)->DenseRange(0, kNumJitterModes - 1)->ArgName("jitter");

// ---------------------------------------------------------------------------------------------
// Token bucket retry budget (gRFC A6), uncontended: each call takes the bucket's mutex once.

void BM_TokenBucketTryAcquireRetry(benchmark::State& state) {
  TokenBucketBudget budget(TokenBucketConfig{});
  int64_t now_ns = 0;
  for (auto _ : state) benchmark::DoNotOptimize(budget.TryAcquireRetry(++now_ns));
}
BENCHMARK(BM_TokenBucketTryAcquireRetry);

// Outcomes alternate success / retryable failure, so that the level really moves (and clamps).
void BM_TokenBucketOnOutcome(benchmark::State& state) {
  TokenBucketBudget budget(TokenBucketConfig{});
  int64_t now_ns = 0;
  bool success = false;
  for (auto _ : state) {
    success = !success;
    budget.OnOutcome(++now_ns, success, !success);
  }
  benchmark::DoNotOptimize(budget.milli_tokens());
}
BENCHMARK(BM_TokenBucketOnOutcome);

// What a retry loop does per failed attempt: record the retryable failure, then ask for a retry.
void BM_TokenBucketFailureThenAcquire(benchmark::State& state) {
  TokenBucketBudget budget(TokenBucketConfig{});
  int64_t now_ns = 0;
  size_t i = 0;
  for (auto _ : state) {
    ++now_ns;
    // 19 successes (+1.9 tokens) per retryable failure (-1): the bucket stays near full and the
    // retry is allowed, as in a healthy system.
    const bool success = (i++ % 20) != 0;
    budget.OnOutcome(now_ns, success, !success);
    if (!success) benchmark::DoNotOptimize(budget.TryAcquireRetry(now_ns));
  }
}
BENCHMARK(BM_TokenBucketFailureThenAcquire);

// One call through a load balancer over 10 replicas: Pick, OnStart, OnEnd (issue #14: the
// service-graph simulation needs this per call). Arg: the kind (0 round robin .. 4 Peak EWMA).
void BM_LoadBalancerPickStartEnd(benchmark::State& state) {
  LoadBalancerConfig config;
  config.kind = static_cast<LbKind>(state.range(0));
  config.replicas = 10;
  LoadBalancer lb(config);
  RandomStream rng(1);
  int64_t now_ns = 0;
  for (auto _ : state) {
    now_ns += 1000;
    const int r = lb.Pick(now_ns, rng.Uniform01(), rng.Uniform01());
    lb.OnStart(r);
    lb.OnEnd(r, now_ns, 500'000, true);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_LoadBalancerPickStartEnd)->DenseRange(0, 4)->ArgName("kind");

// The same for P2C with an Envoy outlier detector attached (nothing ejected: the common case).
void BM_LoadBalancerWithOutlierDetector(benchmark::State& state) {
  OutlierDetectionConfig oc;
  oc.replicas = 10;
  LoadBalancerConfig config;
  config.kind = LbKind::kPowerOfTwo;
  config.replicas = 10;
  LoadBalancer lb(config, std::make_shared<OutlierDetector>(oc));
  RandomStream rng(1);
  int64_t now_ns = 0;
  for (auto _ : state) {
    now_ns += 1000;
    const int r = lb.Pick(now_ns, rng.Uniform01(), rng.Uniform01());
    lb.OnStart(r);
    lb.OnEnd(r, now_ns, 500'000, true);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_LoadBalancerWithOutlierDetector);

}  // namespace
}  // namespace rlab

// glibc skips the atomic instructions of an uncontended mutex while a process has a single thread;
// the lab never runs that way (Python, workers), so an idle thread is kept alive for honesty.
int main(int argc, char** argv) {
  std::promise<void> stop;
  std::thread idle([f = stop.get_future()]() mutable { f.wait(); });
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  stop.set_value();
  idle.join();
  return 0;
}
