#ifndef RLAB_LIVE_RATE_WAIT_QUEUE_H_
#define RLAB_LIVE_RATE_WAIT_QUEUE_H_

// Orders waiting at the live engine's intake for their rate-limit permit
// (intake.rate_limit.max_wait > 0). The submitter never blocks: Submit reserves the permit
// (RateGate::Reserve) and, when the permit is due later, parks the order here and returns. One
// thread of the queue's own sleeps until the earliest due time and hands each order back to the
// engine (`release`), which sends it on through the remaining intake gates as the simulated
// engine's kIntakeReady event does.
//
// Bounded by construction: every parked order holds a reservation at most max_wait ahead of the
// time it was parked, so an order is parked for at most max_wait (plus the thread's wake-up
// delay), and the parked orders are never more than the orders submitted in the last max_wait.
// With one rate (not per key) they are also at most burst + rate x max_wait (the permits the
// limiter can promise within max_wait); per key, that many per key in use.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "rlab/core/mutex.h"

namespace rlab {

// A min-heap of items by due time, served by one thread. Thread-safe.
template <typename T>
class RateWaitQueue {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;

  // `to_steady(t_ns)`: the steady-clock time of the owner's time `t_ns` (due times are on the
  // owner's clock). `release(item)` runs on the queue's thread, without the queue's lock, once
  // `item` is due; items due at the same time come out in the order they were parked.
  RateWaitQueue(std::function<SteadyTime(int64_t)> to_steady, std::function<void(T)> release)
      : to_steady_(std::move(to_steady)), release_(std::move(release)) {}
  ~RateWaitQueue() { Stop(); }
  RateWaitQueue(const RateWaitQueue&) = delete;
  RateWaitQueue& operator=(const RateWaitQueue&) = delete;

  // Starts the thread (items parked before are served from now on). Once; no-op after Stop.
  void Start() {
    MutexLock lock(&mu_);
    if (started_ || stopped_) return;
    started_ = true;
    thread_ = std::thread([this] { Loop(); });
  }

  // Parks `item` until `due_ns`; never blocks. False (the caller keeps `item`) once stopped.
  bool Park(T item, int64_t due_ns) {
    bool earliest = false;
    {
      MutexLock lock(&mu_);
      if (stopped_) return false;
      earliest = heap_.empty() || due_ns < heap_.top().due_ns;
      heap_.push(Entry{due_ns, next_seq_++, std::move(item)});
      max_size_ = std::max(max_size_, static_cast<int64_t>(heap_.size()));
    }
    // The thread sleeps until the earliest due time: only a new earliest one moves it.
    if (earliest) cv_.Signal();
    return true;
  }

  // Waits until every parked item was released (and its release returned), up to `deadline`
  // unless `forever`; returns whether that happened (at once if the thread is not running).
  bool WaitEmpty(SteadyTime deadline, bool forever) {
    MutexLock lock(&mu_);
    bool empty = false;
    for (;;) {
      empty = heap_.empty() && releasing_ == 0;
      // Without a running thread nothing would be released: no point waiting.
      if (empty || !started_ || stopped_) break;
      if (forever) {
        empty_cv_.Wait(&mu_);
      } else if (empty_cv_.WaitUntil(&mu_, deadline)) {
        empty = heap_.empty() && releasing_ == 0;
        break;
      }
    }
    return empty;
  }

  // Stops and joins the thread (a release in progress finishes first) and returns the items
  // still parked, earliest first: the caller ends them. Later Parks fail. Idempotent.
  std::vector<T> Stop() {
    std::thread thread;
    {
      MutexLock lock(&mu_);
      stopped_ = true;
      thread = std::move(thread_);
    }
    cv_.SignalAll();
    if (thread.joinable()) thread.join();
    std::vector<T> left;
    MutexLock lock(&mu_);
    left.reserve(heap_.size());
    while (!heap_.empty()) {
      left.push_back(heap_.top().item);
      heap_.pop();
    }
    return left;
  }

  // Items parked now, and the most parked at once.
  int64_t size() const {
    MutexLock lock(&mu_);
    return static_cast<int64_t>(heap_.size());
  }
  int64_t max_size() const {
    MutexLock lock(&mu_);
    return max_size_;
  }

 private:
  struct Entry {
    int64_t due_ns;
    uint64_t seq;  // parking order: ties on due_ns come out first parked, first released
    T item;
  };
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const {
      return a.due_ns != b.due_ns ? a.due_ns > b.due_ns : a.seq > b.seq;
    }
  };

  void Loop() {
    MutexLock lock(&mu_);
    while (!stopped_) {
      if (heap_.empty()) {
        cv_.Wait(&mu_);
        continue;
      }
      const SteadyTime due = to_steady_(heap_.top().due_ns);
      if (std::chrono::steady_clock::now() < due) {
        cv_.WaitUntil(&mu_, due);
        continue;
      }
      T item = heap_.top().item;
      heap_.pop();
      ++releasing_;
      mu_.Unlock();
      release_(std::move(item));
      mu_.Lock();
      --releasing_;
      if (heap_.empty() && releasing_ == 0) empty_cv_.SignalAll();
    }
    // Stop ends whatever is left; a waiter must not sleep on for a release that will not come.
    empty_cv_.SignalAll();
  }

  const std::function<SteadyTime(int64_t)> to_steady_;
  const std::function<void(T)> release_;
  mutable Mutex mu_;
  CondVar cv_;        // the thread: a new earliest item, or Stop
  CondVar empty_cv_;  // WaitEmpty: nothing parked or being released
  std::priority_queue<Entry, std::vector<Entry>, Later> heap_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  int releasing_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t max_size_ ABSL_GUARDED_BY(mu_) = 0;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rlab

#endif  // RLAB_LIVE_RATE_WAIT_QUEUE_H_
