#include "rlab/model/scenario.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "rlab/core/clock.h"
#include "rlab/core/validate.h"
#include "rlab/model/faults.h"
#include "rlab/model/service_graph.h"
#include "rlab/model/service_intake.h"

namespace rlab {
namespace {

constexpr double kMaxArrivalRate = 1e7;  // orders per second
constexpr int64_t kMaxClients = 1'000'000;
constexpr int64_t kMaxWorkers = 100'000;
constexpr int64_t kMaxQueueCapacity = 10'000'000;
constexpr int64_t kMaxNumKeys = 1'000'000'000;
constexpr int64_t kMaxCacheCapacity = 10'000'000;

// Top-level scenario fields. A dependency may not take one of these names: sweep paths such as
// "workers" or "arrivals.rate" would otherwise be ambiguous with "<dependency>.<field>".
constexpr std::array<std::string_view, 9> kReservedNames = {"arrivals",
                                                            "workers",
                                                            "queue_capacity",
                                                            "duration",
                                                            "seed",
                                                            "order_deadline",
                                                            "release_worker_during_backoff",
                                                            "num_keys",
                                                            "dependencies"};

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

bool IsNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

absl::Status ValidateDependencyName(const ScenarioConfig& config, size_t index) {
  const std::string& name = config.dependencies[index].name;
  const std::string p = absl::StrFormat("dependencies[%d].name", index);
  if (name.empty()) return Invalid(absl::StrFormat("%s must not be empty", p));
  for (char c : name) {
    if (!IsNameChar(c)) {
      // Names become dotted-path segments and metric label values.
      return Invalid(absl::StrFormat(
          "%s must contain only letters, digits and underscores, got \"%s\"", p, name));
    }
  }
  for (std::string_view reserved : kReservedNames) {
    if (name == reserved) {
      return Invalid(absl::StrFormat(
          "%s must not be \"%s\": it is a scenario field, and paths would be ambiguous", p, name));
    }
  }
  for (size_t j = 0; j < index; ++j) {
    if (config.dependencies[j].name == name) {
      return Invalid(absl::StrFormat("%s \"%s\" is already used by dependencies[%d]", p, name, j));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateRateSegmentRules(const RateSegment& seg) {
  if (seg.end_ns > seg.start_ns) return absl::OkStatus();
  return Invalid(absl::StrFormat("end must be greater than start (%g), got %g",
                                 NsToSeconds(seg.start_ns), NsToSeconds(seg.end_ns)));
}

const ConfigSchema<RateSegment>& RateSegmentSchema() {
  using C = RateSegment;
  constexpr Bound kC = Bound::kClosed;
  static const FieldSpec<C> kFields[] = {
      schema::Required(schema::Seconds<&C::start_ns>("start", 0, kMaxDurationS, kC, kC,
                                                     "where the segment starts")),
      schema::Required(
          schema::Seconds<&C::end_ns>("end", 0, kMaxDurationS, kC, kC, "where the segment ends")),
      schema::Required(schema::Real<&C::rate_start>("rate_start", 0, kMaxArrivalRate, kC, kC, "1/s",
                                                    "the rate at start")),
      schema::Required(schema::Real<&C::rate_end>("rate_end", 0, kMaxArrivalRate, kC, kC, "1/s",
                                                  "the rate just before end")),
  };
  static const ConfigSchema<C> kSchema{"RateSegment", kFields, "", &ValidateRateSegmentRules};
  return kSchema;
}

absl::Status ValidateScheduleRules(const ArrivalConfig& a) {
  const std::vector<RateSegment>& segments = a.schedule;
  if (segments.empty()) return Invalid("segments must have at least one segment");
  bool any_positive = false;
  for (size_t i = 0; i < segments.size(); ++i) {
    if (i > 0 && segments[i].start_ns < segments[i - 1].end_ns) {
      return Invalid(absl::StrFormat(
          "segments[%d].start must be >= segments[%d].end (%g), got %g: segments must be sorted "
          "and must not overlap",
          i, i - 1, NsToSeconds(segments[i - 1].end_ns), NsToSeconds(segments[i].start_ns)));
    }
    any_positive = any_positive || segments[i].rate_start > 0.0 || segments[i].rate_end > 0.0;
  }
  if (!any_positive) return Invalid("segments must have a positive rate somewhere");
  return absl::OkStatus();
}

const ConfigSchema<ArrivalConfig>& ScheduleSchema() {
  using C = ArrivalConfig;
  static const FieldSpec<C> kFields[] = {
      schema::Required(schema::List<&C::schedule, &RateSegmentSchema>(
          "segments", /*by_name=*/false, "sorted, non-overlapping pieces of the rate")),
  };
  static const ConfigSchema<C> kSchema{"Schedule", kFields, "schedule", &ValidateScheduleRules};
  return kSchema;
}

// Poisson and ConstantRate arrivals hold the same field (their kind is the tag).
const ConfigSchema<ArrivalConfig>& PoissonSchema() {
  using C = ArrivalConfig;
  static const FieldSpec<C> kFields[] = {
      schema::Required(schema::Real<&C::rate>("rate", 0, kMaxArrivalRate, Bound::kOpen,
                                              Bound::kClosed, "1/s", "orders per second")),
  };
  static const ConfigSchema<C> kSchema{"Poisson", kFields, "poisson"};
  return kSchema;
}

const ConfigSchema<ArrivalConfig>& ConstantRateSchema() {
  static const ConfigSchema<ArrivalConfig> kSchema{"ConstantRate", PoissonSchema().fields,
                                                   "constant_rate"};
  return kSchema;
}

const ConfigSchema<ArrivalConfig>& ClosedLoopSchema() {
  using C = ArrivalConfig;
  static const FieldSpec<C> kFields[] = {
      schema::Int<&C::clients>("clients", 1, kMaxClients, "", "the customers"),
      schema::OneOf<&C::think_time, &LatencyUnion>(
          "think_time", "the pause between an order's end and the next order"),
  };
  static const ConfigSchema<C> kSchema{"ClosedLoop", kFields, "closed_loop"};
  return kSchema;
}

absl::Status ValidateTraceRules(const ArrivalConfig& a) {
  const std::vector<int64_t>& t = a.trace_ns;
  if (t.empty()) return Invalid("times must have at least one arrival time");
  for (size_t i = 1; i < t.size(); ++i) {
    if (t[i] < t[i - 1]) {  // equal times are fine (a burst); going back in time is not
      return Invalid(absl::StrFormat(
          "times must be in ascending order, got times[%d] = %g after times[%d] = %g", i,
          NsToSeconds(t[i]), i - 1, NsToSeconds(t[i - 1])));
    }
  }
  return absl::OkStatus();
}

const ConfigSchema<ArrivalConfig>& TraceSchema() {
  using C = ArrivalConfig;
  static constexpr FieldSpec<C> kFields[] = {
      schema::Required(schema::Numbers<&C::trace_ns>("times", 0, kMaxDurationS, Bound::kClosed,
                                                     Bound::kClosed, "s",
                                                     "arrival times, ascending")),
  };
  static constexpr ConfigSchema<C> kSchema{"Trace", kFields, "trace", &ValidateTraceRules};
  return kSchema;
}

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

const ConfigSchema<ReplicaOverride>& ReplicaOverrideSchema() {
  using C = ReplicaOverride;
  static const FieldSpec<C> kFields[] = {
      schema::Int<&C::index>("index", 0, kMaxReplicas - 1, "",
                             "the replica, in [0, count), unique"),
      schema::Config<&C::faults, &FaultsSchema>("faults", "its fault model"),
  };
  static const ConfigSchema<C> kSchema{"ReplicaOverride", kFields};
  return kSchema;
}

absl::Status ValidateReplicasRules(const ReplicasConfig& r) {
  std::vector<bool> seen(static_cast<size_t>(std::max(r.count, 0)), false);
  for (size_t i = 0; i < r.overrides.size(); ++i) {
    const int index = r.overrides[i].index;
    if (index >= r.count) {
      return Invalid(absl::StrFormat("overrides[%d].index must be an integer in [0, %d], got %d", i,
                                     r.count - 1, index));
    }
    if (seen[static_cast<size_t>(index)]) {
      return Invalid(absl::StrFormat("overrides[%d].index must be unique, got %d twice", i, index));
    }
    seen[static_cast<size_t>(index)] = true;
  }
  return absl::OkStatus();
}

const ConfigSchema<ReplicasConfig>& ReplicasSchema() {
  using C = ReplicasConfig;
  static constexpr std::string_view kBalancers[] = {"round_robin", "random", "least_outstanding",
                                                    "p2c", "peak_ewma"};
  static const FieldSpec<C> kFields[] = {
      schema::Int<&C::count>("count", 1, kMaxReplicas, "replicas", "replicas in the pool"),
      schema::Choice<&C::balancer>("balancer", kBalancers, "how a replica is picked"),
      schema::Seconds<&C::decay_ns>("decay", 0, kMaxDurationS, Bound::kOpen, Bound::kClosed,
                                    "Peak EWMA's time constant"),
      schema::Real<&C::panic_threshold_percent>(
          "panic_threshold", 0, 100, Bound::kClosed, Bound::kClosed, "%",
          "below this share of replicas not ejected, ejections are ignored"),
      schema::Config<&C::outlier, &OutlierSchema>("outlier", "outlier ejection; None: none"),
      schema::List<&C::overrides, &ReplicaOverrideSchema>("overrides", /*by_name=*/false,
                                                          "the replicas whose fault model differs"),
      schema::Config<&C::breaker, &BreakerSchema>("breaker",
                                                  "each replica's own circuit breaker; None: none"),
  };
  static const ConfigSchema<C> kSchema{"Replicas", kFields, "", &ValidateReplicasRules};
  return kSchema;
}

const ConfigSchema<IntakeConfig>& IntakeSchema() {
  using C = IntakeConfig;
  static const FieldSpec<C> kFields[] = {
      schema::Config<&C::shedding, &SheddingSchema>(
          "shedding", "criticality classes, tenants and load shedding; None: none"),
      schema::Config<&C::discipline, &QueueDisciplineSchema>("discipline",
                                                             "the job queue's discipline"),
      schema::Config<&C::limit, &LimitSchema>(
          "limit", "an adaptive concurrency limit on admitted orders; None: none"),
      schema::Config<&C::rate_limit, &RateLimitSchema>(
          "rate_limit", "a rate limit on arriving orders, checked first; None: none"),
  };
  static const ConfigSchema<C> kSchema{"Intake", kFields};
  return kSchema;
}

const ConfigSchema<FallbackConfig>& FallbackSchema() {
  using C = FallbackConfig;
  static constexpr std::string_view kKinds[] = {"none", "cache", "default", "cache_or_default"};
  static constexpr FieldSpec<C> kFields[] = {
      schema::Choice<&C::kind>("kind", kKinds, "what a failed call falls back to"),
      schema::Int<&C::cache_capacity>("cache_capacity", 1, kMaxCacheCapacity, "entries",
                                      "LRU entries, one per order key"),
      schema::Seconds<&C::cache_ttl_ns>("cache_ttl", 0, kMaxDurationS, Bound::kOpen, Bound::kClosed,
                                        "the oldest cached value served"),
  };
  static constexpr ConfigSchema<C> kSchema{"Fallback", kFields};
  return kSchema;
}

absl::Status ValidateDependencyRules(const DependencyConfig& d) {
  auto usable = [](const std::string& name) {
    return !name.empty() && std::all_of(name.begin(), name.end(), IsNameChar);
  };
  if (d.name.empty()) return Invalid("name must not be empty");
  if (!usable(d.name)) {
    // Names become dotted-path segments and metric label values.
    return Invalid(absl::StrFormat(
        "name must contain only letters, digits and underscores, got \"%s\"", d.name));
  }
  if (!d.service.empty() && !usable(d.service)) {
    return Invalid(absl::StrFormat(
        "service must be None or a service name (letters, digits and underscores), got \"%s\"",
        d.service));
  }
  if (d.hedge.has_value() && d.fanout.has_value()) {
    return Invalid("hedge must be None when fanout is set (a call is either hedged or fanned out)");
  }
  if (d.charges && !d.idempotency_keys && (d.hedge.has_value() || d.fanout.has_value())) {
    // Every copy of a hedged or fanned-out write may charge: without an idempotency key the
    // provider applies each of them (the rule of gRFC A6: only idempotent calls are hedged).
    return Invalid(absl::StrFormat(
        "%s must be None on a dependency that charges without idempotency keys (each copy "
        "would be charged; set idempotency_keys=True)",
        d.hedge.has_value() ? "hedge" : "fanout"));
  }
  if (d.aws_retry.has_value() && d.retry.has_value()) {
    return Invalid(
        "retry must be None when aws_retry is set (the AWS retry mode runs the retries)");
  }
  if (d.token_bucket.has_value() && d.ratio_budget.has_value()) {
    return Invalid("budget must be either a token bucket or a ratio budget, not both");
  }
  if (d.aws_retry.has_value() && (d.token_bucket.has_value() || d.ratio_budget.has_value())) {
    return Invalid("budget must be None when aws_retry is set (its retry quota is the budget)");
  }
  if (d.charges && d.fallback.kind != FallbackConfig::Kind::kNone) {
    // A write cannot be replaced by a cached or default answer: the order would complete as
    // paid while nothing was charged. (Seed 002: degradation does not work for writes.)
    static constexpr std::array<std::string_view, 4> kKinds = {"none", "cache", "default",
                                                               "cache_or_default"};
    const auto k = static_cast<size_t>(d.fallback.kind);
    return Invalid(absl::StrFormat(
        "fallback must be \"none\" on a dependency that charges (a failed charge cannot be "
        "served from a fallback: the order would complete without being charged), got \"%s\"",
        k < kKinds.size() ? kKinds[k] : std::string_view("?")));
  }
  return absl::OkStatus();
}

namespace {

// The retry budget: a union held in one optional member per class (the dict's "type" picks
// which one is filled), so its operations reach the member rather than the whole value.
using Dep = DependencyConfig;
inline constexpr UnionOps kBudgetOps = {
    [](const void*) -> size_t { return 2; },
    [](const void*, size_t k) {
      return k == 0 ? Any(TokenBucketSchema()) : Any(RatioBudgetSchema());
    },
    [](const void*, const void* v) -> size_t {
      const auto& d = *static_cast<const Dep*>(v);
      return d.token_bucket ? 0 : d.ratio_budget ? 1 : 2;
    },
    [](const void*, size_t k, void* v) {
      auto& d = *static_cast<Dep*>(v);
      d.token_bucket.reset();
      d.ratio_budget.reset();
      if (k == 0) d.token_bucket.emplace();
      if (k == 1) d.ratio_budget.emplace();
    },
    [](const void*, size_t k, const void* v) -> const void* {
      const auto& d = *static_cast<const Dep*>(v);
      return k == 0 ? static_cast<const void*>(&*d.token_bucket) : &*d.ratio_budget;
    },
    [](const void*, size_t k, void* v) -> void* {
      auto& d = *static_cast<Dep*>(v);
      return k == 0 ? static_cast<void*>(&*d.token_bucket) : &*d.ratio_budget;
    },
};

FieldSpec<DependencyConfig> BudgetRow() {
  using C = DependencyConfig;
  FieldSpec<C> f;
  f.info.name = "budget";
  f.info.kind = FieldKind::kUnion;
  f.info.type = "Budget";
  f.info.optional = true;
  f.info.doc = "a retry budget shared by every order's retries; None: none";
  f.count = [](const C& c) -> size_t { return c.token_bucket || c.ratio_budget ? 1 : 0; };
  f.item = [](const C& c, size_t) -> const void* { return &c; };
  f.add = [](C& c) -> void* { return &c; };
  f.reset = [](C& c) {
    c.token_bucket.reset();
    c.ratio_budget.reset();
  };
  f.members = [] { return AnyUnion{nullptr, &kBudgetOps}; };
  return f;
}

}  // namespace

const ConfigSchema<DependencyConfig>& DependencySchema() {
  using C = DependencyConfig;
  static constexpr std::string_view kCompositions[] = {"retry_outside_breaker",
                                                       "breaker_outside_retry"};
  static const FieldSpec<C> kFields[] = {
      schema::String<&C::name>("name", "letters, digits and underscores; unique"),
      schema::Config<&C::faults, &FaultsSchema>("faults", "the fault model"),
      schema::Config<&C::retry, &RetrySchema>("retry", "the retry loop; None: one attempt"),
      schema::Config<&C::breaker, &BreakerSchema>("breaker", "a circuit breaker; None: none"),
      BudgetRow(),
      schema::Config<&C::bulkhead, &BulkheadSchema>("bulkhead", "a bulkhead; None: none"),
      schema::Config<&C::throttle, &ThrottleSchema>("throttle",
                                                    "adaptive client-side throttling; None: none"),
      schema::Seconds<&C::attempt_timeout_ns>("attempt_timeout", 0, kMaxDurationS, Bound::kClosed,
                                              Bound::kClosed, "per attempt; 0: none"),
      schema::Choice<&C::composition>("composition", kCompositions,
                                      "how retry and breaker are composed"),
      schema::Config<&C::fallback, &FallbackSchema>("fallback", "what a failed call falls back to"),
      schema::Flag<&C::idempotency_keys>("idempotency_keys", "charges carry the order's key"),
      schema::Flag<&C::charges>("charges", "this dependency takes money"),
      schema::Config<&C::hedge, &HedgeSchema>("hedge", "hedged calls; None: none"),
      schema::Config<&C::fanout, &FanoutSchema>("fanout", "fanned-out calls; None: none"),
      schema::Config<&C::replicas, &ReplicasSchema>("replicas", "a pool of replicas; None: one"),
      schema::Config<&C::aws_retry, &AwsRetrySchema>("aws_retry",
                                                     "an AWS SDK retry mode; None: none"),
      schema::Config<&C::limit, &LimitSchema>("limit", "an adaptive concurrency limit; None: none"),
      schema::Config<&C::rate_limit, &RateLimitSchema>("rate_limit", "a rate limit; None: none"),
      schema::OrNone(schema::String<&C::service>("service", "the service it calls; None: a leaf"),
                     0),
  };
  static const ConfigSchema<C> kSchema{"Dependency", kFields, "", &ValidateDependencyRules};
  return kSchema;
}

// The rules between a scenario's fields, after every field and nested config passed its table:
// the dependencies' count and names, each service's intake, and the graph as a whole.
absl::Status ValidateScenarioRules(const ScenarioConfig& config) {
  const size_t n = config.dependencies.size();
  if (n < 1 || n > kMaxDependencies) {
    return Invalid(absl::StrFormat("dependencies must have between 1 and %d entries, got %d",
                                   kMaxDependencies, n));
  }
  for (size_t i = 0; i < n; ++i) {
    absl::Status s = ValidateDependencyName(config, i);
    if (!s.ok()) return s;
  }
  for (const ServiceConfig& svc : config.services) {
    absl::Status s = AtPath(absl::StrFormat("services[%s]", svc.name), ValidateServiceIntake(svc));
    if (!s.ok()) return s;
  }
  return ValidateServiceGraph(config);
}

const ConfigSchema<ScenarioConfig>& ScenarioSchema() {
  using C = ScenarioConfig;
  constexpr Bound kO = Bound::kOpen, kC = Bound::kClosed;
  static const FieldSpec<C> kFields[] = {
      // not constexpr: the union's name is read at run time
      schema::OneOf<&C::arrivals, &ArrivalsUnion>("arrivals", "how orders arrive"),
      schema::Int<&C::workers>("workers", 1, kMaxWorkers, "", "workers serving orders"),
      schema::Int<&C::queue_capacity>("queue_capacity", 0, kMaxQueueCapacity, "orders",
                                      "the job queue's bound"),
      schema::Seconds<&C::duration_ns>("duration", 0, kMaxDurationS, kO, kC, "the run's length"),
      schema::Bare(schema::List<&C::dependencies, &DependencySchema>(
          "dependencies", true, "the dependencies each order calls, in order")),
      schema::Seconds<&C::order_deadline_ns>("order_deadline", 0, kMaxDurationS, kC, kC,
                                             "an order's deadline; 0: none"),
      schema::Flag<&C::release_worker_during_backoff>("release_worker_during_backoff",
                                                      "a worker serves others while one backs off"),
      schema::Int<&C::num_keys>("num_keys", 1, kMaxNumKeys, "", "distinct order keys"),
      schema::Config<&C::intake, &IntakeSchema>("intake", "the intake's admission controls"),
      schema::List<&C::services, &ServiceSchema>("services", true, "the service graph's tiers"),
  };
  static const ConfigSchema<C> kSchema{"Scenario", kFields, "", &ValidateScenarioRules};
  return kSchema;
}

absl::Status ValidateScenario(const ScenarioConfig& config) {
  return ValidateAny("", Any(ScenarioSchema()), &config);
}

}  // namespace rlab
