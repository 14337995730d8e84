#include "rlab/live/blocking_bulkhead.h"

#include <algorithm>
#include <chrono>
#include <exception>

#include "rlab/core/clock.h"
#include "rlab/core/validate.h"

namespace rlab {

std::string_view AcquireResultName(AcquireResult result) {
  switch (result) {
    case AcquireResult::kAdmitted:
      return "admitted";
    case AcquireResult::kRejectedFull:
      return "rejected_full";
    case AcquireResult::kRejectedTimeout:
      return "rejected_timeout";
    case AcquireResult::kAborted:
      return "aborted";
    case AcquireResult::kClosed:
      return "closed";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<BlockingBulkhead>> BlockingBulkhead::Create(
    const BulkheadConfig& config) {
  absl::Status s = Validate(config);
  if (!s.ok()) return s;
  return std::make_unique<BlockingBulkhead>(config);
}

AcquireResult BlockingBulkhead::Acquire(int64_t max_wait_ns,
                                        const std::function<bool()>& should_abort,
                                        int64_t poll_ns) {
  using SteadyTime = std::chrono::steady_clock::time_point;
  // Beyond kMaxDurationS a deadline could overflow the clock arithmetic; such waits (over 11 days)
  // are waits without limit in practice.
  const bool has_deadline =
      max_wait_ns >= 0 && max_wait_ns <= static_cast<int64_t>(kMaxDurationS) * kNsPerSecond;
  // Read before locking: the deadline counts from the call, not from winning the lock.
  const SteadyTime deadline = std::chrono::steady_clock::now() +
                              std::chrono::nanoseconds(std::max<int64_t>(0, max_wait_ns));
  const auto poll = std::chrono::nanoseconds(std::max<int64_t>(1'000'000, poll_ns));

  MutexLock lock(&mu_);
  if (closed_) return AcquireResult::kClosed;
  switch (state_.TryAcquire()) {
    case BulkheadDecision::kAdmitted:
      return AcquireResult::kAdmitted;
    case BulkheadDecision::kRejected:
      return AcquireResult::kRejectedFull;
    case BulkheadDecision::kMustWait:
      break;
  }

  Waiter self;
  queue_.push_back(&self);
  std::exception_ptr abort_error;
  AcquireResult result = AcquireResult::kAdmitted;
  while (!self.granted && !self.closed) {
    if (!has_deadline && !should_abort) {
      self.cv.Wait(&mu_);
      continue;
    }
    SteadyTime wake = has_deadline ? deadline : SteadyTime::max();
    if (should_abort) wake = std::min(wake, std::chrono::steady_clock::now() + poll);
    if (!self.cv.WaitUntil(&mu_, wake) || self.granted || self.closed) {
      continue;
    }
    if (has_deadline && std::chrono::steady_clock::now() >= deadline) {
      result = AcquireResult::kRejectedTimeout;
      break;
    }
    if (should_abort) {
      // Never call out with the lock held: the callback may block (e.g. on Python's GIL).
      mu_.Unlock();
      bool abort = false;
      try {
        abort = should_abort();
      } catch (...) {
        abort = true;
        abort_error = std::current_exception();
      }
      mu_.Lock();
      if (abort && !self.granted && !self.closed) {
        result = AcquireResult::kAborted;
        break;
      }
      if (abort_error) {
        // A slot was handed over while the callback threw: give it straight back (to the next
        // waiter, if any) so that it is not leaked, then let the error out.
        ReleaseLocked().IgnoreError();
        std::rethrow_exception(abort_error);
      }
    }
  }
  if (self.closed) {
    result = AcquireResult::kClosed;  // Close() already removed it and gave up its place
  } else if (result != AcquireResult::kAdmitted) {
    RemoveLocked(&self);
    state_.CancelWait(result == AcquireResult::kRejectedTimeout);
  }
  if (abort_error) std::rethrow_exception(abort_error);
  return result;
}

void BlockingBulkhead::RemoveLocked(const Waiter* waiter) {
  auto it = std::find(queue_.begin(), queue_.end(), waiter);
  if (it != queue_.end()) queue_.erase(it);
}

void BlockingBulkhead::Close() {
  MutexLock lock(&mu_);
  closed_ = true;
  for (Waiter* waiter : queue_) {
    state_.CancelWait(/*timed_out=*/false);
    waiter->closed = true;
    // Under the lock, as in ReleaseLocked: the waiter cannot return before this call ends.
    waiter->cv.Signal();
  }
  queue_.clear();
}

bool BlockingBulkhead::closed() const {
  MutexLock lock(&mu_);
  return closed_;
}

absl::Status BlockingBulkhead::Release() {
  MutexLock lock(&mu_);
  return ReleaseLocked();
}

absl::Status BlockingBulkhead::ReleaseLocked() {
  switch (state_.Release()) {
    case BulkheadRelease::kNotHeld:
      return absl::FailedPreconditionError("bulkhead release without a matching acquire");
    case BulkheadRelease::kFreed:
      return absl::OkStatus();
    case BulkheadRelease::kHandedOff:
      break;
  }
  Waiter* next = queue_.front();
  queue_.pop_front();
  next->granted = true;
  // Notify before unlocking: after the unlock the waiter may wake spuriously, see `granted`,
  // return and destroy its condition variable.
  next->cv.Signal();
  return absl::OkStatus();
}

}  // namespace rlab
