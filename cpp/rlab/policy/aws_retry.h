#ifndef RLAB_POLICY_AWS_RETRY_H_
#define RLAB_POLICY_AWS_RETRY_H_

// The AWS SDKs' retry modes, implemented from botocore's source (the published reference):
//   * "standard": botocore/retries/standard.py (StandardRetryConditions, ExponentialBackoff,
//     RetryQuotaChecker) and botocore/retries/quota.py (RetryQuota): at most `max_attempts`
//     attempts, a retry quota shared by every call (500 units; a retry costs 5, 10 after a
//     timeout; a success refunds the cost of the call's last retry, or 1 if it needed none), and
//     truncated binary exponential backoff with full jitter: delay = draw x min(2^(n-1), 20 s).
//   * "adaptive": standard plus client-side rate limiting, botocore/retries/adaptive.py
//     (ClientRateLimiter, RateClocker), throttling.py (CubicCalculator) and bucket.py
//     (TokenBucket): after the first throttling response every send takes a token from a bucket
//     whose fill rate a CUBIC controller sets from the measured send rate.
// This is botocore's default ("standard" as it ships when AWS_NEW_RETRIES_2026 is unset); its
// opt-in 2026 variant (cost 14, throttling-scaled backoff, x-amz-retry-after) is not modelled.
// Pure: time (`now_ns`) and random draws come in as arguments; the caller sleeps.

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rlab/core/mutex.h"
#include "rlab/core/outcome.h"
#include "rlab/core/schema.h"

namespace rlab {

// How the standard mode sees one attempt's result.
enum class AwsErrorKind : uint8_t {
  kSuccess = 0,  // a 2xx answer
  kTransient,    // standard.py TransientRetryableChecker: 500/502/503/504, IO errors
  kTimeout,      // transient, but a connect/read timeout: costs timeout_cost (RetryQuotaChecker)
  kThrottling,   // standard.py ThrottledRetryableChecker: the service asks the client to slow down
  kPermanent,    // anything else: never retried
  kGaveUp,       // the caller cancelled / its deadline passed, or a local rejection: never
                 // retried, and not a response (the adaptive controller does not see it)
};

// "success", "transient", "timeout", "throttling", "permanent" or "gave_up".
std::string_view AwsErrorKindName(AwsErrorKind kind);
absl::StatusOr<AwsErrorKind> ParseAwsErrorKind(std::string_view name);

// The project's outcomes in botocore's terms. botocore classifies by service error code; the lab
// has HTTP statuses and IO kinds, so: timeout -> kTimeout (ConnectTimeoutError/ReadTimeoutError);
// connection reset -> kTransient (ConnectionError); 500/502/503/504 -> kTransient; 408 ->
// kTransient (the "RequestTimeout" error code); 429 -> kThrottling ("TooManyRequestsException");
// other statuses and generic errors -> kPermanent; cancellation, the caller's deadline and local
// rejections -> kGaveUp.
AwsErrorKind ClassifyAwsOutcome(const Outcome& outcome);

// botocore/retries/quota.py RetryQuota: a capacity that retries draw from and successes refill,
// never below 0 nor above its initial (= maximum) value. Not thread-safe (AwsRetryPolicy locks).
class RetryQuota {
 public:
  explicit RetryQuota(int64_t capacity) : max_(capacity), available_(capacity) {}
  // Takes `amount` if that much is available; otherwise changes nothing and returns false.
  bool Acquire(int64_t amount);
  // Gives back `amount`, truncated so that the maximum is never exceeded.
  void Release(int64_t amount);
  int64_t available() const { return available_; }
  int64_t max() const { return max_; }

 private:
  int64_t max_;
  int64_t available_;
};

// standard.py ExponentialBackoff.delay_amount: draw x min(base x 2^(attempt - 1), max_backoff),
// `attempt` being the 1-based attempt that just failed and `draw` uniform in [0, 1). botocore's
// base is 1 s and its max backoff 20 s. Returned in nanoseconds.
int64_t AwsBackoffNs(int attempt, double draw, double base_s, double max_backoff_s);

// throttling.py CubicCalculator: the CUBIC window curve (RFC 8312) applied to a send rate.
// rate(t) = C (t - last_fail - K)^3 + w_max, with K = cbrt(w_max (1 - beta) / C); a throttling
// response at rate r sets w_max = r and cuts the rate to beta x r. Times in seconds.
class CubicCalculator {
 public:
  CubicCalculator(double starting_max_rate, double start_time_s, double scale_constant = 0.4,
                  double beta = 0.7);
  // The rate the curve allows at `now_s`.
  double SuccessReceived(double now_s) const;
  // A throttling response at `now_s` while sending at `current_rate`: the new (lower) rate.
  double ErrorReceived(double current_rate, double now_s);
  double w_max() const { return w_max_; }
  double k() const { return k_; }
  double last_fail_s() const { return last_fail_s_; }

