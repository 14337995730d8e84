#ifndef RLAB_POLICY_RETRY_H_
#define RLAB_POLICY_RETRY_H_

#include <array>
#include <cstdint>
#include <limits>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rlab/core/outcome.h"
#include "rlab/core/schema.h"
#include "rlab/policy/backoff.h"
#include "rlab/policy/retry_budget.h"

namespace rlab {

// Why a retry loop ended. The names are a fixed set, usable as metric labels.
enum class RetryEndReason : uint8_t {
  kSucceeded = 0,  // an attempt succeeded (after RetryLoop::attempts() attempts)
  kExhausted,      // max_attempts attempts all failed with retryable outcomes
  kPermanent,      // a non-retryable outcome: 4xx, cancellation, a local rejection, ...
  kDeadline,       // the caller's deadline passed, or the next sleep would have crossed it
  kBudget,         // the retry budget refused the next retry
};
inline constexpr int kNumRetryEndReasons = 5;

// "succeeded", "exhausted", "permanent", "deadline" or "budget".
std::string_view RetryEndReasonName(RetryEndReason reason);
// Every end reason's name, in enum order.
const std::array<std::string_view, kNumRetryEndReasons>& RetryEndReasonNames();

// The largest max_attempts a config accepts: far beyond any sensible policy, small enough that
// attempt counters never overflow.
inline constexpr int kMaxAttemptsLimit = 1'000'000;

// What to retry and how long to wait. Python-facing names: max_attempts, retry_on,
// max_retry_after (seconds), plus the backoff's own.
struct RetryConfig {
  // Attempts, the first call included: 1 means "never retry". Counting retries instead is the
  // classic off-by-one.
  int max_attempts = 3;
  BackoffConfig backoff;
  // Outcomes worth another attempt. Local rejections, cancellation and the caller's deadline are
  // permanent whatever this set says.
  OutcomeSet retryable = OutcomeSet::DefaultRetryable();
  // A Retry-After hint is honoured up to this much: a hostile or buggy hint cannot park a caller
  // for an hour.
  int64_t max_retry_after_ns = 60 * kNsPerSecond;
};

// The field table (Python: rl.RetryConfig; retry_on the names of `retryable`).
const ConfigSchema<RetryConfig>& RetrySchema();

// Checks max_attempts, max_retry_after and the backoff (as "backoff.<field>"), by the table.
absl::Status Validate(const RetryConfig& config);

// The deadline_ns value meaning "no deadline".
inline constexpr int64_t kNoDeadline = std::numeric_limits<int64_t>::max();

// The loop's answer after an attempt: sleep `delay_ns` then attempt again, or stop.
struct RetryStep {
  enum class Action : uint8_t { kRetry, kDone };
  Action action = Action::kDone;
  int64_t delay_ns = 0;                                // kRetry only
  RetryEndReason reason = RetryEndReason::kSucceeded;  // kDone only

  static constexpr RetryStep Retry(int64_t delay_ns) {
    return {Action::kRetry, delay_ns, RetryEndReason::kSucceeded};
  }
  static constexpr RetryStep Done(RetryEndReason reason) { return {Action::kDone, 0, reason}; }
  // True when the caller should sleep delay_ns and attempt again.
  bool retry() const { return action == Action::kRetry; }
  // True when the loop has ended; see reason.
  bool done() const { return action == Action::kDone; }
  friend bool operator==(const RetryStep&, const RetryStep&) = default;
};

// The retry decision for one call, as a state machine that engines interpret: the live engine
// sleeps on a thread, the simulated engine schedules an event, the Python wrapper calls
// clock.sleep. It never reads a clock or sleeps, holds no lock and never allocates, so it can be
// embedded per order. Not thread-safe: one call, one owner.
//
// Protocol: OnAttemptStart before each attempt (if it returns false, do not attempt: the loop has
// ended), OnAttemptEnd after it; repeat while the step says retry.
class RetryLoop {
 public:
  // `config` (valid, see Validate) and `budget` (may be null) must outlive the loop.
  // `deadline_ns` is absolute, on the same clock as every now_ns; the deadline is reached when
  // now_ns >= deadline_ns.
  RetryLoop(const RetryConfig& config, RetryBudget* budget, int64_t deadline_ns = kNoDeadline)
      : config_(&config),
        budget_(budget),
        deadline_ns_(deadline_ns),
        previous_delay_ns_(config.backoff.initial_ns) {}

  // An attempt is about to start at `now_ns`. Returns false, ending the loop with kDeadline, when
  // the deadline has been reached (an attempt with no time left cannot succeed), or when the loop
  // has already ended. Tells the budget about the call before the first attempt.
  bool OnAttemptStart(int64_t now_ns);

  // The attempt ended with `outcome` at `now_ns`; `u` is a uniform draw in [0, 1) for the jitter.
  // Retryability comes from config.retryable.
  RetryStep OnAttemptEnd(const Outcome& outcome, int64_t now_ns, double u) {
    return OnAttemptEnd(outcome, config_->retryable.Contains(outcome), now_ns, u);
  }

  // As above, with retryability decided by the caller, for callers that classify failures by
  // more than the outcome (the Python wrapper matches exception classes). Success, cancellation,
  // the caller's deadline and local rejections keep their fixed meaning whatever `retryable`
  // says.
  RetryStep OnAttemptEnd(const Outcome& outcome, bool retryable, int64_t now_ns, double u);

  // Attempts started so far, the first included.
  int attempts() const { return attempts_; }
  // Retries granted so far (sleeps handed out).
  int retries() const { return retries_; }
  // True once the loop has ended; end_reason() is then meaningful.
  bool done() const { return done_; }
  RetryEndReason end_reason() const { return reason_; }
  int64_t deadline_ns() const { return deadline_ns_; }
  // Time left before the deadline at `now_ns` (0 once reached; kNoDeadline without one): the
  // engines cap each attempt's timeout with it.
  int64_t RemainingNs(int64_t now_ns) const;
  const RetryConfig& config() const { return *config_; }

 private:
  RetryStep Finish(RetryEndReason reason) {
    done_ = true;
    reason_ = reason;
    return RetryStep::Done(reason);
  }
  bool DeadlineReached(int64_t now_ns) const {
    return deadline_ns_ != kNoDeadline && now_ns >= deadline_ns_;
  }

  const RetryConfig* config_;
  RetryBudget* budget_;
  int64_t deadline_ns_;
  int64_t previous_delay_ns_;  // the last backoff delay, for the decorrelated recurrence
  int attempts_ = 0;
  int retries_ = 0;
  bool done_ = false;
  RetryEndReason reason_ = RetryEndReason::kSucceeded;
};

}  // namespace rlab

#endif  // RLAB_POLICY_RETRY_H_
