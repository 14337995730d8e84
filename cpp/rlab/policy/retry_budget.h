#ifndef RLAB_POLICY_RETRY_BUDGET_H_
#define RLAB_POLICY_RETRY_BUDGET_H_

// Retry budgets: a cap on retries shared by every call to a dependency, so that a failing
// dependency sees a bounded amount of extra load instead of a retry storm. Two budgets:
//   * TokenBucketBudget: gRPC's retry throttling (gRFC A6), token arithmetic in thousandths.
//   * RatioBudget: retries <= ratio x requests over a sliding time window, plus a floor
//     (Finagle's RetryBudget).
// Both are pure and thread-safe: time comes in as `now_ns`, state is guarded by a mutex.

#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rlab/core/mutex.h"
#include "rlab/core/schema.h"
#include "rlab/core/sliding_window.h"

namespace rlab {

// A cap on retries shared by many calls: the guard against retry storms. Implementations are
// thread-safe (one budget is shared by every worker of a dependency) and pure: time comes in.
class RetryBudget {
 public:
  virtual ~RetryBudget() = default;

  // A call's first attempt is about to be sent (ratio budgets count it as a request).
  virtual void OnRequest(int64_t now_ns) = 0;
  // Asks to send one retry now. Returns false to refuse it; when it returns true the retry is
  // counted against the budget.
  virtual bool TryAcquireRetry(int64_t now_ns) = 0;
  // An attempt (first or retry) ended: `success`, or a failure that the retry policy classes as
  // retryable (`retryable_failure`); other outcomes pass neither flag.
  virtual void OnOutcome(int64_t now_ns, bool success, bool retryable_failure) = 0;
};

// ---------------------------------------------------------------------------------------------
// Token bucket (gRFC A6).

// Parameters of gRPC's retry throttling. A6 keeps three decimal places: both values are rounded
// to the nearest thousandth, and all arithmetic is done in integer thousandths ("milli-tokens"),
// so that e.g. ten successes at 0.1 add exactly one token.
struct TokenBucketConfig {
  // The bucket's capacity and starting level, in (0, 1000].
  double max_tokens = 10.0;
  // Tokens returned by each success, in (0, 1000] (gRFC A6: any positive ratio; typically < 1).
  double token_ratio = 0.1;
};

// Checks both fields (Python names in messages), including that each rounds to >= 0.001.
absl::Status Validate(const TokenBucketConfig& config);
// The field table of TokenBucketConfig (rlab/core/schema.h), and the rules Validate adds
// to it (each field rounds to >= 0.001).
const ConfigSchema<TokenBucketConfig>& TokenBucketSchema();
absl::Status ValidateTokenBucketRules(const TokenBucketConfig& config);

// Point-in-time state of a TokenBucketBudget, for metrics.
struct TokenBucketBudgetSnapshot {
  int64_t milli_tokens = 0;
  int64_t retries_allowed = 0;  // TryAcquireRetry calls that returned true
  int64_t retries_refused = 0;  // TryAcquireRetry calls that returned false
};

// gRPC's retry throttle: the bucket starts full; each retryable failure takes one token and each
// success returns `token_ratio`, clamped to [0, max_tokens]; retries are allowed only while
// tokens > max_tokens / 2. Non-retryable failures leave the bucket alone, as in A6.
class TokenBucketBudget final : public RetryBudget {
 public:
  // `config` must have passed Validate.
  explicit TokenBucketBudget(const TokenBucketConfig& config);
  // Validates `config` first.
  static absl::StatusOr<std::unique_ptr<TokenBucketBudget>> Create(const TokenBucketConfig& config);

  TokenBucketBudget(const TokenBucketBudget&) = delete;
  TokenBucketBudget& operator=(const TokenBucketBudget&) = delete;

  // A no-op: A6 counts outcomes, not requests.
  void OnRequest(int64_t now_ns) override;
  // True while tokens > max_tokens / 2. Takes no token: the failure that led here already did.
  bool TryAcquireRetry(int64_t now_ns) override;
  // Success adds token_ratio; a retryable failure takes one token; anything else is ignored.
  // When both flags are set, success wins (a success is never a failure).
  void OnOutcome(int64_t now_ns, bool success, bool retryable_failure) override;

