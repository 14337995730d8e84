#ifndef RLAB_MODEL_SCENARIO_H_
#define RLAB_MODEL_SCENARIO_H_

// The whole description of an experiment: load, intake, workers, and the dependencies each order
// calls with their fault models and policy stacks. Both engines run from this one structure; the
// Python `Scenario` dataclass tree maps onto it field by field (seconds there, nanoseconds here).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "rlab/core/clock.h"
#include "rlab/core/schema.h"
#include "rlab/model/limits.h"
#include "rlab/policy/aws_retry.h"
#include "rlab/policy/bulkhead.h"
#include "rlab/policy/circuit_breaker.h"
#include "rlab/policy/hedge.h"
#include "rlab/policy/load_balancer.h"
#include "rlab/policy/load_shedder.h"
#include "rlab/policy/outlier_detector.h"
#include "rlab/policy/queue_discipline.h"
#include "rlab/policy/retry.h"
#include "rlab/policy/retry_budget.h"
#include "rlab/policy/throttle.h"

namespace rlab {

// A distribution of durations (latency, think time). Python: Constant(value), Exponential(mean),
// LogNormal(median, sigma), Uniform(low, high), Mixture([(weight, dist), ...]).
struct LatencyDist {
  enum class Kind : uint8_t { kConstant, kExponential, kLogNormal, kUniform, kMixture };
  Kind kind = Kind::kConstant;
  // kConstant: a = value; kExponential: a = mean; kLogNormal: a = median, b = sigma;
  // kUniform: [a, b]. Seconds.
  double a = 0.0;
  double b = 0.0;
  // kMixture only: weights (> 0, normalised when sampling) and components (no nested mixtures).
  std::vector<double> weights = {};
  std::vector<LatencyDist> components = {};
  bool operator==(const LatencyDist&) const = default;
};

// The kinds of failure a dependency produces, as relative weights (normalised when drawing).
struct FailureMix {
  double http500 = 0.0;
  double http503 = 1.0;
  double http429 = 0.0;  // answered with a Retry-After hint of retry_after_ns
  double timeout = 0.0;  // the call hangs past the caller's attempt timeout
  double connection_reset = 0.0;
  int64_t retry_after_ns = kNsPerSecond;
  bool operator==(const FailureMix&) const = default;
};

// A time window that overrides parts of the fault model: outages, brownouts, recoveries.
struct FaultPhase {
  std::string name;  // e.g. "outage"; used in summaries (time to detect / recover)
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  std::optional<double> failure_rate;
  std::optional<FailureMix> mix;
  std::optional<LatencyDist> latency;
  double latency_multiplier = 1.0;  // applied to whichever latency is in force
  bool operator==(const FaultPhase&) const = default;
};

// How much work a dependency can take at once. Without it, a dependency serves every call in
// parallel; with it, at most max_in_service calls are served and the rest wait in line, and
// latency may grow with load (the ingredient of retry storms and metastable failures).
struct CapacityConfig {
  int max_in_service = 0;  // 0: unlimited
  int max_queue =
      -1;  // calls allowed to wait; beyond it the call fails at once with 503; -1: unbounded
  // Service time is multiplied by 1 + load_slope * max(0, load - load_knee), where load is the
  // number of calls in service when service starts (this one included): calls in flight when
  // there is no capacity limit, at most max_in_service with one.
  double load_slope = 0.0;
  int load_knee = 0;
  // Whether the server drops a waiting call whose caller already gave up (timed out). Real
  // servers usually do not, and that wasted work is what keeps a metastable failure going.
  bool drop_abandoned = false;
  // Which waiting call the server takes next, and which it fails at once with 503 (CoDel).
  QueueDisciplineConfig discipline = {};
  bool operator==(const CapacityConfig&) const = default;
};

// One dependency's behaviour: what fails, how long calls take, and when.
struct FaultsConfig {
  double failure_rate = 0.0;  // probability that an attempt fails, in [0, 1]
  FailureMix mix;
  LatencyDist latency = {.a = 0.01};  // service time of every attempt (10 ms, as rl.Faults)
  std::vector<FaultPhase> phases;
  CapacityConfig capacity;
  // Probability that a successful attempt commits its effect but loses the response: the caller
  // sees a timeout, and a retry without an idempotency key charges twice.
  double ambiguous_rate = 0.0;
  // How long a hung call lasts when the caller set no attempt timeout and has no deadline.
  int64_t hang_ns = 30 * kNsPerSecond;
  bool operator==(const FaultsConfig&) const = default;
};

// What a non-critical dependency falls back to when its call fails. With a fallback the order
// continues, marked degraded; without one a failure fails the order.
struct FallbackConfig {
  enum class Kind : uint8_t { kNone, kCache, kDefault, kCacheOrDefault };
  Kind kind = Kind::kNone;
  int cache_capacity = 1000;                 // LRU entries, one per order key
  int64_t cache_ttl_ns = 60 * kNsPerSecond;  // a cached value older than this is not served
};

// How retry and breaker are composed around a dependency.
enum class Composition : uint8_t {
  // Retry wraps the breaker; a breaker rejection is permanent and stops the loop at once
  // (seeds 000/003).
  kRetryOutsideBreaker,
  // The breaker admits the whole retry loop once and records its final result (seed 002's
  // breaker-gated retries).
  kBreakerOutsideRetry,
};

// One replica whose fault model differs from the dependency's (a slow or failing replica).
struct ReplicaOverride {
  int index = 0;  // in [0, count), unique
  FaultsConfig faults;
};

// A dependency served by a pool of replicas (Python: rl.Replicas). Every replica runs the
// dependency's fault model, capacity included (each replica has its own server line), except
// those listed in `overrides`; each attempt (each copy of a round) goes to the replica the
// balancer picks, skipping those the outlier detector ejected. See model/replica_pool.h.
struct ReplicasConfig {
  int count = 2;  // in [1, kMaxReplicas]
  LbKind balancer = LbKind::kRoundRobin;
  int64_t decay_ns = 10 * kNsPerSecond;  // Peak EWMA's time constant
  double panic_threshold_percent = 50.0;
  std::optional<OutlierDetectionConfig> outlier;  // its `replicas` is ignored (count is used)
  std::vector<ReplicaOverride> overrides;
  // Each replica's own circuit breaker, built from this (model/replica_pool.h); none if absent.
  std::optional<BreakerConfig> breaker;
};

// The most replicas a dependency may have (bounds the `replica` label of the metrics).
inline constexpr int kMaxReplicas = 1000;

// One named dependency with its fault model and its policy stack; any policy may be absent.
struct DependencyConfig {
  std::string name = "payment";
  FaultsConfig faults;
  std::optional<RetryConfig> retry;  // absent: one attempt
  std::optional<BreakerConfig> breaker;
  std::optional<TokenBucketConfig> token_bucket;  // at most one budget
  std::optional<RatioBudgetConfig> ratio_budget;
  std::optional<BulkheadConfig> bulkhead;
  std::optional<ThrottleConfig> throttle;
  int64_t attempt_timeout_ns = 0;  // 0: none (the order deadline still caps each attempt)
  Composition composition = Composition::kRetryOutsideBreaker;
  FallbackConfig fallback;
  // Whether charges carry the order's idempotency key (the ledger then applies a retried charge
  // once). Only meaningful for a dependency with `charges`.
  bool idempotency_keys = true;
  bool charges = false;  // this dependency takes money: the ledger counts its committed calls
  // Request patterns (at most one of the two): each call of the retry loop is a round of copies.
  // A write (`charges`) needs idempotency keys for either: every copy may charge.
  std::optional<HedgeConfig> hedge;
  std::optional<FanOutConfig> fanout;
  // A pool of replicas behind a balancer; absent: one server, as before.
  std::optional<ReplicasConfig> replicas;
  // An AWS SDK retry mode (botocore "standard"/"adaptive", model/aws_retry_call.h) running the
  // retry loop instead of `retry`; its retry quota replaces a retry budget.
  std::optional<AwsRetryConfig> aws_retry;
  // A client-side adaptive concurrency limit in front of the dependency (model/limits.h).
  std::optional<LimitConfig> limit;
  // A client-side rate limit in front of the dependency (model/limits.h).
  std::optional<RateLimitConfig> rate_limit;
  // Service graphs: the name of the scenario's service this dependency calls (each attempt is a
  // request to it); empty: a leaf with its own fault model (model/service_graph.h).
  std::string service;
};

// One piece of a rate schedule: the rate moves linearly from rate_start to rate_end over
// [start, end) (equal rates give a step; short high segments give spikes).
struct RateSegment {
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  double rate_start = 0.0;  // orders per second
  double rate_end = 0.0;
};

// Where orders come from.
struct ArrivalConfig {
  enum class Kind : uint8_t { kPoisson, kConstant, kSchedule, kTrace, kClosedLoop };
  Kind kind = Kind::kPoisson;
  double rate = 100.0;                // kPoisson, kConstant: orders per second
  std::vector<RateSegment> schedule;  // kSchedule: a Poisson process with this time-varying rate
  std::vector<int64_t> trace_ns;      // kTrace: arrival times, ascending
  int clients = 10;                   // kClosedLoop: each sends its next order when the last ends
  LatencyDist think_time;             // kClosedLoop: pause between an order's end and the next
};

// Overload control at the service's intake, in front of the job queue and the workers (Python:
// `Intake`, `intake.*` paths). Empty: admit whatever the queue has room for, first come first
// served.
struct IntakeConfig {
  // Criticality classes, tenants and load shedding (policy/load_shedder.h); absent: every order
  // is `default`, of no tenant, and only a full queue refuses it.
  std::optional<SheddingConfig> shedding;
  QueueDisciplineConfig discipline;  // the job queue's service order and drops (FIFO: none)
  // A server-side adaptive concurrency limit on admitted orders (model/limits.h).
  std::optional<LimitConfig> limit;
  // A rate limit on arriving orders, checked before the concurrency limit (model/limits.h).
  std::optional<RateLimitConfig> rate_limit;
};

// A tier of a service graph (Python: rl.Service): a small scenario without arrivals, called by
// dependencies whose `service` names it. See model/service_graph.h.
struct ServiceConfig {
  std::string name;
  int workers = 8;
  int queue_capacity = 64;
  int64_t deadline_ns = 0;  // 0: only the caller's remaining time bounds a request
  std::vector<DependencyConfig> dependencies;
  // Its own intake (model/service_intake.h): a rate limit, the job queue's discipline and an
  // adaptive concurrency limit; shedding is refused at a service for now.
  IntakeConfig intake;
};

// The experiment.
struct ScenarioConfig {
  ArrivalConfig arrivals;
  int workers = 8;
  int queue_capacity = 64;
  int64_t duration_ns = 60 * kNsPerSecond;  // arrivals stop here; in-flight orders then drain
  uint64_t seed = 0;
  int64_t order_deadline_ns = 0;  // 0: none; otherwise absolute deadline = arrival + this
  // The worker sleeps through backoff (false, the seed lab) or parks the order in a delay queue
  // and serves others meanwhile (true).
  bool release_worker_during_backoff = false;
  int num_keys = 1000;  // orders carry a key in [0, num_keys): what fallback caches are keyed by
  std::vector<DependencyConfig> dependencies;
  IntakeConfig intake;
  // The other tiers of a service graph; the scenario itself is the root service. Empty: one
  // service, as before.
  std::vector<ServiceConfig> services;
};

// The most dependencies a scenario may have (the live engine keeps per-order dependency sets in
// 32-bit masks).
inline constexpr size_t kMaxDependencies = 16;

// `name` as the value of the field `field` names a dependency or a service: not empty, only
// letters, digits and underscores (names become dotted-path segments and metric label values).
absl::Status ValidateName(std::string_view field, std::string_view name);

// The field tables of RateSegment and of a schedule of arrivals (an ArrivalConfig of kind
// kSchedule; Python: rl.RateSegment, rl.Schedule) and their rules (end after start; segments
// sorted, not overlapping, some rate positive).
const ConfigSchema<RateSegment>& RateSegmentSchema();
// ... and of the Poisson, constant-rate and closed-loop arrivals (Python: rl.Poisson,
// rl.ConstantRate, rl.ClosedLoop), each over the ArrivalConfig of its kind.
const ConfigSchema<ArrivalConfig>& PoissonSchema();
const ConfigSchema<ArrivalConfig>& ConstantRateSchema();
const ConfigSchema<ArrivalConfig>& ClosedLoopSchema();
const ConfigSchema<ArrivalConfig>& ScheduleSchema();
absl::Status ValidateRateSegmentRules(const RateSegment& seg);
absl::Status ValidateScheduleRules(const ArrivalConfig& a);

// Trace arrivals (rl.Trace: a list of seconds, ascending), and the arrival processes as a union
// of the tables above over ArrivalConfig (the scenario's `arrivals`).
const ConfigSchema<ArrivalConfig>& TraceSchema();
absl::Status ValidateTraceRules(const ArrivalConfig& a);
const UnionSchema<ArrivalConfig>& ArrivalsUnion();

// The field tables of ReplicaOverride and ReplicasConfig (Python: rl.ReplicaOverride,
// rl.Replicas) and the rules between their fields (override indexes below count, unique).
const ConfigSchema<ReplicaOverride>& ReplicaOverrideSchema();
const ConfigSchema<ReplicasConfig>& ReplicasSchema();
absl::Status ValidateReplicasRules(const ReplicasConfig& r);

// The field table of IntakeConfig (Python: rl.Intake).
const ConfigSchema<IntakeConfig>& IntakeSchema();

// The field table of FallbackConfig (Python: rl.Fallback).
const ConfigSchema<FallbackConfig>& FallbackSchema();

// The field table of DependencyConfig (Python: rl.Dependency; `budget` a union row filling
// `token_bucket` or `ratio_budget`) and its rules (names usable in paths; hedge / fanout, charges,
// aws_retry and fallback combinations).
const ConfigSchema<DependencyConfig>& DependencySchema();
absl::Status ValidateDependencyRules(const DependencyConfig& d);

// The scenario's own table (read and written by the bindings; not a Python dataclass's).
const ConfigSchema<ScenarioConfig>& ScenarioSchema();

// The scenario fields that configure a run rather than the model (read by the engines), and
// their table: rl.Scenario holds them beside the model's fields and the seed.
struct ScenarioRunOptions {
  int64_t sample_every_ns = kNsPerSecond;  // 0: no time series
  bool record_orders = true;
  bool record_events = true;
};
const ConfigSchema<ScenarioRunOptions>& RunOptionsSchema();

// Checks everything, naming the dotted path of the first bad field as the Python API spells it,
// with dependencies addressed by name (e.g. "payment.faults.failure_rate must be ...").
absl::Status ValidateScenario(const ScenarioConfig& config);

}  // namespace rlab

#endif  // RLAB_MODEL_SCENARIO_H_
