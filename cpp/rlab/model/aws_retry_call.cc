#include "rlab/model/aws_retry_call.h"

namespace rlab {

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