 private:
  double ZeroPoint() const;

  const double scale_constant_;
  const double beta_;
  double w_max_;
  double k_;
  double last_fail_s_;
};

// bucket.py TokenBucket, with the blocking acquire turned into a reservation: Acquire(now)
// answers how long the caller must wait for its token (0: take it now). The token is taken at
// once, so the level may go negative (debt the fill repays), and `max_wait_s` bounds the wait: a
// longer one is refused and changes nothing. Fill rate = max(max_rate, min_rate); capacity =
// max(max_rate, 1). The bucket starts empty, as botocore's does.
class ClientTokenBucket {
 public:
  ClientTokenBucket(double max_rate, double now_s, double min_rate = 0.5);
  // The wait in seconds (>= 0) for `amount` tokens taken at `now_s`, or nullopt (nothing taken)
  // when it would exceed `max_wait_s`.
  std::optional<double> Acquire(double now_s, double max_wait_s, double amount = 1.0);
  // Non-blocking acquire: true and the tokens taken, or false and nothing changed.
  bool TryAcquire(double now_s, double amount = 1.0);
  // Sets the rate at `now_s` (tokens accrued so far are credited at the old rate first).
  void SetMaxRate(double now_s, double max_rate);
  // The rate in force: as botocore's max_rate property, the fill rate (never below min_rate).
  double max_rate() const { return fill_rate_; }
  double fill_rate() const { return fill_rate_; }
  double max_capacity() const { return max_capacity_; }
  double available() const { return capacity_; }
  // Credits the tokens accrued since the last refill (botocore's _refill).
  void Refill(double now_s);

 private:
  const double min_rate_;
  double fill_rate_ = 0.0;
  double max_capacity_ = 0.0;
  double capacity_ = 0.0;
  double last_s_;
};

// adaptive.py RateClocker: the measured send rate, an exponential moving average (smoothing 0.8)
// of request counts per 0.5 s bucket, updated when a request lands in a later bucket.
class RateClocker {
 public:
  explicit RateClocker(double start_s, double smoothing = 0.8, double bucket_s = 0.5);
  // Counts one request at `now_s`; returns the measured rate.
  double Record(double now_s);
  double measured_rate() const { return measured_rate_; }

 private:
  const double smoothing_;
  const double bucket_scale_;
  double measured_rate_ = 0.0;
  double last_bucket_s_;
  int64_t count_ = 0;
};

// adaptive.py ClientRateLimiter: off until the first throttling response; then every send
// acquires a token. Each response records the send rate; a throttling one cuts the rate with
// CUBIC (from the measured rate, or the bucket's rate if lower), any other raises it along the
// curve; the bucket's rate is capped at 2x the measured rate. Not thread-safe (AwsRetryPolicy
// locks).
class ClientRateLimiter {
 public:
  struct Params {
    double min_rate = 0.5;        // bucket.py TokenBucket._MIN_RATE
    double beta = 0.7;            // throttling.py _BETA
    double scale_constant = 0.4;  // throttling.py _SCALE_CONSTANT
    double smoothing = 0.8;       // adaptive.py RateClocker._DEFAULT_SMOOTHING
  };
  // adaptive.py register_retry_handler: CUBIC from rate 0, a bucket at rate 1.
  ClientRateLimiter(const Params& params, double now_s);
  // A request is about to be sent: the wait (0 while disabled), or nullopt if over max_wait_s.
  std::optional<double> OnSendingRequest(double now_s, double max_wait_s);
  // A response (of any kind) arrived; `throttling` if it asked the client to slow down.
  void OnReceivingResponse(double now_s, bool throttling);
  bool enabled() const { return enabled_; }
  const ClientTokenBucket& bucket() const { return bucket_; }
  const CubicCalculator& cubic() const { return cubic_; }
  const RateClocker& clocker() const { return clocker_; }

