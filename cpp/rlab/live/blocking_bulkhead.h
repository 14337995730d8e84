#ifndef RLAB_LIVE_BLOCKING_BULKHEAD_H_
#define RLAB_LIVE_BLOCKING_BULKHEAD_H_

// The real-time bulkhead: the pure Bulkhead admission rules, with threads that really wait.
// Waiters queue in FIFO order and a released slot is handed straight to the oldest one, so
// nobody is starved by newcomers and no slot is ever briefly free while someone waits.

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rlab/core/mutex.h"
#include "rlab/policy/bulkhead.h"

namespace rlab {

// How a blocking acquisition ended.
enum class AcquireResult : uint8_t {
  kAdmitted = 0,         // the caller holds a slot: Release it when done
  kRejectedFull = 1,     // no slot and no waiting room: rejected at once
  kRejectedTimeout = 2,  // waited max_wait without getting a slot
  kAborted = 3,          // the should_abort callback asked to stop waiting
  kClosed = 4,           // the bulkhead was closed (before or while waiting)
};

// "admitted", "rejected_full", "rejected_timeout", "aborted" or "closed".
std::string_view AcquireResultName(AcquireResult result);

// A bulkhead on which threads block (on a condition variable, in FIFO order) until a slot is
// handed to them or their wait times out. Thread-safe; must outlive every caller.
class BlockingBulkhead {
 public:
  // How often Acquire polls should_abort while waiting.
  static constexpr int64_t kDefaultPollNs = 50'000'000;

  // `config` must have passed Validate.
  explicit BlockingBulkhead(const BulkheadConfig& config) : state_(config) {}
  // Validates `config` first.
  static absl::StatusOr<std::unique_ptr<BlockingBulkhead>> Create(const BulkheadConfig& config);

  BlockingBulkhead(const BlockingBulkhead&) = delete;
  BlockingBulkhead& operator=(const BlockingBulkhead&) = delete;

  // Acquires a slot, waiting at most the configured max_wait.
  AcquireResult Acquire() { return Acquire(state_.config().max_wait_ns); }

  // Acquires a slot, waiting at most `max_wait_ns` on the steady clock (< 0, or more than
  // kMaxDurationS: without limit).
  // While waiting, `should_abort` (if set) is called every `poll_ns` *without* the lock held, so
  // it may block or take other locks (the Python binding checks for Ctrl-C with it); returning
  // true gives up the place (kAborted) unless a slot was handed over meanwhile.
  AcquireResult Acquire(int64_t max_wait_ns, const std::function<bool()>& should_abort = nullptr,
                        int64_t poll_ns = kDefaultPollNs);

  // Gives a slot back, handing it to the oldest waiter if there is one. FailedPrecondition if no
  // slot is held (a release without a matching acquire).
  absl::Status Release();

  // Closes the bulkhead: every waiter returns kClosed at once (counted as abandoned), and every
  // later Acquire returns kClosed without waiting. Slots already held stay held until released.
  // Idempotent.
  void Close();
  bool closed() const;

  // Gauges and counters (see BulkheadStats).
  BulkheadStats Stats() const { return state_.Stats(); }
  // The configuration it was built with.
  const BulkheadConfig& config() const { return state_.config(); }

 private:
  // One blocked caller. It lives on the caller's stack; Release sets `granted` and notifies it
  // under the lock, so the caller cannot have returned (and destroyed it) in between.
  struct Waiter {
    CondVar cv;
    bool granted = false;
    bool closed = false;  // Close() took it out of the queue and gave up its place
  };

  // Release with mu_ held.
  absl::Status ReleaseLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes `waiter` out of the queue after it gave up.
  void RemoveLocked(const Waiter* waiter) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable Mutex mu_;
  // The admission rules and counters. Every call is made with mu_ held, so the decision and the
  // queue below change together (Bulkhead's own lock nests inside mu_ and is never contended).
  Bulkhead state_;
  // Waiters, oldest first; its size equals state_'s waiting count whenever mu_ is free.
  std::deque<Waiter*> queue_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace rlab

#endif  // RLAB_LIVE_BLOCKING_BULKHEAD_H_
