#include "rlab/policy/load_balancer.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_format.h"
#include "rlab/core/schema.h"
#include "rlab/core/validate.h"

namespace rlab {
namespace {

// Finagle's cost for a replica with calls in flight and no latency seen yet (Long.MaxValue >> 16):
// far above any real cost, so it is chosen only against another such replica.
constexpr double kPenalty = static_cast<double>(int64_t{1} << 47);

// floor(u * n) for u in [0, 1), kept below n against rounding.
size_t Scale(double u, size_t n) {
  const auto i = static_cast<size_t>(u * static_cast<double>(n));
  return std::min(i, n - 1);
}

constexpr std::string_view kKinds[] = {"round_robin", "random", "least_outstanding", "p2c",
                                       "peak_ewma"};  // LbKind's order

}  // namespace

std::string_view LbKindName(LbKind kind) {
  switch (kind) {
    case LbKind::kRoundRobin:
      return "round_robin";
    case LbKind::kRandom:
      return "random";
    case LbKind::kLeastOutstanding:
      return "least_outstanding";
    case LbKind::kPowerOfTwo:
      return "p2c";
    case LbKind::kPeakEwma:
      return "peak_ewma";
  }
  return "round_robin";
}

absl::StatusOr<LbKind> ParseLbKind(std::string_view name) {
  for (LbKind k : {LbKind::kRoundRobin, LbKind::kRandom, LbKind::kLeastOutstanding,
                   LbKind::kPowerOfTwo, LbKind::kPeakEwma}) {
    if (LbKindName(k) == name) return k;
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("load_balancer.kind must be one of 'round_robin', 'random', "
                      "'least_outstanding', 'p2c', 'peak_ewma', got '%s'",
                      name));
}

RLAB_TABLE(LoadBalancerSchema, LoadBalancerConfig, "LoadBalancer", "", nullptr,
           RLAB_CHOICE(kind, kKinds, "how a replica is picked"),
           RLAB_INT(replicas, 1, 100000, "replicas", "replicas in the pool"),
           RLAB_SECONDS(decay, 0, kMaxDurationS, OC, "Peak EWMA's tau"),
           schema::Real<&C::panic_threshold_percent>("panic_threshold", 0, 100, RLAB_ENDS_CC, "%",
                                                     "ejections ignored below this share"));
absl::Status Validate(const LoadBalancerConfig& c) {
  return ValidateAt("load_balancer", LoadBalancerSchema(), c);
}

LoadBalancer::LoadBalancer(const LoadBalancerConfig& config,
                           std::shared_ptr<OutlierDetector> outlier)
    : config_(config),
      outlier_(std::move(outlier)),
      replicas_(static_cast<size_t>(config.replicas)) {
  candidates_.reserve(replicas_.size());
}

absl::StatusOr<std::unique_ptr<LoadBalancer>> LoadBalancer::Create(
    const LoadBalancerConfig& config, std::shared_ptr<OutlierDetector> outlier) {
  absl::Status s = Validate(config);
  if (!s.ok()) return s;
  if (outlier != nullptr && outlier->replicas() != config.replicas) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "load_balancer.outlier.replicas must equal load_balancer.replicas (%d), got %d",
        config.replicas, outlier->replicas()));
  }
  return std::make_unique<LoadBalancer>(config, std::move(outlier));
}

bool LoadBalancer::EligibleLocked(size_t i, const std::vector<bool>* ejected) const {
  if (replicas_[i].manually_ejected) return false;
  return ejected == nullptr || !(*ejected)[i];
}

double LoadBalancer::CostLocked(const Replica& r, int64_t now_ns) const {
  const double pending = static_cast<double>(r.outstanding);
  if (config_.kind != LbKind::kPeakEwma) return pending + 1.0;
  // In double: the caller's times may sit anywhere in the int64 range.
  const double dt = std::max(0.0, static_cast<double>(now_ns) - static_cast<double>(r.stamp_ns));
  const double cost = r.cost_ns * std::exp(-dt / static_cast<double>(config_.decay_ns));
  if (cost == 0.0 && r.outstanding != 0) return kPenalty + pending;
  return cost * (pending + 1.0);
}