  // The current level in thousandths of a token: exact, unlike tokens().
  int64_t milli_tokens() const;
  // The current level in tokens.
  double tokens() const { return static_cast<double>(milli_tokens()) / 1000.0; }
  // The capacity in thousandths of a token.
  int64_t max_milli_tokens() const { return max_milli_tokens_; }
  // Thousandths of a token returned by each success.
  int64_t milli_token_ratio() const { return milli_token_ratio_; }
  // Retries are allowed while milli_tokens() is strictly above this (max_milli_tokens / 2).
  int64_t threshold_milli_tokens() const { return threshold_milli_tokens_; }
  // A consistent snapshot of the level and counters.
  TokenBucketBudgetSnapshot Snapshot() const;

 private:
  const int64_t max_milli_tokens_;
  const int64_t milli_token_ratio_;
  const int64_t threshold_milli_tokens_;
  mutable Mutex mu_;
  TokenBucketBudgetSnapshot state_ ABSL_GUARDED_BY(mu_);
};

// ---------------------------------------------------------------------------------------------
// Ratio budget (Finagle's RetryBudget).

// Parameters of a ratio budget.
struct RatioBudgetConfig {
  // Retries allowed per request in the window, in [0, 1000] (Finagle's percentCanRetry bound).
  double ratio = 0.1;
  // The sliding window, in (0, 1e6] seconds.
  int64_t window_ns = 10 * int64_t{1'000'000'000};
  // Retries per second allowed whatever the request count, in [0, 1e6]; the window holds
  // min_retries_per_s x window seconds of them, so that a quiet client can still retry.
  double min_retries_per_s = 10.0;
  // Buckets of the sliding window, in [1, 1000] and no more than window_ns.
  int num_buckets = 10;
};

// Checks every field (Python names in messages: ratio, window, min_retries_per_second, buckets).
absl::Status Validate(const RatioBudgetConfig& config);
// The field table of RatioBudgetConfig, and the rule Validate adds (buckets <= window_ns).
const ConfigSchema<RatioBudgetConfig>& RatioBudgetSchema();
absl::Status ValidateRatioBudgetRules(const RatioBudgetConfig& config);

// Window counts of a RatioBudget at some instant, for metrics.
struct RatioBudgetSnapshot {
  int64_t requests = 0;         // first attempts in the window
  int64_t retries = 0;          // retries allowed in the window
  double allowance = 0.0;       // ratio x requests + floor: retries the window may hold
  int64_t retries_refused = 0;  // lifetime count of refusals
};

// Allows a retry when, counting it, retries <= ratio x requests + min_retries_per_s x window over
// the sliding window. Additive like Finagle's (the floor is "in addition to" the ratio), so that
// low-traffic clients and cold starts can retry while a storm is still capped at `ratio`.
// Requests are first attempts only: retries never earn more retries.
class RatioBudget final : public RetryBudget {
 public:
  // `config` must have passed Validate.
  explicit RatioBudget(const RatioBudgetConfig& config);
  // Validates `config` first.
  static absl::StatusOr<std::unique_ptr<RatioBudget>> Create(const RatioBudgetConfig& config);

  RatioBudget(const RatioBudget&) = delete;
  RatioBudget& operator=(const RatioBudget&) = delete;

  // Counts one request in the window.
  void OnRequest(int64_t now_ns) override;
  // Allows and counts the retry if the window still has room for it.
  bool TryAcquireRetry(int64_t now_ns) override;
  // A no-op: the ratio budget looks at volumes, not outcomes.
  void OnOutcome(int64_t now_ns, bool success, bool retryable_failure) override;

  // Window counts as of `now_ns` (expires buckets up to `now_ns`).
  RatioBudgetSnapshot Snapshot(int64_t now_ns);
  // Retries the window always allows: min_retries_per_s x window.
  double floor_retries() const { return floor_retries_; }
  // The configuration it was built with.
  const RatioBudgetConfig& config() const { return config_; }

 private:
  static constexpr int kRequests = 0;
  static constexpr int kRetries = 1;

  // ratio x requests + floor: the retries a window with `requests` requests may hold.
  double Allowance(int64_t requests) const;

  const RatioBudgetConfig config_;
  const double floor_retries_;
  Mutex mu_;
  TimeWindowCounter window_ ABSL_GUARDED_BY(mu_);
  int64_t retries_refused_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rlab

#endif  // RLAB_POLICY_RETRY_BUDGET_H_
