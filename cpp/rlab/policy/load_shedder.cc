#include "rlab/policy/load_shedder.h"

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "rlab/core/schema.h"
#include "rlab/core/validate.h"

namespace rlab {
namespace {

constexpr std::string_view kClassNames[kNumCriticalities] = {"critical", "default", "sheddable"};
constexpr std::string_view kCauseNames[kNumShedCauses] = {"admit", "occupancy", "delay",
                                                          "fairness"};

bool ValidName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char ch : s) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '_';
    if (!ok) return false;
  }
  return true;
}

// Draws an index with probability proportional to `weight(i)` (n >= 1, total > 0).
template <typename Weight>
int DrawIndex(int n, double total, Weight weight, RandomStream& rng) {
  double u = rng.Uniform01() * total;
  for (int i = 0; i < n; ++i) {
    const double w = weight(i);
    if (u < w) return i;
    u -= w;
  }
  // Rounding left u just above the last weight: the last class with a positive weight.
  for (int i = n - 1; i >= 0; --i) {
    if (weight(i) > 0.0) return i;
  }
  return 0;
}

// The total `traffic` of classes or tenants.
template <typename Items>
double Traffic(const Items& items) {
  double total = 0.0;
  for (const auto& x : items) total += x.traffic;
  return total;
}

}  // namespace

std::string_view CriticalityName(Criticality c) { return kClassNames[static_cast<size_t>(c)]; }

std::string_view ShedCauseName(ShedCause c) { return kCauseNames[static_cast<size_t>(c)]; }

RLAB_TABLE(ShedClassSchema, ShedClassConfig, "ShedClass", "", nullptr,
           RLAB_REAL(traffic, 0, 1e9, CC, "", "the class's weight among arrivals"),
           RLAB_REAL(max_occupancy, 0, 1, OC, "", "refused above this share of the queue"),
           schema::OrNone(RLAB_SECONDS(max_queue_delay, 0, kMaxDurationS, OC,
                                       "refused above this queueing delay"),
                          0));

absl::Status ValidateTenantRules(const TenantConfig& t) {
  if (ValidName(t.name)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrFormat("name must be 1 to 64 letters, digits or underscores, got '%s'", t.name));
}

RLAB_TABLE(TenantSchema, TenantConfig, "Tenant", "", &ValidateTenantRules,
           schema::Required(RLAB_STRING(name, "unique among the tenants")),
           RLAB_REAL(weight, 0, 1e9, OC, "",
                     "its share of a congested queue, relative to the others'"),
           RLAB_REAL(traffic, 0, 1e9, CC, "", "its weight among arrivals"));

absl::Status ValidateSheddingRules(const SheddingConfig& c) {
  if (!(Traffic(c.classes) > 0.0)) {
    return absl::InvalidArgumentError(
        "critical.traffic, default.traffic and sheddable.traffic must not all be 0");
  }
  if (c.tenants.size() > static_cast<size_t>(kMaxTenants)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tenants must have at most %d entries, got %d", kMaxTenants, c.tenants.size()));
  }
  absl::flat_hash_set<std::string_view> names;
  for (size_t i = 0; i < c.tenants.size(); ++i) {
    if (names.insert(c.tenants[i].name).second) continue;
    return absl::InvalidArgumentError(
        absl::StrFormat("tenants[%d].name must be unique, got '%s' twice", i, c.tenants[i].name));
  }
  if (!c.tenants.empty() && !(Traffic(c.tenants) > 0.0)) {
    return absl::InvalidArgumentError("tenants: the traffic of the tenants must not all be 0");
  }
  return absl::OkStatus();
}

RLAB_TABLE(
    SheddingSchema, SheddingConfig, "Shedding", "", &ValidateSheddingRules,
    schema::ConfigAt<&C::classes, 0, &ShedClassSchema>(
        "critical", "the most important class (refused only by a full queue)"),
    schema::ConfigAt<&C::classes, 1, &ShedClassSchema>("default", "the class of ordinary traffic"),
    schema::ConfigAt<&C::classes, 2, &ShedClassSchema>("sheddable", "the class shed first"),
    RLAB_SECONDS(delay_interval, 0, kMaxDurationS, OC, "the window of the recent queueing delay"),
    schema::OrNone(RLAB_REAL(fair_share_above, 0, 1, CC, "",
                             "the occupancy from which tenants are held to their fair share"),
                   -1.0),
    RLAB_LIST(tenants, TenantSchema, /*by_name=*/true, "the tenants (none: one anonymous tenant)"));

absl::Status Validate(const SheddingConfig& c, std::string_view path) {
  return ValidateAt(path, SheddingSchema(), c);
}

OrderOrigin DrawOrigin(const SheddingConfig& c, RandomStream& rng) {
  OrderOrigin o;
  o.criticality = static_cast<Criticality>(DrawIndex(
      kNumCriticalities, Traffic(c.classes), [&](int i) { return c.classes[i].traffic; }, rng));
  if (c.tenants.size() > 1) {
    o.tenant = DrawIndex(
        static_cast<int>(c.tenants.size()), Traffic(c.tenants),
        [&](int i) { return c.tenants[i].traffic; }, rng);
  }
  return o;
}

