#ifndef RLAB_MODEL_AWS_RETRY_CALL_H_
#define RLAB_MODEL_AWS_RETRY_CALL_H_

// A dependency's retry loop run by an AWS SDK retry mode (rlab/policy/aws_retry.h, botocore's
// "standard" and "adaptive") inside the order flow. The policy (retry quota, send-rate limiter)
// is shared by every order's calls to the dependency, as one SDK client; this is the per-call
// part the flow keeps: the cost of the call's last retry (refunded on success) and whether a send
// token was already reserved for the attempt about to start. OrderFlow asks it in two places:
// before each attempt (the adaptive mode's token: send now, wait, or refused) and after each
// attempt (the verdict, as a RetryStep the flow already knows how to follow: a refusal by the
// quota ends the loop as a retry budget's refusal does, with RetryEndReason::kBudget).
// Pure: time and draws come in as arguments.

#include <cstdint>

#include "rlab/core/outcome.h"
#include "rlab/model/scenario.h"
#include "rlab/policy/aws_retry.h"
#include "rlab/policy/retry.h"

namespace rlab {

class AwsRetryCall {
 public:
  enum class Send : uint8_t { kNow, kWait, kRefused };
  struct SendDecision {
    Send send = Send::kNow;
    int64_t wait_ns = 0;  // kWait only: sleep this long, then start the attempt (token held)
  };

  // A new call (retry loop) starts.
  void Reset() {
    last_cost_ = 0;
    reserved_ = false;
  }

  // An attempt is about to be sent at `now_ns`. After a kWait, the next call is the end of that
  // wait and answers kNow without taking another token.
  SendDecision BeforeSend(AwsRetryPolicy& policy, int64_t now_ns);

  // Attempt number `attempt` (1-based) ended with `outcome` at `now_ns`; `draw` is uniform in
  // [0, 1) for the jitter. As RetryLoop::OnAttemptEnd: success, the caller's deadline, and a
  // retry whose sleep would cross `deadline_ns` end the loop (the quota a retry took stays
  // spent, as the SDK's would before sleeping); otherwise the mode's verdict, with kQuota as
  // RetryEndReason::kBudget.
  RetryStep OnAttemptEnd(AwsRetryPolicy& policy, int attempt, const Outcome& outcome,
                         int64_t now_ns, double draw, int64_t deadline_ns);

  int64_t last_cost() const { return last_cost_; }

 private:
  int64_t last_cost_ = 0;
  bool reserved_ = false;
};

}  // namespace rlab

#endif  // RLAB_MODEL_AWS_RETRY_CALL_H_