int LoadBalancer::PickLocked(int64_t now_ns, double u1, double u2, bool all) {
  // Without ejections the candidates are the whole pool: index it directly, so that round
  // robin, random and P2C stay O(1) a pick.
  const size_t m = all ? replicas_.size() : candidates_.size();
  auto at = [&](size_t k) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return all ? static_cast<int>(k) : candidates_[k];
  };
  auto load = [&](size_t k) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return replicas_[static_cast<size_t>(at(k))].outstanding;
  };
  switch (config_.kind) {
    case LbKind::kRoundRobin: {
      // The first candidate at or after the cursor, wrapping around.
      int chosen = static_cast<int>(next_);
      if (!all) {
        auto it = std::lower_bound(candidates_.begin(), candidates_.end(), chosen);
        chosen = it == candidates_.end() ? candidates_.front() : *it;
      }
      next_ = (static_cast<size_t>(chosen) + 1) % replicas_.size();
      return chosen;
    }
    case LbKind::kRandom:
      return at(Scale(u1, m));
    case LbKind::kLeastOutstanding: {
      int64_t best = load(0);
      size_t ties = 0;
      for (size_t k = 0; k < m; ++k) {
        const int64_t o = load(k);
        if (o < best) {
          best = o;
          ties = 1;
        } else if (o == best) {
          ++ties;
        }
      }
      size_t nth = Scale(u1, ties);
      for (size_t k = 0; k < m; ++k) {
        if (load(k) == best && nth-- == 0) return at(k);
      }
      return at(0);  // not reached
    }
    case LbKind::kPowerOfTwo:
    case LbKind::kPeakEwma: {
      if (m == 1) return at(0);
      // Two distinct uniform picks: the second is drawn among the m - 1 others.
      const size_t a = Scale(u1, m);
      size_t b = Scale(u2, m - 1);
      if (b >= a) ++b;
      const int ra = at(a);
      const int rb = at(b);
      const double ca = CostLocked(replicas_[static_cast<size_t>(ra)], now_ns);
      const double cb = CostLocked(replicas_[static_cast<size_t>(rb)], now_ns);
      return cb < ca ? rb : ra;  // a tie keeps the first (itself a uniform pick)
    }
  }
  return at(0);
}

int LoadBalancer::Pick(int64_t now_ns, double u1, double u2) {
  MutexLock lock(&mu_);
  int outlier_ejected = 0;
  if (outlier_ != nullptr) {
    outlier_->AdvanceTo(now_ns);
    outlier_ejected = outlier_->EjectedMaskInto(&ejected_);
  }
  bool all = outlier_ejected == 0 && manually_ejected_ == 0;
  if (!all) {
    const std::vector<bool>* mask = outlier_ejected > 0 ? &ejected_ : nullptr;
    candidates_.clear();
    size_t healthy = 0;  // not ejected, blocked or not
    for (size_t i = 0; i < replicas_.size(); ++i) {
      if (!EligibleLocked(i, mask)) continue;
      ++healthy;
      if (!replicas_[i].blocked) candidates_.push_back(static_cast<int>(i));
    }
    const double healthy_percent =
        100.0 * static_cast<double>(healthy) / static_cast<double>(replicas_.size());
    if (healthy_percent < config_.panic_threshold_percent) {
      // Panic: too few replicas left to carry the load; spread it over the whole pool.
      ++panic_picks_;
      all = true;
    } else if (candidates_.empty()) {
      return -1;
    }
  }
  if (all && blocked_ > 0) {
    // Blocked replicas stay out, panic or not.
    candidates_.clear();
    for (size_t i = 0; i < replicas_.size(); ++i) {
      if (!replicas_[i].blocked) candidates_.push_back(static_cast<int>(i));
    }
    if (candidates_.empty()) return -1;
    all = false;
  }
  const int chosen = PickLocked(now_ns, u1, u2, all);
  ++replicas_[static_cast<size_t>(chosen)].picks;
  return chosen;
}

