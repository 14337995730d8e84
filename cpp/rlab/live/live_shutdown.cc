#include "rlab/live/live_shutdown.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "rlab/core/invariant.h"

namespace rlab {

ShutdownReport LiveShutdown::Run(int64_t timeout_ns, bool started, const Steps& steps) {
  MutexLock lock(&mu_);
  if (done()) return report_;
  const SteadyTime began = std::chrono::steady_clock::now();
  begun_.store(true, std::memory_order_seq_cst);
  steps.close_intake();
  ShutdownReport report;
  if (!started) {
    steps.end_run();
    report_ = report;
    done_.store(true, std::memory_order_release);
    return report_;
  }
  const int64_t cancelled_before = steps.cancelled();
  const int64_t terminal_before = steps.terminal();
  steps.stop_producers();
  const bool forever = timeout_ns < 0;
  const SteadyTime deadline = began + std::chrono::nanoseconds(std::max<int64_t>(0, timeout_ns));
  // Orders parked for an intake rate permit were admitted, like queued ones: they go on to the
  // queue at their time within the grace period; those still parked when it runs out are
  // cancelled (reason shutdown), like the queued ones below.
  const bool parked_cancelled = steps.drain_parked(deadline, forever);
  steps.close_queue();
  // The grace period: workers finish what they hold and what is queued, then exit.
  report.timed_out = !WaitWorkersExit(deadline, forever) || parked_cancelled;
  if (report.timed_out) {
    // Out of time: interrupt every wait, then cancel what is still queued.
    Cancel();
    steps.interrupt_waits();
    steps.cancel_queued();
  }
  steps.join_workers();
  steps.end_run();
  {
    // Conservation: every order in exactly one terminal state. A violation is an engine bug:
    // said loudly (stderr and the report, which the Python API raises), never silently.
    const absl::Status conserved = steps.check_conservation();
    if (!conserved.ok()) {
      report.internal_error = std::string(conserved.message());
      std::fprintf(stderr, "reliability_lab live engine: INTERNAL ERROR: %s\n",
                   report.internal_error.c_str());
    }
    RLAB_INVARIANT(conserved.ok(), "live engine at shutdown: %s", conserved.message());
  }
  report.cancelled = steps.cancelled() - cancelled_before;
  report.finished_in_time = steps.arrived() - terminal_before - report.cancelled;
  report.elapsed_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - began)
          .count();
  report_ = report;
  done_.store(true, std::memory_order_release);
  return report_;
}

LiveWaitEnd LiveShutdown::SleepUntil(SteadyTime deadline, bool forever) const {
  MutexLock lock(&sleep_mu_);
  while (!cancelled()) {
    if (forever) {
      sleep_cv_.Wait(&sleep_mu_);
    } else if (sleep_cv_.WaitUntil(&sleep_mu_, deadline)) {
      return cancelled() ? LiveWaitEnd::kInterrupted : LiveWaitEnd::kDone;
    }
  }
  return LiveWaitEnd::kInterrupted;
}

void LiveShutdown::Cancel() {
  {
    // Set under the sleepers' lock, so that none misses it between its check and its wait.
    MutexLock lock(&sleep_mu_);
    cancel_.store(true, std::memory_order_seq_cst);
  }
  sleep_cv_.SignalAll();
}

void LiveShutdown::WorkersStarted(int n) {
  MutexLock lock(&exit_mu_);
  workers_running_ += n;
}

void LiveShutdown::WorkerExited() {
  {
    MutexLock lock(&exit_mu_);
    --workers_running_;
  }
  exit_cv_.SignalAll();
}

bool LiveShutdown::WaitWorkersExit(SteadyTime deadline, bool forever) {
  MutexLock lock(&exit_mu_);
  while (workers_running_ > 0) {
    if (forever) {
      exit_cv_.Wait(&exit_mu_);
    } else if (exit_cv_.WaitUntil(&exit_mu_, deadline)) {
      break;
    }
  }
  return workers_running_ == 0;
}

}  // namespace rlab
