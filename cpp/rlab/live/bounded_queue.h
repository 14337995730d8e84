#ifndef RLAB_LIVE_BOUNDED_QUEUE_H_
#define RLAB_LIVE_BOUNDED_QUEUE_H_

// The live engine's job queue: bounded, multi-producer, multi-consumer. Producers never block: a
// full queue rejects at once, which is the backpressure of DESIGN §2 (a full queue turns into a
// `rejected` order, never into unbounded memory or a stalled load generator). Consumers block
// until a job arrives, the queue is closed and empty, or their timeout passes. Optionally a
// queue discipline (rlab/policy/queue_discipline.h) picks which item Pop hands out and which it
// drops; without one (or with FIFO) the queue is a plain FIFO.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "rlab/core/mutex.h"
#include "rlab/policy/queue_discipline.h"

namespace rlab {

// What TryPush did.
enum class PushResult : uint8_t {
  kOk = 0,      // queued
  kFull = 1,    // rejected: the queue holds `capacity` items
  kClosed = 2,  // rejected: the queue was closed
};

// What Pop did.
enum class PopResult : uint8_t {
  kOk = 0,       // an item was taken
  kTimeout = 1,  // the timeout passed with the queue open and empty
  kClosed = 2,   // the queue is closed and empty: no item will ever come
  kDropped = 3,  // the discipline dropped every item waiting (in `dropped`; CoDel never does)
};

// "ok", "full" or "closed".
std::string_view PushResultName(PushResult result);
// "ok", "timeout", "closed" or "dropped".
std::string_view PopResultName(PopResult result);

// A bounded FIFO queue for many producers and many consumers. Thread-safe.
template <typename T>
class BoundedQueue {
 public:
  // `capacity` >= 1 items may be queued at once (smaller values are raised to 1).
  explicit BoundedQueue(size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}
  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  // Appends `item` unless the queue is full or closed; never blocks. On rejection `item` is left
  // untouched, so the caller still owns it.
  // Call once, before the first push: items are then handed out as `config` says, and `now_ns`
  // (read under the queue's lock) times their waits. FIFO leaves the queue a plain FIFO.
  void SetDiscipline(const QueueDisciplineConfig& config, std::function<int64_t()> now_ns) {
    MutexLock lock(&mu_);
    if (config.kind == QueueDisciplineConfig::Kind::kFifo) return;
    discipline_.emplace(config);
    now_ns_ = std::move(now_ns);
  }

  // `enqueued_ns`: when the item joined (on the discipline's clock; unused without one).
  PushResult TryPush(T& item, int64_t enqueued_ns = 0) {
    {
      MutexLock lock(&mu_);
      if (closed_) return PushResult::kClosed;
      if (items_.size() >= capacity_) return PushResult::kFull;
      items_.push_back(std::move(item));
      if (discipline_) enqueued_ns_.push_back(enqueued_ns);
      // Waking a consumer costs a system call: skip it when nobody sleeps.
      if (sleepers_ == 0) return PushResult::kOk;
    }
    not_empty_.Signal();
    return PushResult::kOk;
  }

  // TryPush for temporaries.
  PushResult TryPush(T&& item) { return TryPush(item); }

  // Takes the oldest item (or the one the discipline picks), waiting at most `timeout_ns` (< 0:
  // without limit) for one. Items queued before Close are still handed out; kClosed only once
  // the queue is closed and empty. Items the discipline drops are moved to `*dropped` (required
  // with a dropping discipline) for the caller to fail; kDropped when nothing was left to serve.
  PopResult Pop(T* out, int64_t timeout_ns = -1, std::vector<T>* dropped = nullptr) {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::nanoseconds(timeout_ns < 0 ? 0 : timeout_ns);
    MutexLock lock(&mu_);
    PopResult result = PopResult::kOk;
    // Under a steady stream of pushes the next item usually comes within a microsecond or two:
    // yielding the processor a few times first (to the producer, on a small machine) keeps this
    // consumer awake, which spares each push the system call that wakes a sleeper.
    for (int i = 0; i < kYieldsBeforeSleep && items_.empty() && !closed_; ++i) {
      mu_.Unlock();
      std::this_thread::yield();
      mu_.Lock();
    }
    while (items_.empty()) {
      if (closed_) {
        result = PopResult::kClosed;
        break;
      }
      ++sleepers_;
      bool timed_out = false;
      if (timeout_ns < 0) {
        not_empty_.Wait(&mu_);
      } else {
        timed_out = not_empty_.WaitUntil(&mu_, deadline);
      }
      --sleepers_;
      if (timed_out && items_.empty() && !closed_) {
        result = PopResult::kTimeout;
        break;
      }
    }
    if (result == PopResult::kOk) {
      if (!discipline_) {
        *out = std::move(items_.front());
        items_.pop_front();
      } else if (!TakeLocked(out, dropped)) {
        result = PopResult::kDropped;
      }
    }
    return result;
  }

