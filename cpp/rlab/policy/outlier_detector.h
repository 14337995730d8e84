#ifndef RLAB_POLICY_OUTLIER_DETECTOR_H_
#define RLAB_POLICY_OUTLIER_DETECTOR_H_

// Outlier ejection over a pool of replicas, as Envoy's outlier detection does it (Envoy docs
// "intro/arch_overview/upstream/outlier"; source/common/upstream/outlier_detection_impl.cc):
//
// - Consecutive errors: the replica whose n-th error in a row arrives is ejected at once.
// - Success rate: every `interval`, each replica that is not ejected and saw at least
//   `request_volume` results during the interval just ended contributes its success rate; when
//   at least `minimum_hosts` contribute, those below mean - stdev_factor * stdev are ejected
//   (population standard deviation, as Envoy computes it).
// - An ejection lasts base_ejection_time * k, capped by max_ejection_time, where k counts recent
//   ejections: it grows by one on each ejection (while k * base < max + base) and shrinks by one
//   at each interval tick that finds the replica healthy at least one interval after its
//   return. Ejected replicas come back at interval ticks only, as in Envoy.
// - An ejection that would leave more than max_ejection_percent of the pool ejected is refused.
//
// Not modelled: Envoy's enforcing_* percentages (always 100 here), the failure-percentage and
// local-origin detectors, gateway-only errors, and ejection jitter.
//
// Pure: time comes in as arguments. Interval ticks fall at start + k * interval; every call
// first runs the ticks due up to its `now`, so a result is counted in the interval it falls in.
// Thread-safe.

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rlab/core/mutex.h"
#include "rlab/core/schema.h"

namespace rlab {

// Parameters; names in error messages are the dotted Python paths ("outlier.<field>").
struct OutlierDetectionConfig {
  // Replicas in the pool, in [1, 100000].
  int replicas = 1;
  // Errors in a row that eject a replica, in [0, 1000000]; 0 turns the check off. Envoy: 5.
  int consecutive_errors = 5;
  // Ticks of the success-rate check and of returns, in (0, 1e6] s. Envoy: 10 s.
  int64_t interval_ns = 10 * int64_t{1'000'000'000};
  // The first ejection's length, in (0, 1e6] s. Envoy: 30 s.
  int64_t base_ejection_ns = 30 * int64_t{1'000'000'000};
  // The cap on an ejection's length, in [base_ejection, 1e6] s. Envoy: 300 s.
  int64_t max_ejection_ns = 300 * int64_t{1'000'000'000};
  // The largest share of the pool ejected at once, in [0, 100] percent. Envoy: 10.
  double max_ejection_percent = 10.0;
  // Whether the success-rate check runs.
  bool success_rate = true;
  // Replicas with enough volume needed for the success-rate check, in [1, 100000]. Envoy: 5.
  int success_rate_minimum_hosts = 5;
  // Results in an interval for a replica to count, in [1, 1e9]. Envoy: 100.
  int64_t success_rate_request_volume = 100;
  // The threshold is mean - factor * stdev, factor in [0, 100]. Envoy: 1.9 (1900 / 1000).
  double success_rate_stdev_factor = 1.9;
};

absl::Status Validate(const OutlierDetectionConfig& config);
// The field table of OutlierDetectionConfig (Python: rl.OutlierDetection; `replicas` is the
// pool's), and the rule Validate adds (max_ejection_time >= base_ejection_time).
const ConfigSchema<OutlierDetectionConfig>& OutlierSchema();
absl::Status ValidateOutlierRules(const OutlierDetectionConfig& config);

// Why a replica was ejected.
enum class EjectionReason { kConsecutiveErrors, kSuccessRate };

// One ejection or return, for traces and tests.
struct EjectionEvent {
  int64_t time_ns = 0;
  int replica = 0;
  bool ejected = false;                                        // true: ejected; false: returned
  EjectionReason reason = EjectionReason::kConsecutiveErrors;  // of the ejection
};

// Per-replica state at an instant.
struct ReplicaOutlierState {
  bool ejected = false;
  int64_t times_ejected = 0;  // lifetime ejections
  int64_t backoff = 0;        // the multiplier k of the next ejection's length
  int64_t consecutive_errors = 0;
  int64_t ejected_until_ns = 0;  // earliest return (at the first tick at or after it)
};

class OutlierDetector {
 public:
  // `config` must have passed Validate; ticks fall at start_ns + k * interval.
  explicit OutlierDetector(const OutlierDetectionConfig& config, int64_t start_ns = 0);
  static absl::StatusOr<std::unique_ptr<OutlierDetector>> Create(
      const OutlierDetectionConfig& config, int64_t start_ns = 0);

  OutlierDetector(const OutlierDetector&) = delete;
  OutlierDetector& operator=(const OutlierDetector&) = delete;

  // Runs due ticks, then records how a call to `replica` ended at `now_ns`. Returns true when
  // this result ejected the replica (consecutive errors).
  bool RecordResult(int replica, int64_t now_ns, bool ok);
  // Runs the ticks due up to `now_ns` (returns and success-rate ejections). Times before the
  // last tick run change nothing.
  void AdvanceTo(int64_t now_ns);

  bool IsEjected(int replica) const;
  // Whether each replica is ejected, as of the last call.
  std::vector<bool> EjectedMask() const;
  // The number of ejected replicas; when it is not zero, also fills `*mask` as EjectedMask
  // (reusing its storage: the balancer's hot path allocates nothing).
  int EjectedMaskInto(std::vector<bool>* mask) const;
  int EjectedCount() const;
  ReplicaOutlierState State(int replica) const;
  // Every ejection and return so far, oldest first (bounded: the last 4096).
  std::vector<EjectionEvent> Events() const;
  // Ejections refused by max_ejection_percent.
  int64_t overflow_count() const;
  const OutlierDetectionConfig& config() const { return config_; }
  int replicas() const { return config_.replicas; }

 private:
  struct Replica {
    bool ejected = false;
    int64_t times_ejected = 0;
    int64_t backoff = 0;
    int64_t consecutive_errors = 0;
    int64_t last_ejection_ns = 0;
    bool has_returned = false;
    int64_t last_return_ns = 0;
    int64_t ok_in_interval = 0;
    int64_t total_in_interval = 0;
  };

  void RunTicksLocked(int64_t now_ns) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TickLocked(int64_t tick_ns) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t EjectionLengthLocked(const Replica& r) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EjectLocked(int replica, int64_t now_ns, EjectionReason reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordEventLocked(const EjectionEvent& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool IdleLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const OutlierDetectionConfig config_;
  mutable Mutex mu_;
  std::vector<Replica> replicas_ ABSL_GUARDED_BY(mu_);
  int64_t next_tick_ns_ ABSL_GUARDED_BY(mu_);
  int ejected_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t overflow_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<EjectionEvent> events_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rlab

#endif  // RLAB_POLICY_OUTLIER_DETECTOR_H_
