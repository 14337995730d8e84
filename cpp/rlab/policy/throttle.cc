#include "rlab/policy/throttle.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "rlab/core/clock.h"
#include "rlab/core/schema.h"
#include "rlab/core/validate.h"

namespace rlab {
RLAB_TABLE(ThrottleSchema, ThrottleConfig, "Throttle", "", &ValidateThrottleRules,
           RLAB_REAL(k, 1, 1000, CC, "", "the accepts multiplier K"),
           RLAB_SECONDS(window, 0, kMaxDurationS, OC, "the sliding window"),
           schema::Int<&C::num_buckets>("buckets", 1, 1000, "buckets", "buckets of the window"),
           RLAB_REAL(max_reject_probability, 0, 1, CC, "",
                     "the highest probability of refusing a request"));
absl::Status Validate(const ThrottleConfig& c) { return ValidateAt("", ThrottleSchema(), c); }

absl::Status ValidateBuckets(std::string_view buckets_name, int64_t buckets,
                             std::string_view window_name, int64_t window_ns) {
  if (buckets <= window_ns) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrFormat("%s must be at most %s in nanoseconds (%d), got %d", buckets_name,
                      window_name, window_ns, buckets));
}

absl::Status ValidateThrottleRules(const ThrottleConfig& c) {
  return ValidateBuckets("buckets", c.num_buckets, "window", c.window_ns);
}

bool IsAcceptedByBackend(const Outcome& outcome) {
  switch (outcome.kind) {
    case OutcomeKind::kSuccess:
    case OutcomeKind::kError:
    case OutcomeKind::kCancelled:
      return true;
    case OutcomeKind::kHttpStatus:
      switch (outcome.http_status) {
        case 429:
        case 502:
        case 503:
        case 504:
          return false;
        default:
          return true;
      }
    case OutcomeKind::kTimeout:
    case OutcomeKind::kConnectionReset:
    case OutcomeKind::kDeadlineExceeded:
    case OutcomeKind::kBreakerOpen:
    case OutcomeKind::kBreakerHalfOpenFull:
    case OutcomeKind::kBulkheadFull:
    case OutcomeKind::kThrottled:
      return false;
  }
  return false;
}

double AdaptiveThrottle::Probability(double k, int64_t requests, int64_t accepts) {
  const double r = static_cast<double>(requests);
  return std::max(0.0, (r - k * static_cast<double>(accepts)) / (r + 1.0));
}

AdaptiveThrottle::AdaptiveThrottle(const ThrottleConfig& config)
    : config_(config), window_(config.window_ns, config.num_buckets) {}

absl::StatusOr<std::unique_ptr<AdaptiveThrottle>> AdaptiveThrottle::Create(
    const ThrottleConfig& config) {
  absl::Status s = Validate(config);
  if (!s.ok()) return s;
  return std::make_unique<AdaptiveThrottle>(config);
}

bool AdaptiveThrottle::Allow(int64_t now_ns, double u) {
  MutexLock lock(&mu_);
  const TimeWindowCounter::Counts& totals = window_.Totals(now_ns);
  const double p = std::min(Probability(config_.k, totals[kRequests], totals[kAccepts]),
                            config_.max_reject_probability);
  window_.Add(now_ns, kRequests);
  const bool reject = u < p;
  if (reject) ++local_rejections_;
  return !reject;
}

void AdaptiveThrottle::RecordAccepted(int64_t now_ns) {
  MutexLock lock(&mu_);
  window_.Add(now_ns, kAccepts);
}

void AdaptiveThrottle::RecordOutcome(int64_t now_ns, const Outcome& outcome) {
  if (IsAcceptedByBackend(outcome)) RecordAccepted(now_ns);
}

double AdaptiveThrottle::RejectProbability(int64_t now_ns) {
  MutexLock lock(&mu_);
  const TimeWindowCounter::Counts& totals = window_.Totals(now_ns);
  return std::min(Probability(config_.k, totals[kRequests], totals[kAccepts]),
                  config_.max_reject_probability);
}

ThrottleSnapshot AdaptiveThrottle::Snapshot(int64_t now_ns) {
  MutexLock lock(&mu_);
  const TimeWindowCounter::Counts& totals = window_.Totals(now_ns);
  ThrottleSnapshot snap;
  snap.requests = totals[kRequests];
  snap.accepts = totals[kAccepts];
  snap.reject_probability =
      std::min(Probability(config_.k, snap.requests, snap.accepts), config_.max_reject_probability);
  snap.local_rejections = local_rejections_;
  return snap;
}

}  // namespace rlab
