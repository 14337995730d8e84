#include "rlab/policy/outlier_detector.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_format.h"
#include "rlab/core/clock.h"
#include "rlab/core/schema.h"
#include "rlab/core/validate.h"

namespace rlab {
namespace {

constexpr size_t kMaxEvents = 4096;
constexpr int64_t kMaxInt64 = std::numeric_limits<int64_t>::max();

int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_add_overflow(a, b, &out)) return b > 0 ? kMaxInt64 : -kMaxInt64 - 1;
  return out;
}

// a - b, saturating: times come from callers and may sit anywhere in the int64 range.
int64_t Sub(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_sub_overflow(a, b, &out)) return b < 0 ? kMaxInt64 : -kMaxInt64 - 1;
  return out;
}

// ceil(a / b) for b > 0 and a >= 0.
int64_t CeilDiv(int64_t a, int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }

}  // namespace

RLAB_TABLE(
    OutlierSchema, OutlierDetectionConfig, "OutlierDetection", "", &ValidateOutlierRules,
    RLAB_INT(consecutive_errors, 0, 1'000'000, "errors", "errors in a row that eject (0: off)"),
    RLAB_SECONDS(interval, 0, kMaxDurationS, OC, "between ticks"),
    schema::Seconds<&C::base_ejection_ns>("base_ejection_time", 0, kMaxDurationS, RLAB_ENDS_OC,
                                          "the first ejection's length"),
    schema::Seconds<&C::max_ejection_ns>("max_ejection_time", 0, kMaxDurationS, RLAB_ENDS_OC,
                                         "the cap on an ejection's length"),
    RLAB_REAL(max_ejection_percent, 0, 100, CC, "%", "the largest share of the pool ejected"),
    RLAB_FLAG(success_rate, "whether the success-rate check runs"),
    RLAB_INT(success_rate_minimum_hosts, 1, 100'000, "replicas", "replicas with enough volume"),
    RLAB_INT(success_rate_request_volume, 1, 1'000'000'000, "results",
             "results for a replica to count"),
    RLAB_REAL(success_rate_stdev_factor, 0, 100, CC, "", "the threshold's factor"));

absl::Status ValidateOutlierRules(const OutlierDetectionConfig& c) {
  if (c.max_ejection_ns >= c.base_ejection_ns) return absl::OkStatus();
  // Envoy refuses the same configuration.
  return absl::InvalidArgumentError(absl::StrFormat(
      "max_ejection_time must be in [base_ejection_time (%g s), 1e+06] seconds, got %g",
      NsToSeconds(c.base_ejection_ns), NsToSeconds(c.max_ejection_ns)));
}

absl::Status Validate(const OutlierDetectionConfig& c) {
  return FirstError({CheckIntRange("outlier.replicas", c.replicas, 1, 100000),
                     ValidateAt("outlier", OutlierSchema(), c)});
}

OutlierDetector::OutlierDetector(const OutlierDetectionConfig& config, int64_t start_ns)
    : config_(config),
      replicas_(static_cast<size_t>(config.replicas)),
      next_tick_ns_(SaturatingAdd(start_ns, config.interval_ns)) {}

absl::StatusOr<std::unique_ptr<OutlierDetector>> OutlierDetector::Create(
    const OutlierDetectionConfig& config, int64_t start_ns) {
  absl::Status s = Validate(config);
  if (!s.ok()) return s;
  return std::make_unique<OutlierDetector>(config, start_ns);
}

int64_t OutlierDetector::EjectionLengthLocked(const Replica& r) const {
  // min(base * k, max); k <= max / base + 1 keeps the product in range.
  const int64_t length = r.backoff > config_.max_ejection_ns / config_.base_ejection_ns
                             ? config_.max_ejection_ns
                             : config_.base_ejection_ns * r.backoff;
  return std::min(length, config_.max_ejection_ns);
}

void OutlierDetector::RecordEventLocked(const EjectionEvent& e) {
  if (events_.size() == kMaxEvents) events_.erase(events_.begin());
  events_.push_back(e);
}

void OutlierDetector::EjectLocked(int replica, int64_t now_ns, EjectionReason reason) {
  Replica& r = replicas_[static_cast<size_t>(replica)];
  if (r.ejected) return;
  // Envoy counts the ejection being decided: (ejected + 1) / pool <= max percent.
  const double percent = 100.0 * (ejected_count_ + 1) / config_.replicas;
  if (percent > config_.max_ejection_percent) {
    ++overflow_;
    return;
  }
  r.ejected = true;
  ++ejected_count_;
  ++r.times_ejected;
  r.last_ejection_ns = now_ns;
  // Grow k while base * k < max + base, i.e. until the cap is reached (Envoy's rule).
  if (r.backoff <
      CeilDiv(config_.max_ejection_ns + config_.base_ejection_ns, config_.base_ejection_ns)) {
    ++r.backoff;
  }
  RecordEventLocked({now_ns, replica, true, reason});
}

bool OutlierDetector::IdleLocked() const {
  for (const Replica& r : replicas_) {
    if (r.total_in_interval != 0) return false;
  }
  return true;
}

void OutlierDetector::TickLocked(int64_t tick_ns) {
  // 1. Returns: an ejected replica whose ejection has lasted min(base * k, max) comes back.
  for (size_t i = 0; i < replicas_.size(); ++i) {
    Replica& r = replicas_[i];
    if (r.ejected && Sub(tick_ns, r.last_ejection_ns) >= EjectionLengthLocked(r)) {
      r.ejected = false;
      --ejected_count_;
      // Reset the run so that a few new errors do not re-eject it at once (as Envoy does).
      r.consecutive_errors = 0;
      r.has_returned = true;
      r.last_return_ns = tick_ns;
      RecordEventLocked({tick_ns, static_cast<int>(i), false, EjectionReason::kConsecutiveErrors});
    }
  }
  // 2. Success-rate outliers over the interval that just ended.
  if (config_.success_rate && config_.replicas >= config_.success_rate_minimum_hosts) {
    std::vector<std::pair<int, double>> valid;
    double sum = 0.0;
    for (size_t i = 0; i < replicas_.size(); ++i) {
      const Replica& r = replicas_[i];
      if (r.ejected || r.total_in_interval < config_.success_rate_request_volume) continue;
      const double rate =
          100.0 * static_cast<double>(r.ok_in_interval) / static_cast<double>(r.total_in_interval);
      valid.emplace_back(static_cast<int>(i), rate);
      sum += rate;
    }
    if (!valid.empty() && static_cast<int>(valid.size()) >= config_.success_rate_minimum_hosts) {
      const double mean = sum / static_cast<double>(valid.size());
      double variance = 0.0;
      for (const auto& [i, rate] : valid) variance += (rate - mean) * (rate - mean);
      variance /= static_cast<double>(valid.size());
      const double threshold = mean - config_.success_rate_stdev_factor * std::sqrt(variance);
      for (const auto& [i, rate] : valid) {
        if (rate < threshold) EjectLocked(i, tick_ns, EjectionReason::kSuccessRate);
      }
    }
  }
  for (Replica& r : replicas_) {
    r.ok_in_interval = 0;
    r.total_in_interval = 0;
  }
  // 3. A replica healthy for at least an interval since its return earns back one step of k.
  for (Replica& r : replicas_) {
    if (!r.ejected && r.has_returned && r.backoff > 0 &&
        Sub(tick_ns, r.last_return_ns) >= config_.interval_ns) {
      --r.backoff;
    }
  }
}

void OutlierDetector::RunTicksLocked(int64_t now_ns) {
  const int64_t interval = config_.interval_ns;
  // next_tick_ns_ == kMaxInt64 means the end of representable time: no more ticks.
  while (next_tick_ns_ <= now_ns && next_tick_ns_ != kMaxInt64) {
    if (IdleLocked() && Sub(now_ns, next_tick_ns_) >= interval) {
      // No results since the last tick: until a return is due, a tick only earns back backoff
      // steps. Skip those ticks arithmetically so that a long quiet gap costs O(replicas).
      int64_t jump_to = next_tick_ns_ + Sub(now_ns, next_tick_ns_) / interval * interval;
      for (const Replica& r : replicas_) {
        if (!r.ejected) continue;
        const int64_t due = SaturatingAdd(r.last_ejection_ns, EjectionLengthLocked(r));
        const int64_t ticks = CeilDiv(std::max<int64_t>(0, Sub(due, next_tick_ns_)), interval);
        if (ticks <= (jump_to - next_tick_ns_) / interval) {
          jump_to = std::min(jump_to, next_tick_ns_ + ticks * interval);
        }
      }
      const int64_t skipped = (jump_to - next_tick_ns_) / interval;
      if (skipped > 0) {
        for (Replica& r : replicas_) {
          if (r.ejected || !r.has_returned || r.backoff == 0) continue;
          // Skipped ticks t with t - last_return >= interval each take one step.
          const int64_t first = CeilDiv(
              std::max<int64_t>(0, Sub(SaturatingAdd(r.last_return_ns, interval), next_tick_ns_)),
              interval);
          const int64_t steps = std::max<int64_t>(0, skipped - first);
          r.backoff = std::max<int64_t>(0, r.backoff - steps);
        }
        next_tick_ns_ = jump_to;
      }
    }
    TickLocked(next_tick_ns_);
    const int64_t next = SaturatingAdd(next_tick_ns_, interval);
    next_tick_ns_ = next;  // kMaxInt64 once it saturates
  }
}

void OutlierDetector::AdvanceTo(int64_t now_ns) {
  MutexLock lock(&mu_);
  RunTicksLocked(now_ns);
}

bool OutlierDetector::RecordResult(int replica, int64_t now_ns, bool ok) {
  if (replica < 0 || replica >= config_.replicas) return false;
  MutexLock lock(&mu_);
  RunTicksLocked(now_ns);
  Replica& r = replicas_[static_cast<size_t>(replica)];
  ++r.total_in_interval;
  if (ok) {
    ++r.ok_in_interval;
    r.consecutive_errors = 0;
    return false;
  }
  ++r.consecutive_errors;
  if (config_.consecutive_errors == 0 || r.ejected ||
      r.consecutive_errors < config_.consecutive_errors) {
    return false;
  }
  // Envoy resets the run once it is detected, ejected or not (max_ejection_percent may refuse).
  r.consecutive_errors = 0;
  EjectLocked(replica, now_ns, EjectionReason::kConsecutiveErrors);
  return r.ejected;
}

bool OutlierDetector::IsEjected(int replica) const {
  if (replica < 0 || replica >= config_.replicas) return false;
  MutexLock lock(&mu_);
  return replicas_[static_cast<size_t>(replica)].ejected;
}

std::vector<bool> OutlierDetector::EjectedMask() const {
  MutexLock lock(&mu_);
  std::vector<bool> mask(replicas_.size());
  for (size_t i = 0; i < replicas_.size(); ++i) mask[i] = replicas_[i].ejected;
  return mask;
}

int OutlierDetector::EjectedMaskInto(std::vector<bool>* mask) const {
  MutexLock lock(&mu_);
  if (ejected_count_ == 0) return 0;
  mask->resize(replicas_.size());
  for (size_t i = 0; i < replicas_.size(); ++i) (*mask)[i] = replicas_[i].ejected;
  return ejected_count_;
}

int OutlierDetector::EjectedCount() const {
  MutexLock lock(&mu_);
  return ejected_count_;
}

ReplicaOutlierState OutlierDetector::State(int replica) const {
  if (replica < 0 || replica >= config_.replicas) return {};
  MutexLock lock(&mu_);
  const Replica& r = replicas_[static_cast<size_t>(replica)];
  return {r.ejected, r.times_ejected, r.backoff, r.consecutive_errors,
          r.ejected ? SaturatingAdd(r.last_ejection_ns, EjectionLengthLocked(r)) : 0};
}

std::vector<EjectionEvent> OutlierDetector::Events() const {
  MutexLock lock(&mu_);
  return events_;
}

int64_t OutlierDetector::overflow_count() const {
  MutexLock lock(&mu_);
  return overflow_;
}

}  // namespace rlab
