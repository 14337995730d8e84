#include "rlab/model/replica_pool.h"

#include <algorithm>

namespace rlab {

ReplicaPool::ReplicaPool(const ReplicasConfig& config, const FaultModelConfig& base)
    : count_(config.count) {
  // Replicas without an override share one FaultModel (a pool of 1000 holds one copy).
  auto shared = std::make_shared<FaultModel>(base);
  std::vector<const FaultModelConfig*> chosen(static_cast<size_t>(count_), nullptr);
  for (const ReplicaOverride& o : config.overrides)
    chosen[static_cast<size_t>(o.index)] = &o.faults;
  faults_.reserve(static_cast<size_t>(count_));
  for (int r = 0; r < count_; ++r) {
    const FaultModelConfig* c = chosen[static_cast<size_t>(r)];
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
    OutlierConfig o = *config.outlier;
    o.replicas = count_;
    detector_ = std::make_unique<OutlierDetector>(o, 0);
  }
  MutexLock lock(&mu_);
  totals_.resize(static_cast<size_t>(count_));
  excluded_.assign(static_cast<size_t>(count_), false);
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
  for (size_t k = events_taken_; k < all.size() && events_.size() < kMaxEvents; ++k) {
    const EjectionEvent& e = all[k];
    events_.push_back({e.time_ns, e.replica, e.ejected, e.reason});
  }
  events_taken_ = all.size();
}

int ReplicaPool::Begin(int64_t now_ns, RandomStream& rng, int64_t* outstanding) {
  const double u1 = rng.Uniform01();
  const double u2 = rng.Uniform01();
  MutexLock lock(&mu_);
  if (detector_ != nullptr) {
    detector_->AdvanceTo(now_ns);  // returns and success-rate ejections due by now
    SyncLocked();
  }
  const int r = balancer_->Pick(now_ns, u1, u2);
  if (r < 0) return -1;
  balancer_->OnStart(r);
  ReplicaTotals& t = totals_[static_cast<size_t>(r)];
  ChargeTime(t, now_ns);
  ++t.calls;
  ++t.outstanding;
  if (outstanding != nullptr) *outstanding = t.outstanding;
  return r;
}

void ReplicaPool::End(int replica, int64_t now_ns, int64_t latency_ns, const Outcome& outcome) {
  if (replica < 0 || replica >= count_) return;
  const OutcomeClass c = ClassifyOutcome(outcome);
  const bool gave_up = c == OutcomeClass::kCallerGaveUp;
  const bool ok = c == OutcomeClass::kSuccess || c == OutcomeClass::kCallerFault;
  MutexLock lock(&mu_);
  ReplicaTotals& t = totals_[static_cast<size_t>(replica)];
  if (t.outstanding == 0) return;  // no matching Begin
  ChargeTime(t, now_ns);
  --t.outstanding;
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