void LoadBalancer::OnStart(int replica) {
  if (replica < 0 || replica >= config_.replicas) return;
  MutexLock lock(&mu_);
  Replica& r = replicas_[static_cast<size_t>(replica)];
  ++r.outstanding;
  ++r.starts;
}

void LoadBalancer::OnEnd(int replica, int64_t now_ns, int64_t latency_ns, bool ok) {
  if (replica < 0 || replica >= config_.replicas) return;
  {
    MutexLock lock(&mu_);
    Replica& r = replicas_[static_cast<size_t>(replica)];
    if (r.outstanding == 0) return;  // no matching start
    --r.outstanding;
    ++r.ends;
    if (!ok) ++r.errors;
    // Peak EWMA (Finagle's observe): jump to a latency above the current estimate, otherwise
    // move towards it with weight 1 - exp(-dt / tau).
    const double rtt = static_cast<double>(std::max<int64_t>(0, latency_ns));
    const double dt = std::max(0.0, static_cast<double>(now_ns) - static_cast<double>(r.stamp_ns));
    const double w = std::exp(-dt / static_cast<double>(config_.decay_ns));
    const double decayed = r.cost_ns * w;
    r.cost_ns = rtt > decayed ? rtt : decayed + rtt * (1.0 - w);
    r.stamp_ns = std::max(r.stamp_ns, now_ns);
    r.seen = true;
  }
  // Outside our lock: the detector has its own, and never calls back.
  if (outlier_ != nullptr) outlier_->RecordResult(replica, now_ns, ok);
}

void LoadBalancer::SetEjected(int replica, bool ejected) {
  if (replica < 0 || replica >= config_.replicas) return;
  MutexLock lock(&mu_);
  Replica& r = replicas_[static_cast<size_t>(replica)];
  if (r.manually_ejected != ejected) manually_ejected_ += ejected ? 1 : -1;
  r.manually_ejected = ejected;
}

void LoadBalancer::SetBlocked(int replica, bool blocked) {
  if (replica < 0 || replica >= config_.replicas) return;
  MutexLock lock(&mu_);
  Replica& r = replicas_[static_cast<size_t>(replica)];
  if (r.blocked != blocked) blocked_ += blocked ? 1 : -1;
  r.blocked = blocked;
}

bool LoadBalancer::InPanic() const {
  std::vector<bool> ejected;
  const bool any = outlier_ != nullptr && outlier_->EjectedMaskInto(&ejected) > 0;
  MutexLock lock(&mu_);
  size_t healthy = 0;
  for (size_t i = 0; i < replicas_.size(); ++i) {
    healthy += EligibleLocked(i, any ? &ejected : nullptr) ? 1 : 0;
  }
  return 100.0 * static_cast<double>(healthy) / static_cast<double>(replicas_.size()) <
         config_.panic_threshold_percent;
}

double LoadBalancer::Cost(int replica, int64_t now_ns) const {
  if (replica < 0 || replica >= config_.replicas) return 0.0;
  MutexLock lock(&mu_);
  return CostLocked(replicas_[static_cast<size_t>(replica)], now_ns);
}

ReplicaLoad LoadBalancer::Load(int replica) const {
  if (replica < 0 || replica >= config_.replicas) return {};
  MutexLock lock(&mu_);
  const Replica& r = replicas_[static_cast<size_t>(replica)];
  return {r.outstanding, r.picks, r.starts, r.ends, r.errors, r.cost_ns};
}

int64_t LoadBalancer::panic_picks() const {
  MutexLock lock(&mu_);
  return panic_picks_;
}

}  // namespace rlab