LoadShedder::LoadShedder(const SheddingConfig& config, int64_t queue_capacity)
    : config_(config), capacity_(std::max<int64_t>(0, queue_capacity)) {
  for (const TenantConfig& t : config_.tenants) weights_.push_back(t.weight);
  if (weights_.empty()) weights_.push_back(1.0);
  MutexLock lock(&mu_);
  tenant_queued_.assign(weights_.size(), 0);
}

void LoadShedder::RollLocked(int64_t now_ns) {
  if (now_ns - window_start_ns_ < config_.delay_interval_ns) return;
  // The window closed: its smallest delay is the standing delay. Without a departure in a whole
  // interval, a non-empty queue is not draining (keep the estimate) and an empty one has none.
  if (window_min_ns_ >= 0) {
    recent_delay_ns_ = window_min_ns_;
  } else if (queued_ == 0) {
    recent_delay_ns_ = 0;
  }
  window_min_ns_ = -1;
  window_start_ns_ = now_ns;
}

ShedCause LoadShedder::Admit(int64_t now_ns, Criticality c, int tenant) {
  const ShedClassConfig& k = config_.classes[static_cast<size_t>(c)];
  const size_t t = static_cast<size_t>(std::clamp<int>(tenant, 0, weights_.size() - 1));
  MutexLock lock(&mu_);
  RollLocked(now_ns);
  const double queued = static_cast<double>(queued_);
  const double capacity = static_cast<double>(capacity_);
  // 1.0 is the queue's own limit (queue_full), so the shedder leaves it to the queue.
  // Without a queue (capacity 0) only the workers admit: occupancy and shares do not apply.
  if (capacity_ > 0 && k.max_occupancy < 1.0 && queued >= k.max_occupancy * capacity) {
    return ShedCause::kOccupancy;
  }
  if (k.max_queue_delay_ns > 0 && recent_delay_ns_ > k.max_queue_delay_ns) {
    return ShedCause::kDelay;
  }
  if (capacity_ > 0 && config_.fair_share_above >= 0.0 && weights_.size() > 1 &&
      queued >= config_.fair_share_above * capacity) {
    const double active = active_weight_ + (tenant_queued_[t] == 0 ? weights_[t] : 0.0);
    const double share = std::max(1.0, capacity * weights_[t] / active);
    if (static_cast<double>(tenant_queued_[t]) + 1.0 > share) return ShedCause::kFairness;
    // Below its share, a tenant still may not grow while it holds more of the queue (weighted)
    // than every other tenant with orders queued: the cap alone lets a tenant that always sits
    // at it out-hold tenants whose bursts come and go (Longest Queue Drop without push-out:
    // Suter et al., "Design Considerations for Supporting TCP with Per-flow Queueing",
    // INFOCOM 1998).
    const double mine = static_cast<double>(tenant_queued_[t]) / weights_[t];
    double longest_other = -1.0;
    for (size_t u = 0; u < weights_.size(); ++u) {
      if (u == t || tenant_queued_[u] == 0) continue;
      longest_other = std::max(longest_other, static_cast<double>(tenant_queued_[u]) / weights_[u]);
    }
    if (longest_other >= 0.0 && mine > longest_other) return ShedCause::kFairness;
  }
  ++queued_;
  if (tenant_queued_[t]++ == 0) active_weight_ += weights_[t];
  return ShedCause::kAdmit;
}

void LoadShedder::OnDequeue(int64_t now_ns, int tenant, int64_t queue_delay_ns) {
  const size_t t = static_cast<size_t>(std::clamp<int>(tenant, 0, weights_.size() - 1));
  MutexLock lock(&mu_);
  RollLocked(now_ns);
  if (queue_delay_ns >= 0) {
    window_min_ns_ = window_min_ns_ < 0 ? queue_delay_ns : std::min(window_min_ns_, queue_delay_ns);
  }
  if (queued_ > 0) --queued_;
  if (tenant_queued_[t] > 0 && --tenant_queued_[t] == 0) {
    active_weight_ -= weights_[t];
    if (active_weight_ < 1e-12) active_weight_ = 0.0;  // float residue once nothing is queued
  }
}

int64_t LoadShedder::queued() const {
  MutexLock lock(&mu_);
  return queued_;
}

int64_t LoadShedder::queued(int tenant) const {
  MutexLock lock(&mu_);
  return tenant >= 0 && static_cast<size_t>(tenant) < tenant_queued_.size()
             ? tenant_queued_[static_cast<size_t>(tenant)]
             : 0;
}

int64_t LoadShedder::recent_delay_ns(int64_t now_ns) {
  MutexLock lock(&mu_);
  RollLocked(now_ns);
  return recent_delay_ns_;
}

}  // namespace rlab