 private:
  static constexpr double kMaxRateAdjustScale = 2.0;
  CubicCalculator cubic_;
  ClientTokenBucket bucket_;
  RateClocker clocker_;
  bool enabled_ = false;
};

enum class AwsRetryMode : uint8_t { kStandard = 0, kAdaptive = 1 };
std::string_view AwsRetryModeName(AwsRetryMode mode);
absl::StatusOr<AwsRetryMode> ParseAwsRetryMode(std::string_view name);

struct AwsRetryConfig {
  AwsRetryMode mode = AwsRetryMode::kStandard;
  int max_attempts = 3;            // [1, 100]; standard.py DEFAULT_MAX_ATTEMPTS
  int64_t quota = 500;             // [0, 1e9]; quota.py INITIAL_CAPACITY
  int64_t retry_cost = 5;          // [1, 1e9]; standard.py RetryQuotaChecker._RETRY_COST
  int64_t timeout_cost = 10;       // [1, 1e9]; _TIMEOUT_RETRY_REQUEST
  int64_t no_retry_increment = 1;  // [0, 1e9]; _NO_RETRY_INCREMENT
  double base_delay_s = 1.0;       // (0, 1e6]; the first retry waits draw x base_delay
  double max_backoff_s = 20.0;     // (0, 1e6]; standard.py ExponentialBackoff max_backoff
  // Adaptive mode only.
  ClientRateLimiter::Params adaptive;
  double max_wait_s = 60.0;  // [0, 1e6]; longest wait for a send token (botocore: unbounded)
};

// Checks every field, naming them as the Python parameters.
absl::Status Validate(const AwsRetryConfig& config);
// The field table of AwsRetryConfig (Python: rl.AwsRetryConfig; `adaptive` flattened).
const ConfigSchema<AwsRetryConfig>& AwsRetrySchema();

// What to do after an attempt.
enum class AwsRetryVerdict : uint8_t {
  kSucceeded = 0,  // the call succeeded (quota refunded)
  kRetry,          // retry after delay_ns (quota taken: `cost`)
  kPermanent,      // not retryable
  kExhausted,      // retryable, but max_attempts reached
  kQuota,          // retryable, but the retry quota cannot pay for it
};
// "succeeded", "retry", "permanent", "exhausted" or "quota".
std::string_view AwsRetryVerdictName(AwsRetryVerdict verdict);

struct AwsRetryStep {
  AwsRetryVerdict verdict = AwsRetryVerdict::kSucceeded;
  int64_t delay_ns = 0;
  int64_t cost = 0;  // quota taken by this retry; pass it back as `last_cost` next time
};

struct AwsRetrySnapshot {
  int64_t quota_available = 0;
  int64_t quota_max = 0;
  bool limiter_enabled = false;
  double fill_rate = 0.0;      // the send token bucket's rate (adaptive)
  double tokens = 0.0;         // its level (negative: reserved ahead)
  double measured_rate = 0.0;  // the RateClocker's estimate
};

// One client's retry mode: the quota (and in adaptive mode the rate limiter) shared by every call
// through it. Per-call state is two integers the caller keeps: the attempt number and the cost of
// the call's last retry. Thread-safe.
class AwsRetryPolicy {
 public:
  // `config` must have passed Validate.
  AwsRetryPolicy(const AwsRetryConfig& config, int64_t now_ns);
  static absl::StatusOr<std::unique_ptr<AwsRetryPolicy>> Create(const AwsRetryConfig& config,
                                                                int64_t now_ns);

  // An attempt is about to be sent: the wait before sending it (0 in standard mode or before any
  // throttling), or nullopt when the wait would exceed max_wait (the attempt is not sent).
  std::optional<int64_t> BeforeAttempt(int64_t now_ns);
  // Attempt number `attempt` (1-based) ended with `kind` at `now_ns`. `last_cost` is the cost of
  // the call's latest retry (0 if none), `draw` a uniform number in [0, 1) for the jitter.
  AwsRetryStep OnAttemptEnd(int attempt, int64_t last_cost, AwsErrorKind kind, int64_t now_ns,
                            double draw);

  AwsRetrySnapshot Snapshot() const;
  const AwsRetryConfig& config() const { return config_; }

 private:
  const AwsRetryConfig config_;
  mutable Mutex mu_;
  RetryQuota quota_ ABSL_GUARDED_BY(mu_);
  std::optional<ClientRateLimiter> limiter_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rlab

#endif  // RLAB_POLICY_AWS_RETRY_H_
