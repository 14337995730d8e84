// Hot-path costs of the policies, single-threaded and uncontended unless a benchmark says
// otherwise. Targets (issue: foundation): breaker Allow + Record <= 30 ns.
#include <benchmark/benchmark.h>

#include <future>
#include <thread>

#include "rlab/core/clock.h"
#include "rlab/core/rng.h"
#include "rlab/policy/circuit_breaker.h"

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
