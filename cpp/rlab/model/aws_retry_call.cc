#include "rlab/model/aws_retry_call.h"

#include <string>

#include "absl/strings/str_format.h"

namespace rlab {

absl::Status ValidateAwsRetryOf(const DependencyConfig& d) {
  if (!d.aws_retry.has_value()) return absl::OkStatus();
  // Validate names the fields "aws_retry.<field>".
  if (absl::Status s = Validate(*d.aws_retry); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s.%s", d.name, s.message()));
  }
  // Worded as the Python Dependency words them (python/reliability_lab/scenario/model.py).
  if (d.retry.has_value()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s.retry must be None when %s.aws_retry is set (the AWS retry mode runs the retries)",
        d.name, d.name));
  }
  if (d.token_bucket.has_value() || d.ratio_budget.has_value()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s.budget must be None when %s.aws_retry is set (its retry quota is the budget)", d.name,
        d.name));
  }
  return absl::OkStatus();
}

AwsRetryCall::SendDecision AwsRetryCall::BeforeSend(AwsRetryPolicy& policy, int64_t now_ns) {
  if (reserved_) {  // the wait for the token taken before the sleep is over
    reserved_ = false;
    return {Send::kNow, 0};
  }
  const std::optional<int64_t> wait_ns = policy.BeforeAttempt(now_ns);
  if (!wait_ns.has_value()) return {Send::kRefused, 0};
  if (*wait_ns <= 0) return {Send::kNow, 0};
  reserved_ = true;
  return {Send::kWait, *wait_ns};
}

RetryStep AwsRetryCall::OnAttemptEnd(AwsRetryPolicy& policy, int attempt, const Outcome& outcome,
                                     int64_t now_ns, double draw, int64_t deadline_ns) {
  const AwsRetryStep step =
      policy.OnAttemptEnd(attempt, last_cost_, ClassifyAwsOutcome(outcome), now_ns, draw);
  switch (step.verdict) {
    case AwsRetryVerdict::kSucceeded:
      return RetryStep::Done(RetryEndReason::kSucceeded);
    case AwsRetryVerdict::kPermanent:
      // The caller's deadline is its own end reason, as in RetryLoop.
      return RetryStep::Done(outcome.kind == OutcomeKind::kDeadlineExceeded
                                 ? RetryEndReason::kDeadline
                                 : RetryEndReason::kPermanent);
    case AwsRetryVerdict::kExhausted:
      return RetryStep::Done(RetryEndReason::kExhausted);
    case AwsRetryVerdict::kQuota:
      return RetryStep::Done(RetryEndReason::kBudget);
    case AwsRetryVerdict::kRetry:
      break;
  }
  last_cost_ = step.cost;
  if (deadline_ns != kNoDeadline && step.delay_ns >= deadline_ns - now_ns) {
    return RetryStep::Done(RetryEndReason::kDeadline);
  }
  return RetryStep::Retry(step.delay_ns);
}

}  // namespace rlab