  // Takes the oldest item if there is one (whatever the discipline); never blocks.
  bool TryPop(T* out) {
    MutexLock lock(&mu_);
    if (items_.empty()) return false;
    *out = std::move(items_.front());
    items_.pop_front();
    if (discipline_) enqueued_ns_.pop_front();
    return true;
  }

  // Refuses every later push and wakes every waiting consumer; queued items stay to be popped
  // or drained. Idempotent.
  void Close() {
    {
      MutexLock lock(&mu_);
      closed_ = true;
    }
    not_empty_.SignalAll();
  }

  // Removes and returns every queued item, oldest first (a shutdown cancels them).
  std::vector<T> Drain() {
    std::vector<T> out;
    MutexLock lock(&mu_);
    out.reserve(items_.size());
    for (T& item : items_) out.push_back(std::move(item));
    items_.clear();
    enqueued_ns_.clear();
    return out;
  }

  // Items queued now.
  size_t size() const {
    MutexLock lock(&mu_);
    return items_.size();
  }
  // When the oldest waiting item joined; -1 when none waits or without a discipline.
  int64_t oldest_enqueued_ns() const {
    MutexLock lock(&mu_);
    return enqueued_ns_.empty() ? -1 : enqueued_ns_.front();
  }
  // Whether the queue runs a discipline other than FIFO.
  bool disciplined() const {
    MutexLock lock(&mu_);
    return discipline_.has_value();
  }
  // Whether Close was called.
  bool closed() const {
    MutexLock lock(&mu_);
    return closed_;
  }
  // The most items queued at once.
  size_t capacity() const { return capacity_; }

 private:
  static constexpr int kYieldsBeforeSleep = 50;

  // The discipline's dequeue (items_ not empty): serves one item into `out` (true) or drops
  // every item left into `dropped` (false).
  bool TakeLocked(T* out, std::vector<T>* dropped) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    QueueDiscipline& d = *discipline_;
    const int64_t now = now_ns_();
    while (!items_.empty()) {
      // items_ is in arrival order: its front is the oldest item.
      const bool back = d.Next(now, enqueued_ns_.front()) == QueueDiscipline::End::kBack;
      T item = std::move(back ? items_.back() : items_.front());
      const int64_t enqueued = back ? enqueued_ns_.back() : enqueued_ns_.front();
      if (back) {
        items_.pop_back();
        enqueued_ns_.pop_back();
      } else {
        items_.pop_front();
        enqueued_ns_.pop_front();
      }
      if (!d.drops() ||
          d.OnDequeue(now, now - enqueued, items_.size()) == QueueDiscipline::Verdict::kServe) {
        *out = std::move(item);
        return true;
      }
      dropped->push_back(std::move(item));
      if (items_.empty()) d.OnEmpty(now);
    }
    return false;
  }

  const size_t capacity_;
  mutable Mutex mu_;
  CondVar not_empty_;
  std::deque<T> items_ ABSL_GUARDED_BY(mu_);
  int sleepers_ ABSL_GUARDED_BY(mu_) = 0;  // consumers blocked in Pop
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<QueueDiscipline> discipline_ ABSL_GUARDED_BY(mu_);
  std::function<int64_t()> now_ns_ ABSL_GUARDED_BY(mu_);
  std::deque<int64_t> enqueued_ns_ ABSL_GUARDED_BY(mu_);  // with a discipline: items_'s times
};

}  // namespace rlab

#endif  // RLAB_LIVE_BOUNDED_QUEUE_H_
