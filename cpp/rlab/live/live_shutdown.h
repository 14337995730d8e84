#ifndef RLAB_LIVE_LIVE_SHUTDOWN_H_
#define RLAB_LIVE_LIVE_SHUTDOWN_H_

// The live engine's end: the shutdown sequence (close the intake, drain within a grace time,
// cancel the rest, join, check conservation), the cancellation signal that every blocking wait
// of the engine watches, and the count of worker threads still running. The sequence reaches
// the other parts only through LiveShutdown::Steps.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "rlab/core/mutex.h"

namespace rlab {

// How Shutdown went.
struct ShutdownReport {
  int64_t finished_in_time = 0;  // orders that became terminal normally during the grace time
  int64_t cancelled = 0;         // orders cancelled because the grace time ran out
  bool timed_out = false;        // the grace time ran out with work left
  int64_t elapsed_ns = 0;        // how long Shutdown took
  // Empty unless the end-of-run conservation check failed (an engine bug): what it found.
  std::string internal_error;
};

// How a blocking wait of the engine ended.
enum class LiveWaitEnd : uint8_t { kDone, kTimeout, kInterrupted };

// Runs the shutdown sequence once and owns the cancellation signal. Thread-safe.
class LiveShutdown {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;

  // What the sequence asks of the other parts, in the order it asks.
  struct Steps {
    std::function<void()> close_intake;  // refuse new orders from now on
    // Stop the load generators and wait for the submits already past the intake check.
    std::function<void()> stop_producers;
    // Let orders parked for a rate permit go on until `deadline` (`forever`: no limit), then
    // cancel those still parked; returns whether it cancelled any.
    std::function<bool(SteadyTime deadline, bool forever)> drain_parked;
    std::function<void()> close_queue;      // workers exit once the queue is empty
    std::function<void()> interrupt_waits;  // wake the waits that do not watch SleepUntil
    std::function<void()> cancel_queued;    // cancel (reason shutdown) what is still queued
    std::function<void()> join_workers;
    // Stop the sampler, write the last row and the result at engine time now; returns that time.
    std::function<int64_t()> end_run;
    // The end-of-run conservation check (CheckOrderConservation).
    std::function<absl::Status()> check_conservation;
    std::function<int64_t()> arrived;    // orders submitted so far
    std::function<int64_t()> terminal;   // orders terminal so far
    std::function<int64_t()> cancelled;  // orders cancelled so far
  };

  // Runs the sequence (the first call; later calls return the first call's report): closes the
  // intake, lets the workers finish for up to `timeout_ns` (< 0: without limit), then cancels
  // every wait and what is queued, joins, ends the run and checks conservation. `started`:
  // whether the engine ever started (if not, it only ends the run).
  ShutdownReport Run(int64_t timeout_ns, bool started, const Steps& steps);

  // Whether Run has begun (the intake refuses orders and Start fails from then on).
  bool begun() const { return begun_.load(std::memory_order_acquire); }
  // Whether Run has completed.
  bool done() const { return done_.load(std::memory_order_acquire); }
  // Whether the grace time ran out: every wait of the engine must end now.
  bool cancelled() const { return cancel_.load(std::memory_order_acquire); }
  // Blocks until `deadline` (`forever`: until cancelled); kInterrupted if the cancellation came
  // first.
  LiveWaitEnd SleepUntil(SteadyTime deadline, bool forever) const;

  // Counts `n` worker threads as running (before they start).
  void WorkersStarted(int n);
  // Counts one worker thread out (its last act).
  void WorkerExited();
  // Sets the cancellation and wakes SleepUntil. Run does it when the grace time runs out; the
  // service graphs' stop (LiveWorkerPool::StopServices) when their leftover work's does.
  void Cancel();

 private:
  // Waits until no worker runs or `deadline` passes; returns whether none runs.
  bool WaitWorkersExit(SteadyTime deadline, bool forever);

  Mutex mu_;  // held for the whole sequence
  ShutdownReport report_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> begun_{false};
  std::atomic<bool> done_{false};

  // Interruptible sleeps (attempt latency, backoff) wait here; Cancel wakes them.
  mutable Mutex sleep_mu_;
  mutable CondVar sleep_cv_;
  std::atomic<bool> cancel_{false};  // set under sleep_mu_, read without it

  Mutex exit_mu_;
  CondVar exit_cv_;
  int workers_running_ ABSL_GUARDED_BY(exit_mu_) = 0;
};

}  // namespace rlab

#endif  // RLAB_LIVE_LIVE_SHUTDOWN_H_
