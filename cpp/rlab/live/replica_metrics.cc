#include "rlab/live/replica_metrics.h"

#include "absl/strings/str_cat.h"
#include "rlab/policy/circuit_breaker.h"

namespace rlab {
namespace {

constexpr BreakerState kStates[] = {BreakerState::kClosed, BreakerState::kOpen,
                                    BreakerState::kHalfOpen};

}  // namespace

absl::Status ReplicaMetrics::Init(MetricsRegistry& registry,
                                  const std::vector<std::string>& names,
                                  const std::vector<DependencyRuntime>& deps) {
  std::vector<std::vector<std::string>> labels, breaker_labels;
  for (size_t d = 0; d < deps.size(); ++d) {
    const ReplicaPool* pool = deps[d].replicas.get();
    if (pool == nullptr) continue;
    Pool p{d, labels.size(), pool->count(), pool->has_breakers(), 0};
    for (int r = 0; r < pool->count(); ++r) {
      labels.push_back({names[d], absl::StrCat(r)});
      if (!p.breakers) continue;
      for (BreakerState s : kStates) {
        breaker_labels.push_back({names[d], absl::StrCat(r), std::string(BreakerStateName(s))});
      }
    }
    pools_.push_back(p);
  }
  if (pools_.empty()) return absl::OkStatus();
  auto counter = [&](const char* name, const char* help, Family<Counter>** out) {
    auto f = registry.AddCounter(name, help, {"dependency", "replica"}, labels);
    if (!f.ok()) return f.status();
    *out = *f;
    return absl::OkStatus();
  };
  absl::Status s = counter("rlab_replica_calls", "Attempts sent to a replica.", &calls_);
  if (s.ok()) {
    s = counter("rlab_replica_failures", "Attempts a replica failed (dependency faults).",
                &failures_);
  }
  if (s.ok()) s = counter("rlab_replica_ejections", "Outlier ejections of a replica.", &ejections_);
  if (!s.ok()) return s;
  if (!breaker_labels.empty()) {
    std::vector<std::vector<std::string>> trip_labels;
    for (const Pool& p : pools_) {
      if (!p.breakers) continue;
      for (int r = 0; r < p.count; ++r) trip_labels.push_back(labels[p.first + r]);
    }
    auto trips = registry.AddCounter("rlab_replica_breaker_trips",
                                     "Transitions of a replica's own breaker into open.",
                                     {"dependency", "replica"}, trip_labels);
    if (!trips.ok()) return trips.status();
    trips_ = *trips;
    auto state = registry.AddGauge("rlab_replica_breaker_state",
                                   "1 for the replica breaker's current state, 0 for the others.",
                                   {"dependency", "replica", "state"}, breaker_labels);
    if (!state.ok()) return state.status();
    state_ = *state;
    // Trips are indexed per replica with a breaker: first_breaker counts replicas, not series.
    size_t next = 0;
    for (Pool& p : pools_) {
      if (!p.breakers) continue;
      p.first_breaker = next;
      next += static_cast<size_t>(p.count);
    }
  }
  MutexLock lock(&mu_);
  last_.resize(labels.size());
  return absl::OkStatus();
}

void ReplicaMetrics::Refresh(const std::vector<DependencyRuntime>& deps, int64_t now_ns) {
  if (pools_.empty()) return;
  MutexLock lock(&mu_);
  auto push = [](Counter& c, int64_t value, int64_t& before) {
    if (value > before) {
      c.Add(value - before);
      before = value;
    }
  };
  for (const Pool& p : pools_) {
    const std::vector<ReplicaTotals> totals = deps[p.index].replicas->Totals(now_ns);
    for (int r = 0; r < p.count; ++r) {
      const ReplicaTotals& t = totals[static_cast<size_t>(r)];
      const size_t i = p.first + static_cast<size_t>(r);
      Last& last = last_[i];
      push(calls_->at(i), t.calls, last.calls);
      push(failures_->at(i), t.failures, last.failures);
      push(ejections_->at(i), t.ejections, last.ejections);
      if (!p.breakers) continue;
      const size_t b = p.first_breaker + static_cast<size_t>(r);
      push(trips_->at(b), t.breaker_opened, last.trips);
      for (size_t k = 0; k < 3; ++k) {
        state_->at(3 * b + k).Set(t.breaker_state == kStates[k] ? 1.0 : 0.0);
      }
    }
  }
}

}  // namespace rlab
