#ifndef RLAB_LIVE_LIVE_METRICS_H_
#define RLAB_LIVE_LIVE_METRICS_H_

// The live engine's instrument panel: its metrics registry and the series every part of the
// engine updates directly (counters and gauges are atomics: no lock on the hot paths). Intake,
// worker pool and shutdown write to it; the sampler reads it for the time series and refreshes
// its gauges when scraped. Prometheus family names are shared with the simulated engine.

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "rlab/core/metrics.h"
#include "rlab/core/mutex.h"
#include "rlab/core/outcome.h"
#include "rlab/live/replica_metrics.h"
#include "rlab/live/round_metrics.h"
#include "rlab/model/order_flow.h"
#include "rlab/model/run_result.h"
#include "rlab/model/scenario.h"

namespace rlab {

// The terminal order statuses, in the rlab_worker_jobs family's order.
inline constexpr std::array<OrderStatus, 5> kLiveTerminal = {
    OrderStatus::kCompleted, OrderStatus::kFailed, OrderStatus::kRejected, OrderStatus::kExpired,
    OrderStatus::kCancelled};

// One dependency's series that the hot paths update directly.
struct LiveDepMetrics {
  Counter* calls = nullptr;
  Counter* failures = nullptr;
  std::array<Counter*, 6> retry{};  // retried, succeeded, exhausted, permanent, budget, deadline
  Counter* rejected_breaker = nullptr;
  Counter* rejected_bulkhead = nullptr;
  Counter* rejected_throttle = nullptr;
  Counter* fallbacks = nullptr;
  Counter* trips = nullptr;
  std::array<Counter*, kNumOutcomeKinds> failure_kinds{};
  std::array<std::array<Counter*, 3>, 3> transitions{};  // [from][to]
  std::array<Gauge*, 3> state{};
  Gauge* in_flight = nullptr;
  Gauge* budget_tokens = nullptr;  // token-bucket retry budgets only
};

// The registry and the handles to its series; built once by Init, then shared by the engine's
// parts (the handles never change after Init, the series are thread-safe).
struct LiveMetrics {
  // What Init registers series for, besides the scenario's dependencies.
  struct Sources {
    const ScenarioConfig* config = nullptr;
    std::vector<DependencyRuntime>* deps = nullptr;
    ConcurrencyLimiter* intake_limiter = nullptr;         // intake.limit, or null
    RateGate* intake_rate = nullptr;                      // intake.rate_limit, or null
    std::vector<double> latency_bounds_s;                 // the order latency histogram's bounds
    const std::atomic<int64_t>* dep_wasted_ns = nullptr;  // one per dependency
  };
  // Registers every family of the live engine; an error only for an inconsistent registry.
  absl::Status Init(const Sources& sources);

  // A concurrency limit's gauges (intake or a dependency), refreshed when scraped.
  struct LimitGauges {
    ConcurrencyLimiter* limiter = nullptr;
    Gauge* limit = nullptr;
    Gauge* inflight = nullptr;
  };
  // A rate limit's counters, brought up to the gate's counts when scraped.
  struct RateCounters {
    RateGate* gate = nullptr;
    Counter* refused = nullptr;
    Counter* waits = nullptr;
  };

  MetricsRegistry registry;
  Counter* arrived = nullptr;
  std::array<Counter*, kNumOrderStatuses> by_status{};
  std::array<Counter*, kNumFailReasons> by_reason{};
  Counter* degraded = nullptr;
  Histogram* latency = nullptr;
  Gauge* queue_depth = nullptr;
  Gauge* busy_workers = nullptr;
  Gauge* in_flight = nullptr;
  std::vector<LiveDepMetrics> deps;
  std::vector<LimitGauges> limit_gauges;
  // The mutex keeps two scrapes from adding the same refusals twice.
  Mutex rate_counters_mu;
  std::vector<RateCounters> rate_counters ABSL_GUARDED_BY(rate_counters_mu);
  // rlab_intake_orders{criticality, outcome} and rlab_intake_tenant_orders{tenant, outcome}
  // (intake.shedding; declared tenants only), brought up to the intake's totals when scraped.
  Family<Counter>* intake_classes = nullptr;
  Family<Counter>* intake_tenants = nullptr;
  RoundMetrics rounds;      // hedge / fan-out families and columns
  ReplicaMetrics replicas;  // rlab_replica_*, read from the pools when scraped
};

}  // namespace rlab

#endif  // RLAB_LIVE_LIVE_METRICS_H_
