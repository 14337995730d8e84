#ifndef RLAB_POLICY_RETRY_BUDGET_H_
#define RLAB_POLICY_RETRY_BUDGET_H_

#include <cstdint>

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

}  // namespace rlab

#endif  // RLAB_POLICY_RETRY_BUDGET_H_
