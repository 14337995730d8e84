#include "rlab/model/replica_pool.h"

#include <algorithm>

namespace rlab {

ReplicaPool::ReplicaPool(const ReplicasConfig& config, const FaultsConfig& base)
    : count_(config.count) {
  // Replicas without an override share one FaultModel (a pool of 1000 holds one copy).
  auto shared = std::make_shared<FaultModel>(base);
  std::vector<const FaultsConfig*> chosen(static_cast<size_t>(count_), nullptr);
  for (const ReplicaOverride& o : config.overrides)
    chosen[static_cast<size_t>(o.index)] = &o.faults;
  faults_.reserve(static_cast<size_t>(count_));
  for (int r = 0; r < count_; ++r) {
    const FaultsConfig* c = chosen[static_cast<size_t>(r)];
    faults_.push_back(c == nullptr ? std::shared_ptr<FaultModel>(shared)
                                   : std::make_shared<FaultModel>(*c));
  }
  LoadBalancerConfig lb;
  lb.kind = config.balancer;
  lb.replicas = count_;
  lb.decay_ns = config.decay_ns;
  lb.panic_threshold_percent = config.panic_threshold_percent;
  // The detector is not given to the balancer: the pool reports results to it itself, so that
  // an attempt the caller gave up on ends at the balancer without counting at the detector.
  balancer_ = std::make_unique<LoadBalancer>(lb);
  if (config.outlier.has_value()) {
    OutlierDetectionConfig o = *config.outlier;
    o.replicas = count_;
    detector_ = std::make_unique<OutlierDetector>(o, 0);
  }
  if (config.breaker.has_value()) {
    breakers_.reserve(static_cast<size_t>(count_));
    for (int r = 0; r < count_; ++r) {
      breakers_.push_back(std::make_unique<CircuitBreaker>(*config.breaker));
    }
    half_open_max_calls_ = config.breaker->half_open_max_calls;
  }
  MutexLock lock(&mu_);
  totals_.resize(static_cast<size_t>(count_));
  excluded_.assign(static_cast<size_t>(count_), false);
  if (!breakers_.empty()) {
    breaker_state_.assign(static_cast<size_t>(count_), BreakerState::kClosed);
    blocked_.assign(static_cast<size_t>(count_), false);
    watching_.assign(static_cast<size_t>(count_), false);
    open_until_ns_.assign(static_cast<size_t>(count_), 0);
  }
}

void ReplicaPool::NoteBreakerLocked(int r, int64_t now_ns) {
  const size_t i = static_cast<size_t>(r);
  CircuitBreaker& b = *breakers_[i];
  const BreakerState s = b.PeekState();
  if (s != breaker_state_[i]) {
    // One operation makes at most one transition (open_for > 0), so comparing states sees
    // every transition.
    if (!watching_[i]) {
      watching_[i] = true;
      watched_.push_back(r);
    }
    breaker_state_[i] = s;
    if (s == BreakerState::kOpen) {
      ++totals_[i].breaker_opened;
      open_until_ns_[i] = b.Snapshot(now_ns).open_until_ns;
      next_due_ns_ = std::min(next_due_ns_, open_until_ns_[i]);
    }
    if (breaker_events_ < kMaxEvents) {
      ReplicaEvent e;
      e.t_ns = now_ns;
      e.replica = r;
      e.breaker = true;
      e.breaker_to = s;
      events_.push_back(e);
      ++breaker_events_;
    }
  }
  // Half-open admits while a probe slot is free; open admits nothing until its period ends
  // (RefreshBreakersLocked moves it on).
  bool blocked = s == BreakerState::kOpen;
  if (s == BreakerState::kHalfOpen) {
    blocked = b.Snapshot(now_ns).half_open_in_flight >= half_open_max_calls_;
  }
  if (blocked != blocked_[i]) {
    blocked_[i] = blocked;
    blocked_count_ += blocked ? 1 : -1;
    balancer_->SetBlocked(r, blocked);
  }
}

void ReplicaPool::RefreshBreakersLocked(int64_t now_ns) {
  // Only time moves an open breaker to half-open; every other change is seen by the Begin or
  // End that caused it. A closed replica left in watched_ is not blocked: dropping it can wait.
  if (now_ns < next_due_ns_) return;
  next_due_ns_ = std::numeric_limits<int64_t>::max();
  for (size_t k = 0; k < watched_.size();) {
    const int r = watched_[k];
    const size_t i = static_cast<size_t>(r);
    breakers_[i]->State(now_ns);  // open -> half-open when due
    NoteBreakerLocked(r, now_ns);
    if (breaker_state_[i] == BreakerState::kClosed) {
      watching_[i] = false;
      watched_[k] = watched_.back();
      watched_.pop_back();
      continue;
    }
    if (breaker_state_[i] == BreakerState::kOpen) {
      next_due_ns_ = std::min(next_due_ns_, open_until_ns_[i]);
    }
    ++k;
  }
}

BreakerState ReplicaPool::BreakerStateOf(int r) const {
  if (breakers_.empty() || r < 0 || r >= count_) return BreakerState::kClosed;
  MutexLock lock(&mu_);
  return breaker_state_[static_cast<size_t>(r)];
}

void ReplicaPool::SyncLocked() {
  if (detector_ == nullptr) return;
  const int n = detector_->EjectedMaskInto(&mask_);
  if (n == 0 && excluded_count_ == 0) return;
  if (n == 0) mask_.assign(static_cast<size_t>(count_), false);
  bool changed = false;
  for (int r = 0; r < count_; ++r) {
    const size_t i = static_cast<size_t>(r);
    if (mask_[i] == excluded_[i]) continue;
    excluded_[i] = mask_[i];
    balancer_->SetEjected(r, mask_[i]);
    changed = true;
  }
  excluded_count_ = n;
  if (!changed || events_taken_ >= kMaxEvents) return;
  // Ejections are rare: copying the detector's (bounded) list on a change is cheap enough.
  const std::vector<EjectionEvent> all = detector_->Events();
  for (size_t k = events_taken_; k < all.size() && events_.size() - breaker_events_ < kMaxEvents;
       ++k) {
    const EjectionEvent& e = all[k];
    events_.push_back({e.time_ns, e.replica, e.ejected, e.reason});
  }
  events_taken_ = all.size();
}

int ReplicaPool::Begin(int64_t now_ns, RandomStream& rng, int64_t* outstanding, uint64_t* permit) {
  const double u1 = rng.Uniform01();
  const double u2 = rng.Uniform01();
  MutexLock lock(&mu_);
  if (detector_ != nullptr) {
    detector_->AdvanceTo(now_ns);  // returns and success-rate ejections due by now
    SyncLocked();
  }
  if (!breakers_.empty()) RefreshBreakersLocked(now_ns);
  const int r = balancer_->Pick(now_ns, u1, u2);
  if (r < 0) return blocked_count_ > 0 ? kBreakersOpen : kNoReplica;
  if (!breakers_.empty()) {
    // Admits: the blocked set was refreshed at now_ns under the same lock.
    const BreakerPermit p = breakers_[static_cast<size_t>(r)]->Allow(now_ns);
    NoteBreakerLocked(r, now_ns);
    if (!p.admitted) return kBreakersOpen;  // not reached
    if (permit != nullptr) *permit = p.token;
  }
  balancer_->OnStart(r);
  ReplicaTotals& t = totals_[static_cast<size_t>(r)];
  ChargeTime(t, now_ns);
  ++t.calls;
  ++t.outstanding;
  if (outstanding != nullptr) *outstanding = t.outstanding;
  return r;
}

void ReplicaPool::End(int replica, int64_t now_ns, int64_t latency_ns, const Outcome& outcome,
                      uint64_t permit) {
  if (replica < 0 || replica >= count_) return;
  const OutcomeClass c = ClassifyOutcome(outcome);
  const bool gave_up = c == OutcomeClass::kCallerGaveUp;
  const bool ok = c == OutcomeClass::kSuccess || c == OutcomeClass::kCallerFault;
  MutexLock lock(&mu_);
  ReplicaTotals& t = totals_[static_cast<size_t>(replica)];
  if (t.outstanding == 0) return;  // no matching Begin
  ChargeTime(t, now_ns);
  --t.outstanding;
  if (!breakers_.empty()) {
    // The shared breaker's classification; a cancelled copy or a shutdown is ignored, which
    // frees a probe slot without a verdict.
    breakers_[static_cast<size_t>(replica)]->Record(permit, BreakerResultOf(outcome), now_ns,
                                                    latency_ns);
    NoteBreakerLocked(replica, now_ns);
  }
  // Peak EWMA learns from abandoned attempts too: the time waited is a lower bound of the
  // replica's latency (Finagle observes interrupted requests the same way).
  balancer_->OnEnd(replica, now_ns, latency_ns, ok || gave_up);
  if (gave_up) {
    ++t.abandoned;
    return;
  }
  t.latency_sum_ns += latency_ns;
  if (!ok) ++t.failures;
  if (detector_ != nullptr) {
    detector_->RecordResult(replica, now_ns, ok);
    SyncLocked();
  }
}

void ReplicaPool::ChargeTime(ReplicaTotals& t, int64_t now_ns) {
  // Live threads may report slightly out of order: time never runs backwards here.
  if (now_ns > t.last_change_ns) {
    const int64_t level = std::min<int64_t>(t.outstanding, kReplicaLoadLevels - 1);
    t.time_at_ns[static_cast<size_t>(level)] += now_ns - t.last_change_ns;
    t.last_change_ns = now_ns;
  }
}

std::vector<ReplicaTotals> ReplicaPool::Totals(int64_t end_ns) const {
  MutexLock lock(&mu_);
  std::vector<ReplicaTotals> out = totals_;
  for (ReplicaTotals& t : out) ChargeTime(t, end_ns);
  for (size_t r = 0; r < breaker_state_.size(); ++r) {
    out[r].breaker_state = breaker_state_[r];
    // Only when half-open: Snapshot would move an open breaker on, unseen by NoteBreakerLocked.
    if (breaker_state_[r] == BreakerState::kHalfOpen) {
      out[r].breaker_probes = breakers_[r]->Snapshot(end_ns).half_open_in_flight;
    }
  }
  if (detector_ != nullptr) {
    for (int r = 0; r < count_; ++r) {
      out[static_cast<size_t>(r)].ejections = detector_->State(r).times_ejected;
    }
  }
  return out;
}

std::vector<ReplicaEvent> ReplicaPool::Events() const {
  MutexLock lock(&mu_);
  return events_;
}

}  // namespace rlab
