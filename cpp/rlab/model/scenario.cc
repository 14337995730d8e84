#include "rlab/model/scenario.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/str_format.h"
#include "rlab/core/clock.h"
#include "rlab/core/validate.h"
#include "rlab/model/faults.h"
#include "rlab/model/service_graph.h"

namespace rlab {
namespace {

constexpr double kMaxRate = 1e7;  // orders per second
constexpr int64_t kMaxClients = 1'000'000;
constexpr int64_t kMaxWorkers = 100'000;
constexpr int64_t kMaxQueueCapacity = 10'000'000;
constexpr int64_t kMaxNumKeys = 1'000'000'000;
constexpr int64_t kMaxCache = 10'000'000;
constexpr std::string_view kBalancers[] = {"round_robin", "random", "least_outstanding", "p2c",
                                           "peak_ewma"};
constexpr std::string_view kFallbackKinds[] = {"none", "cache", "default", "cache_or_default"};
constexpr std::string_view kCompositions[] = {"retry_outside_breaker", "breaker_outside_retry"};

bool IsNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

}  // namespace

absl::Status ValidateName(std::string_view field, std::string_view name) {
  if (name.empty()) return Invalid(absl::StrFormat("%s must not be empty", field));
  if (std::all_of(name.begin(), name.end(), IsNameChar)) return absl::OkStatus();
  return Invalid(absl::StrFormat("%s must contain only letters, digits and underscores, got \"%s\"",
                                 field, name));
}

absl::Status ValidateRateSegmentRules(const RateSegment& seg) {
  if (seg.end_ns > seg.start_ns) return absl::OkStatus();
  return Invalid(absl::StrFormat("end must be greater than start (%g), got %g",
                                 NsToSeconds(seg.start_ns), NsToSeconds(seg.end_ns)));
}

RLAB_TABLE(RateSegmentSchema, RateSegment, "RateSegment", "", &ValidateRateSegmentRules,
           schema::Required(RLAB_SECONDS(start, 0, kMaxS, CC, "where the segment starts")),
           schema::Required(RLAB_SECONDS(end, 0, kMaxS, CC, "where the segment ends")),
           schema::Required(RLAB_REAL(rate_start, 0, kMaxRate, CC, "1/s", "the rate at start")),
           schema::Required(RLAB_REAL(rate_end, 0, kMaxRate, CC, "1/s",
                                      "the rate just before end")));

absl::Status ValidateScheduleRules(const ArrivalConfig& a) {
  const std::vector<RateSegment>& segments = a.schedule;
  if (segments.empty()) return Invalid("segments must have at least one segment");
  const auto it = absl::c_adjacent_find(
      segments, [](const RateSegment& x, const RateSegment& y) { return y.start_ns < x.end_ns; });
  if (it != segments.end()) {
    const size_t i = it - segments.begin() + 1;
    return Invalid(absl::StrFormat(
        "segments[%d].start must be >= segments[%d].end (%g), got %g: segments must be sorted "
        "and must not overlap",
        i, i - 1, NsToSeconds(it->end_ns), NsToSeconds(it[1].start_ns)));
  }
  const auto positive = [](const RateSegment& s) { return s.rate_start > 0.0 || s.rate_end > 0.0; };
  if (absl::c_any_of(segments, positive)) return absl::OkStatus();
  return Invalid("segments must have a positive rate somewhere");
}

RLAB_TABLE(ScheduleSchema, ArrivalConfig, "Schedule", "schedule", &ValidateScheduleRules,
           schema::Required(schema::List<&C::schedule, &RateSegmentSchema>(
               "segments", false, "sorted, non-overlapping pieces of the rate")));

// Poisson and ConstantRate arrivals hold the same field (their kind is the tag): ConstantRate
// reuses Poisson's row.
RLAB_TABLE(PoissonSchema, ArrivalConfig, "Poisson", "poisson", nullptr,
           schema::Required(RLAB_REAL(rate, 0, kMaxRate, OC, "1/s", "orders per second")));

RLAB_TABLE(ConstantRateSchema, ArrivalConfig, "ConstantRate", "constant_rate", nullptr,
           PoissonSchema().fields[0]);

RLAB_TABLE(ClosedLoopSchema, ArrivalConfig, "ClosedLoop", "closed_loop", nullptr,
           RLAB_INT(clients, 1, kMaxClients, "", "the customers"),
           RLAB_ONEOF(think_time, LatencyUnion,
                      "the pause between an order's end and the next order"));

absl::Status ValidateTraceRules(const ArrivalConfig& a) {
  const std::vector<int64_t>& t = a.trace_ns;
  if (t.empty()) return Invalid("times must have at least one arrival time");
  // Equal times are fine (a burst); going back in time is not.
  const size_t i = std::is_sorted_until(t.begin(), t.end()) - t.begin();
  if (i == t.size()) return absl::OkStatus();
  return Invalid(
      absl::StrFormat("times must be in ascending order, got times[%d] = %g after times[%d] = %g",
                      i, NsToSeconds(t[i]), i - 1, NsToSeconds(t[i - 1])));
}

RLAB_TABLE(TraceSchema, ArrivalConfig, "Trace", "trace", &ValidateTraceRules,
           schema::Required(schema::Numbers<&C::trace_ns>("times", 0, kMaxS, RLAB_ENDS_CC, "s",
                                                          "arrival times, ascending")));

const UnionSchema<ArrivalConfig>& ArrivalsUnion() {
  using K = ArrivalConfig::Kind;
  static constexpr UnionMember<ArrivalConfig> kMembers[] = {
      {&PoissonSchema, K::kPoisson},       {&ConstantRateSchema, K::kConstant},
      {&ScheduleSchema, K::kSchedule},     {&TraceSchema, K::kTrace},
      {&ClosedLoopSchema, K::kClosedLoop},
  };
  static constexpr UnionSchema<ArrivalConfig> kUnion{"Arrivals", kMembers};
  return kUnion;
}

RLAB_TABLE(ReplicaOverrideSchema, ReplicaOverride, "ReplicaOverride", "", nullptr,
           RLAB_INT(index, 0, kMaxReplicas - 1, "", "the replica, in [0, count), unique"),
           RLAB_CONFIG(faults, FaultsSchema, "its fault model"));

// An override's index is below the count (the tables keep both >= 0), and unique.
absl::Status ValidateReplicasRules(const ReplicasConfig& r) {
  std::vector<bool> seen(r.count, false);
  for (size_t i = 0; i < r.overrides.size(); ++i) {
    const int index = r.overrides[i].index;
    const std::string p = absl::StrFormat("overrides[%d].index", i);
    if (absl::Status s = CheckIntRange(p, index, 0, r.count - 1); !s.ok()) return s;
    if (seen[index]) return Invalid(absl::StrFormat("%s must be unique, got %d twice", p, index));
    seen[index] = true;
  }
  return absl::OkStatus();
}

RLAB_TABLE(ReplicasSchema, ReplicasConfig, "Replicas", "", &ValidateReplicasRules,
           RLAB_INT(count, 1, kMaxReplicas, "replicas", "replicas in the pool"),
           RLAB_CHOICE(balancer, kBalancers, "how a replica is picked"),
           RLAB_SECONDS(decay, 0, kMaxS, OC, "Peak EWMA's time constant"),
           schema::Real<&C::panic_threshold_percent>(
               "panic_threshold", 0, 100, RLAB_ENDS_CC, "%",
               "below this share of replicas not ejected, ejections are ignored"),
           RLAB_CONFIG(outlier, OutlierSchema, "outlier ejection; None: none"),
           RLAB_LIST(overrides, ReplicaOverrideSchema, false,
                     "the replicas whose fault model differs"),
           RLAB_CONFIG(breaker, BreakerSchema, "each replica's own circuit breaker; None: none"));

RLAB_TABLE(IntakeSchema, IntakeConfig, "Intake", "", nullptr,
           RLAB_CONFIG(shedding, SheddingSchema,
                       "criticality classes, tenants and load shedding; None: none"),
           RLAB_CONFIG(discipline, QueueDisciplineSchema, "the job queue's discipline"),
           RLAB_CONFIG(limit, LimitSchema,
                       "an adaptive concurrency limit on admitted orders; None: none"),
           RLAB_CONFIG(rate_limit, RateLimitSchema,
                       "a rate limit on arriving orders, checked first; None: none"));

RLAB_TABLE(FallbackSchema, FallbackConfig, "Fallback", "", nullptr,
           RLAB_CHOICE(kind, kFallbackKinds, "what a failed call falls back to"),
           RLAB_INT(cache_capacity, 1, kMaxCache, "entries", "LRU entries, one per order key"),
           RLAB_SECONDS(cache_ttl, 0, kMaxS, OC, "the oldest cached value served"));

absl::Status ValidateDependencyRules(const DependencyConfig& d) {
  // Names become dotted-path segments and metric label values.
  if (absl::Status s = ValidateName("name", d.name); !s.ok()) return s;
  if (!d.service.empty() && !ValidateName("service", d.service).ok()) {
    return Invalid(absl::StrFormat(
        "service must be None or a service name (letters, digits and underscores), got \"%s\"",
        d.service));
  }
  // A call to a service is answered by the service's own dependencies: a fault model, replicas
  // or charges here would be silently ignored.
  const char* ignored = d.service.empty()            ? nullptr
                        : d.faults != FaultsConfig{} ? "faults"
                        : d.replicas                 ? "replicas"
                        : d.charges                  ? "charges"
                                                     : nullptr;
  if (ignored != nullptr) {
    return Invalid(absl::StrFormat(
        "%s must keep its default when service is set (service='%s': the service's own "
        "dependencies carry faults, replicas and charges)",
        ignored, d.service));
  }
  if (d.hedge && d.fanout) {
    return Invalid("hedge must be None when fanout is set (a call is either hedged or fanned out)");
  }
  if (d.charges && !d.idempotency_keys && (d.hedge || d.fanout)) {
    // Every copy of a hedged or fanned-out write may charge: without an idempotency key the
    // provider applies each of them (the rule of gRFC A6: only idempotent calls are hedged).
    return Invalid(absl::StrFormat(
        "%s must be None on a dependency that charges without idempotency keys (each copy "
        "would be charged; set idempotency_keys=True)",
        d.hedge ? "hedge" : "fanout"));
  }
  if (d.aws_retry && d.retry) {
    return Invalid(
        "retry must be None when aws_retry is set (the AWS retry mode runs the retries)");
  }
  if (d.token_bucket && d.ratio_budget) {
    return Invalid("budget must be either a token bucket or a ratio budget, not both");
  }
  if (d.aws_retry && (d.token_bucket || d.ratio_budget)) {
    return Invalid("budget must be None when aws_retry is set (its retry quota is the budget)");
  }
  if (!d.charges || d.fallback.kind == FallbackConfig::Kind::kNone) return absl::OkStatus();
  // A write cannot be replaced by a cached or default answer: the order would complete as
  // paid while nothing was charged. (Seed 002: degradation does not work for writes.)
  return Invalid(absl::StrFormat(
      "fallback must be \"none\" on a dependency that charges (a failed charge cannot be "
      "served from a fallback: the order would complete without being charged), got \"%s\"",
      kFallbackKinds[static_cast<size_t>(d.fallback.kind)]));
}

RLAB_TABLE(DependencySchema, DependencyConfig, "Dependency", "", &ValidateDependencyRules,
           RLAB_STRING(name, "letters, digits and underscores; unique"),
           RLAB_CONFIG(faults, FaultsSchema, "the fault model"),
           RLAB_CONFIG(retry, RetrySchema, "the retry loop; None: one attempt"),
           RLAB_CONFIG(breaker, BreakerSchema, "a circuit breaker; None: none"),
           schema::OneOfSlots<schema::Slot<&C::token_bucket, &TokenBucketSchema>,
                              schema::Slot<&C::ratio_budget, &RatioBudgetSchema>>(
               "budget", "a retry budget shared by every order's retries; None: none"),
           RLAB_CONFIG(bulkhead, BulkheadSchema, "a bulkhead; None: none"),
           RLAB_CONFIG(throttle, ThrottleSchema, "adaptive client-side throttling; None: none"),
           RLAB_SECONDS(attempt_timeout, 0, kMaxS, CC, "per attempt; 0: none"),
           RLAB_CHOICE(composition, kCompositions, "how retry and breaker are composed"),
           RLAB_CONFIG(fallback, FallbackSchema, "what a failed call falls back to"),
           RLAB_FLAG(idempotency_keys, "charges carry the order's key"),
           RLAB_FLAG(charges, "this dependency takes money"),
           RLAB_CONFIG(hedge, HedgeSchema, "hedged calls; None: none"),
           RLAB_CONFIG(fanout, FanoutSchema, "fanned-out calls; None: none"),
           RLAB_CONFIG(replicas, ReplicasSchema, "a pool of replicas; None: one"),
           RLAB_CONFIG(aws_retry, AwsRetrySchema, "an AWS SDK retry mode; None: none"),
           RLAB_CONFIG(limit, LimitSchema, "an adaptive concurrency limit; None: none"),
           RLAB_CONFIG(rate_limit, RateLimitSchema, "a rate limit; None: none"),
           schema::OrNone(RLAB_STRING(service, "the service it calls; None: a leaf"), 0));

// The rules between a scenario's fields, after every field and nested config passed its table
// (each dependency's and service's name and rules among them): the root's dependencies, none
// named as a scenario field, no shedding at a service, and the graph as a whole.
absl::Status ValidateScenarioRules(const ScenarioConfig& config) {
  absl::Status s = ValidateDependencyList(config.dependencies);
  for (size_t i = 0; i < config.dependencies.size() && s.ok(); ++i) {
    const std::string& name = config.dependencies[i].name;
    // A scenario field's name (the model's, the run options' or the seed's) would make paths
    // such as "workers" or "intake.limit" ambiguous with "<dependency>.<field>".
    const auto named = [&](const FieldSpec& f) { return f.info.name == name; };
    if (name != "seed" && absl::c_none_of(ScenarioSchema().fields, named) &&
        absl::c_none_of(RunOptionsSchema().fields, named)) {
      continue;
    }
    s = Invalid(absl::StrFormat(
        "dependencies[%d].name must not be \"%s\": it is a scenario field, and paths would be "
        "ambiguous",
        i, name));
  }
  // Shedding reads an order's class and tenant: not modelled at a service yet (the root's
  // intake has it).
  for (size_t i = 0; i < config.services.size() && s.ok(); ++i) {
    if (!config.services[i].intake.shedding) continue;
    s = Invalid(absl::StrFormat(
        "services[%s].intake.shedding must be None: load shedding is only modelled at the root's "
        "intake for now (set intake.shedding on the scenario)",
        config.services[i].name));
  }
  return s.ok() ? ValidateServiceGraph(config) : s;
}

RLAB_TABLE(RunOptionsSchema, ScenarioRunOptions, "RunOptions", "", nullptr,
           RLAB_SECONDS(sample_every, 0, kMaxS, CC, "between time-series rows; 0: none"),
           RLAB_FLAG(record_orders, "keep each order's record"),
           RLAB_FLAG(record_events, "keep the event log"));
RLAB_TABLE(ScenarioSchema, ScenarioConfig, "Scenario", "", &ValidateScenarioRules,
           RLAB_ONEOF(arrivals, ArrivalsUnion, "how orders arrive"),
           RLAB_INT(workers, 1, kMaxWorkers, "", "workers serving orders"),
           RLAB_INT(queue_capacity, 0, kMaxQueueCapacity, "orders", "the job queue's bound"),
           RLAB_SECONDS(duration, 0, kMaxS, OC, "the run's length"),
           schema::Bare(RLAB_LIST(dependencies, DependencySchema, true,
                                  "the dependencies each order calls, in order")),
           RLAB_SECONDS(order_deadline, 0, kMaxS, CC, "an order's deadline; 0: none"),
           RLAB_FLAG(release_worker_during_backoff, "a worker serves others while one backs off"),
           RLAB_INT(num_keys, 1, kMaxNumKeys, "", "distinct order keys"),
           RLAB_CONFIG(intake, IntakeSchema, "the intake's admission controls"),
           RLAB_LIST(services, ServiceSchema, true, "the service graph's tiers"));

absl::Status ValidateScenario(const ScenarioConfig& config) {
  return ValidateAt("", ScenarioSchema(), config);
}

}  // namespace rlab
