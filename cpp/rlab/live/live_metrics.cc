#include "rlab/live/live_metrics.h"

#include <string>
#include <vector>

#include "rlab/core/outcome.h"

namespace rlab {
namespace {

// The outcomes of the intake families (intake.shedding), in OriginTotals' order.
constexpr const char* kIntakeOutcomes[] = {"arrived", "admitted", "shed", "queue_full",
                                           "completed"};
constexpr std::array<BreakerState, 3> kStates = {BreakerState::kClosed, BreakerState::kOpen,
                                                 BreakerState::kHalfOpen};

std::string Name(std::string_view v) { return std::string(v); }

}  // namespace

absl::Status LiveMetrics::Init(const Sources& s) {
  const ScenarioConfig& config = *s.config;
  std::vector<DependencyRuntime>& dep_rt = *s.deps;
  std::vector<std::string> dep_names;
  std::vector<std::string> breaker_deps;
  for (const DependencyConfig& d : config.dependencies) {
    dep_names.push_back(d.name);
    if (d.breaker) breaker_deps.push_back(d.name);
  }
  std::vector<std::string> statuses, reasons, outcome_names, state_names;
  for (OrderStatus s : kLiveTerminal) statuses.push_back(Name(OrderStatusName(s)));
  for (int r = 1; r < kNumFailReasons; ++r) {
    reasons.push_back(Name(FailReasonName(static_cast<FailReason>(r))));
  }
  for (int k = 0; k < kNumOutcomeKinds; ++k) {
    outcome_names.push_back(Name(OutcomeKindName(static_cast<OutcomeKind>(k))));
  }
  for (BreakerState s : kStates) state_names.push_back(Name(BreakerStateName(s)));
  const std::vector<std::string> retry_results = {
      "retried", "succeeded", "exhausted", "permanent_failure", "deadline", "budget_exhausted"};
  const std::vector<std::string> policies = {"breaker", "bulkhead", "throttle"};

  auto jobs =
      registry.AddCounter("rlab_worker_jobs", "Orders that reached a terminal state, by status.",
                          {"status"}, LabelProduct({statuses}));
  if (!jobs.ok()) return jobs.status();
  for (size_t i = 0; i < kLiveTerminal.size(); ++i) {
    by_status[static_cast<size_t>(kLiveTerminal[i])] = &(*jobs)->at(i);
  }
  auto failures =
      registry.AddCounter("rlab_order_failures", "Orders failed or rejected, by reason.",
                          {"reason"}, LabelProduct({reasons}));
  if (!failures.ok()) return failures.status();
  for (int r = 1; r < kNumFailReasons; ++r) by_reason[r] = &(*failures)->at(r - 1);
  auto arrived_family = registry.AddCounter("rlab_orders_arrived", "Orders submitted.", {}, {{}});
  if (!arrived_family.ok()) return arrived_family.status();
  arrived = &(*arrived_family)->at(0);
  auto in_flight_family =
      registry.AddGauge("rlab_orders_in_flight", "Orders admitted, not terminal.", {}, {{}});
  if (!in_flight_family.ok()) return in_flight_family.status();
  in_flight = &(*in_flight_family)->at(0);
  auto degraded_family = registry.AddCounter(
      "rlab_orders_degraded", "Orders completed on a fallback (degraded).", {}, {{}});
  if (!degraded_family.ok()) return degraded_family.status();
  degraded = &(*degraded_family)->at(0);

  deps.resize(config.dependencies.size());
  auto calls = registry.AddCounter("rlab_dependency_calls", "Attempts sent to a dependency.",
                                   {"dependency"}, LabelProduct({dep_names}));
  auto dep_failures = registry.AddCounter("rlab_dependency_failures",
                                          "Attempts that did not succeed, by dependency.",
                                          {"dependency"}, LabelProduct({dep_names}));
  auto failure_kinds =
      registry.AddCounter("rlab_dependency_failure_outcomes",
                          "Attempts that did not succeed, by dependency and outcome kind.",
                          {"dependency", "outcome"}, LabelProduct({dep_names, outcome_names}));
  auto retries =
      registry.AddCounter("rlab_retry_attempts", "Retry loop events by result.",
                          {"dependency", "result"}, LabelProduct({dep_names, retry_results}));
  auto rejections =
      registry.AddCounter("rlab_policy_rejections", "Calls refused locally by a policy.",
                          {"dependency", "policy"}, LabelProduct({dep_names, policies}));
  auto fallbacks =
      registry.AddCounter("rlab_fallbacks", "Dependency failures absorbed by a fallback.",
                          {"dependency"}, LabelProduct({dep_names}));
  auto trips = registry.AddCounter("rlab_breaker_trips", "Transitions of a breaker into open.",
                                   {"dependency"}, LabelProduct({dep_names}));
  auto dep_in_flight =
      registry.AddGauge("rlab_dependency_in_flight", "Attempts in progress, by dependency.",
                        {"dependency"}, LabelProduct({dep_names}));
  for (const auto* s :
       {&calls, &dep_failures, &failure_kinds, &retries, &rejections, &fallbacks, &trips}) {
    if (!s->ok()) return s->status();
  }
  if (!dep_in_flight.ok()) return dep_in_flight.status();
  for (size_t d = 0; d < dep_names.size(); ++d) {
    LiveDepMetrics& m = deps[d];
    m.calls = &(*calls)->at(d);
    m.failures = &(*dep_failures)->at(d);
    for (int k = 0; k < kNumOutcomeKinds; ++k) {
      m.failure_kinds[k] = &(*failure_kinds)->at(d * kNumOutcomeKinds + k);
    }
    for (size_t r = 0; r < retry_results.size(); ++r) {
      m.retry[r] = &(*retries)->at(d * retry_results.size() + r);
    }
    m.rejected_breaker = &(*rejections)->at(d * 3 + 0);
    m.rejected_bulkhead = &(*rejections)->at(d * 3 + 1);
    m.rejected_throttle = &(*rejections)->at(d * 3 + 2);
    m.fallbacks = &(*fallbacks)->at(d);
    m.trips = &(*trips)->at(d);
    m.in_flight = &(*dep_in_flight)->at(d);
  }
  std::vector<std::string> bucket_deps;
  for (size_t d = 0; d < dep_rt.size(); ++d) {
    if (dep_rt[d].token_bucket != nullptr) bucket_deps.push_back(config.dependencies[d].name);
  }
  if (!bucket_deps.empty()) {
    auto tokens = registry.AddGauge(
        "rlab_retry_budget_tokens",
        "Tokens left in the dependency's retry budget (token bucket), read when scraped.",
        {"dependency"}, LabelProduct({bucket_deps}));
    if (!tokens.ok()) return tokens.status();
    size_t b = 0;
    for (size_t d = 0; d < dep_rt.size(); ++d) {
      if (dep_rt[d].token_bucket != nullptr) deps[d].budget_tokens = &(*tokens)->at(b++);
    }
  }
  {
    // Concurrency limits (intake.limit, <dependency>.limit), labelled by where they sit.
    std::vector<std::string> names;
    std::vector<ConcurrencyLimiter*> limiters;
    if (s.intake_limiter) {
      names.push_back("intake");
      limiters.push_back(s.intake_limiter);
    }
    for (size_t d = 0; d < dep_rt.size(); ++d) {
      if (!dep_rt[d].limiter) continue;
      names.push_back(config.dependencies[d].name);
      limiters.push_back(dep_rt[d].limiter.get());
    }
    if (!names.empty()) {
      auto limit = registry.AddGauge("rlab_limit",
                                     "The concurrency limit in force, read when scraped "
                                     "(limiter: intake or the dependency's name).",
                                     {"limiter"}, LabelProduct({names}));
      if (!limit.ok()) return limit.status();
      auto inflight = registry.AddGauge("rlab_limit_inflight",
                                        "Permits of the concurrency limit held, read when "
                                        "scraped.",
                                        {"limiter"}, LabelProduct({names}));
      if (!inflight.ok()) return inflight.status();
      for (size_t i = 0; i < names.size(); ++i) {
        limit_gauges.push_back({limiters[i], &(*limit)->at(i), &(*inflight)->at(i)});
      }
    }
  }
  {
    // Rate limits, labelled as the concurrency limits.
    std::vector<std::string> names;
    std::vector<RateGate*> gates;
    if (s.intake_rate) {
      names.push_back("intake");
      gates.push_back(s.intake_rate);
    }
    for (size_t d = 0; d < dep_rt.size(); ++d) {
      if (!dep_rt[d].rate_gate) continue;
      names.push_back(config.dependencies[d].name);
      gates.push_back(dep_rt[d].rate_gate.get());
    }
    if (!names.empty()) {
      auto refused = registry.AddCounter(
          "rlab_rate_limited",
          "Permits the rate limit refused (limiter: intake or the dependency's name).", {"limiter"},
          LabelProduct({names}));
      if (!refused.ok()) return refused.status();
      auto waits = registry.AddCounter("rlab_rate_limit_waits",
                                       "Permits the rate limit granted after a wait.", {"limiter"},
                                       LabelProduct({names}));
      if (!waits.ok()) return waits.status();
      MutexLock lock(&rate_counters_mu);
      for (size_t i = 0; i < names.size(); ++i) {
        rate_counters.push_back({gates[i], &(*refused)->at(i), &(*waits)->at(i)});
      }
    }
  }
  if (!breaker_deps.empty()) {
    auto state = registry.AddGauge(
        "rlab_breaker_state", "1 for the breaker's current state, 0 for the others.",
        {"dependency", "state"}, LabelProduct({breaker_deps, state_names}));
    if (!state.ok()) return state.status();
    auto changes = registry.AddCounter(
        "rlab_breaker_transitions", "Breaker state changes, by from and to state.",
        {"dependency", "from", "to"}, LabelProduct({breaker_deps, state_names, state_names}));
    if (!changes.ok()) return changes.status();
    size_t b = 0;
    for (size_t d = 0; d < dep_rt.size(); ++d) {
      if (!dep_rt[d].breaker) continue;
      LiveDepMetrics& m = deps[d];
      for (size_t s = 0; s < 3; ++s) m.state[s] = &(*state)->at(b * 3 + s);
      for (size_t f = 0; f < 3; ++f) {
        for (size_t t = 0; t < 3; ++t) m.transitions[f][t] = &(*changes)->at(b * 9 + f * 3 + t);
      }
      m.state[0]->Set(1.0);
      ++b;
    }
  }

  if (config.intake.shedding) {
    // intake.shedding: bounded labels (3 classes, at most kMaxTenants declared tenants).
    std::vector<std::vector<std::string>> by_class, by_tenant;
    for (int k = 0; k < kNumCriticalities; ++k) {
      for (const char* outcome : kIntakeOutcomes) {
        by_class.push_back({std::string(CriticalityName(static_cast<Criticality>(k))), outcome});
      }
    }
    for (const TenantConfig& t : config.intake.shedding->tenants) {
      for (const char* outcome : kIntakeOutcomes) by_tenant.push_back({t.name, outcome});
    }
    auto classes = registry.AddCounter("rlab_intake_orders",
                                       "Orders at the intake by criticality class and outcome.",
                                       {"criticality", "outcome"}, by_class);
    if (!classes.ok()) return classes.status();
    intake_classes = *classes;
    if (!by_tenant.empty()) {
      auto tenants = registry.AddCounter("rlab_intake_tenant_orders",
                                         "Orders at the intake by tenant and outcome.",
                                         {"tenant", "outcome"}, by_tenant);
      if (!tenants.ok()) return tenants.status();
      intake_tenants = *tenants;
    }
  }

  auto latency_family = registry.AddHistogram("rlab_order_latency_seconds",
                                              "Arrival to terminal state, admitted orders.", {},
                                              {{}}, s.latency_bounds_s);
  if (!latency_family.ok()) return latency_family.status();
  latency = &(*latency_family)->at(0);
  auto depth = registry.AddGauge("rlab_queue_depth", "Orders waiting in the job queue.", {}, {{}});
  if (!depth.ok()) return depth.status();
  queue_depth = &(*depth)->at(0);
  auto busy = registry.AddGauge("rlab_busy_workers", "Workers holding an order.", {}, {{}});
  if (!busy.ok()) return busy.status();
  busy_workers = &(*busy)->at(0);
  auto workers = registry.AddGauge("rlab_workers", "Worker threads in the pool.", {}, {{}});
  if (!workers.ok()) return workers.status();
  (*workers)->at(0).Set(config.workers);
  absl::Status round_status = rounds.Init(registry, dep_names, dep_rt, s.dep_wasted_ns);
  if (!round_status.ok()) return round_status;
  return replicas.Init(registry, dep_names, dep_rt);  // rlab_replica_*
}

}  // namespace rlab
