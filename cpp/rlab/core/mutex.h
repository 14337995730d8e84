#ifndef RLAB_CORE_MUTEX_H_
#define RLAB_CORE_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"

namespace rlab {

class CondVar;

// A std::mutex carrying abseil's thread-safety annotations.
//
// Why not absl::Mutex: Debian's libabsl is built without ThreadSanitizer instrumentation, so TSan
// cannot see absl::Mutex's happens-before edges and reports false races; and that build keeps
// deadlock detection on (about 3x slower per lock pair). std::mutex is intercepted by TSan and
// costs one uncontended atomic pair.
class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  // Blocks until the mutex is held by the caller.
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  // Releases the mutex.
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  // Takes the mutex if it is free; returns whether it did.
  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) { return mu_.try_lock(); }

 private:
  // Waits go through CondVar, whose annotations keep them checked: no raw std::unique_lock.
  friend class CondVar;
  std::mutex& native() { return mu_; }

  std::mutex mu_;
};

// Holds a Mutex for the lifetime of the scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A condition variable for Mutex. Its waits require the mutex (checked by clang's
// -Wthread-safety, see .ci/threadsafety.py), so the guarded state a wait loop reads is checked
// too; the mutex stays held, as far as the analysis and the enclosing MutexLock know, across the
// wait (it is released and retaken inside).
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // Releases `mu`, blocks until signalled (or spuriously woken), retakes `mu`. Without a bound:
  // only for the callers' explicit "without limit" waits.
  void Wait(Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Adopted a(mu);
    cv_.wait(a.lock);
  }
  // As Wait, but returns at `deadline` at the latest; true when it returned because the deadline
  // passed (the caller rechecks its condition either way).
  bool WaitUntil(Mutex* mu, std::chrono::steady_clock::time_point deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Adopted a(mu);
    return cv_.wait_until(a.lock, deadline) == std::cv_status::timeout;
  }
  // WaitUntil(now + timeout).
  bool WaitFor(Mutex* mu, std::chrono::nanoseconds timeout) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return WaitUntil(mu, std::chrono::steady_clock::now() + timeout);
  }

  // Wakes one waiter, or all of them.
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  // std::condition_variable needs a std::unique_lock: adopt the mutex the caller holds and
  // release the unique_lock's ownership (without unlocking) on the way out, whatever the way,
  // so that the caller's MutexLock stays the owner.
  struct Adopted {
    explicit Adopted(Mutex* mu) : lock(mu->native(), std::adopt_lock) {}
    ~Adopted() { lock.release(); }
    Adopted(const Adopted&) = delete;
    Adopted& operator=(const Adopted&) = delete;
    std::unique_lock<std::mutex> lock;
  };

  std::condition_variable cv_;
};

}  // namespace rlab

#endif  // RLAB_CORE_MUTEX_H_
