#include "rlab/policy/retry.h"

#include <algorithm>
#include <string>
#include <vector>

#include "rlab/core/schema.h"
#include "rlab/core/validate.h"

namespace rlab {
namespace {

constexpr std::array<std::string_view, kNumRetryEndReasons> kEndReasonNames = {
    "succeeded", "exhausted", "permanent", "deadline", "budget"};

}  // namespace

std::string_view RetryEndReasonName(RetryEndReason reason) {
  const auto i = static_cast<size_t>(reason);
  return i < kEndReasonNames.size() ? kEndReasonNames[i] : "unknown";
}

const std::array<std::string_view, kNumRetryEndReasons>& RetryEndReasonNames() {
  return kEndReasonNames;
}

namespace {

std::vector<std::string> RetryOnNames(const RetryConfig& c) { return c.retryable.Names(); }

absl::Status SetRetryOn(RetryConfig& c, const std::vector<std::string>& names,
                        std::string_view path) {
  absl::StatusOr<OutcomeSet> set = OutcomeSet::Parse(path, names);
  if (!set.ok()) return set.status();
  c.retryable = *set;
  return absl::OkStatus();
}

}  // namespace

RLAB_TABLE(RetrySchema, RetryConfig, "RetryConfig", "", nullptr,
           RLAB_INT(max_attempts, 1, kMaxAttemptsLimit, "attempts",
                    "attempts per call, the first included"),
           RLAB_CONFIG(backoff, BackoffSchema, "the delays between attempts"),
           schema::Strings<C, &RetryOnNames, &SetRetryOn>("retry_on", "the outcome names to retry"),
           RLAB_SECONDS(max_retry_after, 0, kMaxDurationS, CC, "the cap on a Retry-After hint"));
absl::Status Validate(const RetryConfig& config) { return ValidateAt("", RetrySchema(), config); }

bool RetryLoop::OnAttemptStart(int64_t now_ns) {
  if (done_) return false;
  if (DeadlineReached(now_ns)) {
    Finish(RetryEndReason::kDeadline);
    return false;
  }
  // Ratio budgets count calls, not attempts: only the first attempt is a request.
  if (attempts_ == 0 && budget_ != nullptr) budget_->OnRequest(now_ns);
  ++attempts_;
  return true;
}

RetryStep RetryLoop::OnAttemptEnd(const Outcome& outcome, bool retryable, int64_t now_ns,
                                  double u) {
  if (done_) return RetryStep::Done(reason_);
  // Permanent by definition, whatever the caller's classification: retrying a cancelled call,
  // an expired deadline or a local rejection cannot help and only adds load.
  const OutcomeClass cls = ClassifyOutcome(outcome);
  const bool success = cls == OutcomeClass::kSuccess;
  retryable = retryable && !success && cls != OutcomeClass::kLocalRejection &&
              cls != OutcomeClass::kCallerGaveUp;
  if (budget_ != nullptr) budget_->OnOutcome(now_ns, success, retryable);

  if (success) return Finish(RetryEndReason::kSucceeded);
  if (outcome.kind == OutcomeKind::kDeadlineExceeded) return Finish(RetryEndReason::kDeadline);
  if (!retryable) return Finish(RetryEndReason::kPermanent);
  if (attempts_ >= config_->max_attempts) return Finish(RetryEndReason::kExhausted);
  if (DeadlineReached(now_ns)) return Finish(RetryEndReason::kDeadline);

  // The backoff sequence itself ignores Retry-After hints, so the decorrelated walk is the same
  // with or without them; the hint only lengthens this one sleep.
  previous_delay_ns_ = BackoffDelayNs(config_->backoff, retries_ + 1, previous_delay_ns_, u);
  int64_t delay_ns = previous_delay_ns_;
  if (outcome.retry_after_ns >= 0) {
    delay_ns = std::max(delay_ns, std::min(outcome.retry_after_ns, config_->max_retry_after_ns));
  }
  // A sleep ending at or after the deadline is not started: the attempt after it would have no
  // time left, so the caller learns now instead of after a useless wait.
  if (deadline_ns_ != kNoDeadline && delay_ns >= deadline_ns_ - now_ns) {
    return Finish(RetryEndReason::kDeadline);
  }
  // Asked last, so that a retry that is not going to happen never spends a token.
  if (budget_ != nullptr && !budget_->TryAcquireRetry(now_ns)) {
    return Finish(RetryEndReason::kBudget);
  }
  ++retries_;
  return RetryStep::Retry(delay_ns);
}

int64_t RetryLoop::RemainingNs(int64_t now_ns) const {
  if (deadline_ns_ == kNoDeadline) return kNoDeadline;
  return now_ns >= deadline_ns_ ? 0 : deadline_ns_ - now_ns;
}

}  // namespace rlab
