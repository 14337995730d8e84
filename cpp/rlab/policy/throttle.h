#ifndef RLAB_POLICY_THROTTLE_H_
#define RLAB_POLICY_THROTTLE_H_

// Adaptive client-side throttling ("Handling Overload", Google SRE book, ch. 21): each client
// tracks, over a sliding window, how many requests it attempted and how many the backend
// accepted, and rejects new requests locally with probability
//
//     p = max(0, (requests - K * accepts) / (requests + 1))
//
// so that once the backend refuses more than 1 - 1/K of the traffic, the excess is shed before it
// leaves the client. Requests rejected locally count as requests: while the backend stays
// unhealthy, p keeps rising towards 1; once it recovers, accepts catch up and p falls to 0.

#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rlab/core/mutex.h"
#include "rlab/core/outcome.h"
#include "rlab/core/schema.h"
#include "rlab/core/sliding_window.h"

namespace rlab {

// Parameters of the adaptive throttle.
struct ThrottleConfig {
  // The multiplier K, in [1, 1000]: the backend may refuse up to 1 - 1/K of the requests before
  // the client sheds anything. The SRE book suggests 2; lower is more aggressive.
  double k = 2.0;
  // The sliding window, in (0, 1e6] seconds; the SRE book uses two minutes.
  int64_t window_ns = 120 * int64_t{1'000'000'000};
  // Buckets of the sliding window, in [1, 1000] and no more than window_ns.
  int num_buckets = 120;
  // The highest probability of refusing a request, in [0, 1]: a cap on the SRE book's formula,
  // as Envoy's admission control filter has (max_reject_probability, 80% there), so that some
  // requests still reach a backend that may have recovered. 1: no cap (the book).
  double max_reject_probability = 1.0;
};

// Checks every field, naming the Python parameter (k, window, buckets).
absl::Status Validate(const ThrottleConfig& config);
// The field table of ThrottleConfig (Python: rl.Throttle), and the rule Validate adds (buckets
// <= window_ns).
const ConfigSchema<ThrottleConfig>& ThrottleSchema();
absl::Status ValidateThrottleRules(const ThrottleConfig& config);

// The rule of a sliding window split in buckets (the throttle's, the ratio budget's and the
// breaker's time window): `buckets` at most `window_ns`, so that a bucket spans at least one
// nanosecond; the error names both fields.
absl::Status ValidateBuckets(std::string_view buckets_name, int64_t buckets,
                             std::string_view window_name, int64_t window_ns);

// Whether an outcome counts as "accepted by the backend" for the throttle. The throttle measures
// overload, so only refusals that say "too much load" count against the backend:
//   accepted:     success; HTTP statuses other than those below (4xx, 500, 501, ...), because
//                 the backend processed the request; kError (a generic failure: the backend
//                 answered); kCancelled (the caller gave up: no evidence against the backend).
//   not accepted: 429, 502, 503, 504 (throttled, unavailable, or a gateway that could not reach
//                 or timed out on the backend); kTimeout, kConnectionReset and
//                 kDeadlineExceeded (no answer in time: the classic overload symptoms); and the
//                 local rejections (breaker, bulkhead, throttle: the request never got through).
bool IsAcceptedByBackend(const Outcome& outcome);

// Window counts and the rejection probability at some instant, for metrics.
struct ThrottleSnapshot {
  int64_t requests = 0;  // requests in the window (locally rejected ones included)
  int64_t accepts = 0;   // accepted by the backend, in the window
  double reject_probability = 0.0;
  int64_t local_rejections = 0;  // lifetime count of requests rejected by Allow
};

// The adaptive throttle. Pure (time and random draws come in) and thread-safe.
class AdaptiveThrottle {
 public:
  // `config` must have passed Validate.
  explicit AdaptiveThrottle(const ThrottleConfig& config);
  // Validates `config` first.
  static absl::StatusOr<std::unique_ptr<AdaptiveThrottle>> Create(const ThrottleConfig& config);

  AdaptiveThrottle(const AdaptiveThrottle&) = delete;
  AdaptiveThrottle& operator=(const AdaptiveThrottle&) = delete;

  // Decides one request at `now_ns` with the uniform draw `u` in [0, 1): rejects it locally
  // when u < p, p computed from the window *before* this request. Counts it as a request either
  // way. Returns true to send it.
  bool Allow(int64_t now_ns, double u);
  // The backend accepted a request sent at or before `now_ns`.
  void RecordAccepted(int64_t now_ns);
  // Records `outcome` of a sent request: counts an accept when IsAcceptedByBackend says so.
  void RecordOutcome(int64_t now_ns, const Outcome& outcome);

  // The probability that a request at `now_ns` would be rejected.
  double RejectProbability(int64_t now_ns);
  // Window counts at `now_ns` (expires buckets up to `now_ns`).
  ThrottleSnapshot Snapshot(int64_t now_ns);
  // The configuration it was built with.
  const ThrottleConfig& config() const { return config_; }

  // The SRE formula on raw counts: max(0, (requests - k * accepts) / (requests + 1)).
  static double Probability(double k, int64_t requests, int64_t accepts);

 private:
  static constexpr int kRequests = 0;
  static constexpr int kAccepts = 1;

  const ThrottleConfig config_;
  Mutex mu_;
  TimeWindowCounter window_ ABSL_GUARDED_BY(mu_);
  int64_t local_rejections_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rlab

#endif  // RLAB_POLICY_THROTTLE_H_
