#ifndef RLAB_LIVE_LIVE_INTAKE_H_
#define RLAB_LIVE_LIVE_INTAKE_H_

// The live engine's intake: what an order meets between Submit and a worker. The gates in the
// simulated engine's order (intake.rate_limit, intake.limit, a full queue, intake.shedding),
// the bounded job queue with its discipline, the orders parked for a rate permit due later, and
// the per-class / per-tenant totals. It decides; the engine ends a refused order (Hooks::finish).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "rlab/core/metrics.h"
#include "rlab/core/mutex.h"
#include "rlab/core/rng.h"
#include "rlab/live/bounded_queue.h"
#include "rlab/live/live_metrics.h"
#include "rlab/live/live_order.h"
#include "rlab/live/rate_wait_queue.h"
#include "rlab/model/limits.h"
#include "rlab/model/origin_stats.h"
#include "rlab/model/scenario.h"
#include "rlab/policy/concurrency_limit.h"
#include "rlab/policy/load_shedder.h"

namespace rlab {

// Admits orders into the job queue (or parks or refuses them) and hands them to the workers.
// Thread-safe.
class LiveIntake {
 public:
  // What the intake needs from the rest of the engine.
  struct Hooks {
    std::function<int64_t()> now_ns;  // engine time
    // Engine time `t_ns` on the steady clock (for the rate waits' thread).
    std::function<std::chrono::steady_clock::time_point(int64_t t_ns)> to_steady;
    // Ends an order the intake refused or cancelled (`admitted`: it was in the system).
    std::function<void(const LiveJob& job, OrderStatus status, FailReason reason, int64_t now_ns,
                       bool admitted)>
        finish;
    // The order is about to be queued (its order event, if recorded).
    std::function<void(int64_t id, int64_t now_ns)> on_queued;
    std::atomic<int64_t>* in_system = nullptr;  // admitted orders not yet terminal
    // rlab_orders_arrived and the intake families (registered after the intake is built).
    LiveMetrics* metrics = nullptr;
  };

  // Builds the gates of `config`'s intake; `rng` gives the origins' and the limit's draws.
  LiveIntake(const ScenarioConfig& config, Rng& rng, Hooks hooks);
  LiveIntake(const LiveIntake&) = delete;
  LiveIntake& operator=(const LiveIntake&) = delete;

  // Opens the intake (Submit admits from now on) and starts the rate waits' thread.
  void Open();

  // A Submit in progress: announced before the intake check, so that Shutdown, which closes
  // the intake and then waits for the announced submits (WaitSubmits), never counts or drains
  // a half-submitted order.
  class SubmitScope {
   public:
    explicit SubmitScope(LiveIntake& intake) : n_(intake.submitting_) {
      n_.fetch_add(1, std::memory_order_seq_cst);
    }
    ~SubmitScope() { n_.fetch_sub(1, std::memory_order_seq_cst); }
    SubmitScope(const SubmitScope&) = delete;
    SubmitScope& operator=(const SubmitScope&) = delete;

   private:
    std::atomic<int>& n_;
  };
  // Whether Submit admits orders (open, not yet closed): an announced submit goes on only if
  // so (sequentially consistent with Close).
  bool accepting() const { return accepting_.load(std::memory_order_seq_cst); }

  // InvalidArgument unless `origin` names a declared tenant.
  absl::Status CheckOrigin(const OrderOrigin& origin) const;
  // Passes a submitted order (slot filled: arrival, key, deadline) through the gates at `now_ns`:
  // queued, parked for a rate permit, or refused (ended through Hooks::finish). `origin`:
  // absent, drawn from the scenario's traffic mix.
  void Admit(const LiveJob& job, std::optional<OrderOrigin> origin, int64_t now_ns);

  // A worker's take from the job queue (blocks; see BoundedQueue::Pop). Jobs the queue's
  // discipline dropped are appended to `dropped`, for the caller to end.
  PopResult Pop(LiveJob* job, std::vector<LiveJob>* dropped) {
    return queue_.Pop(job, -1, dropped);
  }
  // An order left the queue at `now_ns` after `delay_ns` (< 0: dropped or refused, no delay
  // sample): the shedder's counts.
  void OnDequeued(const LiveOrderSlot& o, int64_t now_ns, int64_t delay_ns);
  // An order ended (any status): hands back its intake.limit permit and counts its class's end.
  void OnOrderEnd(LiveOrderSlot& o, OrderStatus status, FailReason reason, int64_t now_ns,
                  bool admitted);

  // Closes the intake: Submit is refused from now on.
  void Close() { accepting_.store(false, std::memory_order_seq_cst); }
  // Waits for the submits announced before Close (they never block).
  void WaitSubmits() const;
  // Lets parked orders go on until `deadline` (`forever`: no limit), stops the rate waits and
  // returns the orders still parked (the caller cancels them).
  std::vector<LiveJob> DrainParked(std::chrono::steady_clock::time_point deadline, bool forever);
  // Closes the job queue (workers exit once it is empty).
  void CloseQueue() { queue_.Close(); }
  // Removes and returns what is still queued.
  std::vector<LiveJob> DrainQueue() { return queue_.Drain(); }

  // Orders in the job queue, and its capacity.
  int64_t queue_depth() const { return static_cast<int64_t>(queue_.size()); }
  // The job queue's oldest enqueue time (< 0: empty); meaningful with a queue discipline.
  int64_t queue_oldest_enqueued_ns() const { return queue_.oldest_enqueued_ns(); }
  // Whether the job queue has a discipline other than FIFO.
  bool queue_disciplined() const { return queue_.disciplined(); }
  // intake.limit and intake.rate_limit (null when absent).
  ConcurrencyLimiter* limiter() const { return limiter_.get(); }
  RateGate* rate_gate() const { return rate_.get(); }
  // The per-class / per-tenant totals so far.
  OriginStats origins() const;
  // Brings the intake families up to the totals (at scrape time).
  void RefreshMetrics() const;

 private:
  // Parks an order whose intake.rate_limit permit is due at `due_ns`.
  void ParkForRate(const LiveJob& job, int64_t due_ns);
  // At a parked order's time: the remaining gates (intake.limit, a full queue, the shedder),
  // as the simulated engine's kIntakeReady does.
  void ReleaseParked(const LiveJob& job);
  // Hands back the order's intake.limit permit unused.
  void IgnorePermit(LiveOrderSlot& o);

  const ScenarioConfig& config_;
  const Hooks hooks_;
  BoundedQueue<LiveJob> queue_;
  std::atomic<bool> accepting_{false};
  std::atomic<int> submitting_{0};               // Submit calls past the intake check
  std::unique_ptr<ConcurrencyLimiter> limiter_;  // intake.limit
  mutable Mutex limiter_rng_mu_;
  std::optional<RandomStream> limiter_rng_ ABSL_GUARDED_BY(limiter_rng_mu_);
  std::unique_ptr<RateGate> rate_;  // intake.rate_limit
  // intake.rate_limit with max_wait > 0 (null otherwise): orders whose permit is due later wait
  // here, off the submitter's thread, admitted (in the system) but still pending.
  std::unique_ptr<RateWaitQueue<LiveJob>> rate_waits_;
  // intake.shedding: the shedder (thread-safe), the draws of orders' origins, and the totals.
  std::unique_ptr<LoadShedder> shedder_;
  mutable Mutex origin_mu_;
  RandomStream origin_rng_ ABSL_GUARDED_BY(origin_mu_) = RandomStream(0);
  OriginStats origins_ ABSL_GUARDED_BY(origin_mu_);
};

}  // namespace rlab

#endif  // RLAB_LIVE_LIVE_INTAKE_H_
