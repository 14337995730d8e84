#ifndef RLAB_MODEL_REPLICA_POOL_H_
#define RLAB_MODEL_REPLICA_POOL_H_

// A dependency's pool of replicas (DependencyConfig::replicas): the engine-neutral half of
// replica selection, used by both engines so that each adds only "which replica" and "how did it
// end" to an attempt. It owns
//   - each replica's fault model (the dependency's, or its override): a slow or failing replica
//     is one entry of `overrides`, so a pool of 100 costs one line to write;
//   - the load balancer (policy/load_balancer.h), which picks the replica of each attempt;
//   - the outlier detector (policy/outlier_detector.h), fed with every attempt's result; its
//     ejections are handed to the balancer as exclusions, which keeps the panic threshold in one
//     place (the balancer's).
// Capacity lines (each replica serves at most max_in_service calls at once) stay with the
// engines: they are what waits, and waiting is the engines' business.
//
// What the detector hears: a success or a caller-fault answer (4xx) counts as ok (Envoy counts
// 5xx, resets and timeouts); a dependency fault (5xx, 408, 429, timeout, reset) as an error; an
// attempt the caller gave up on (a cancelled hedge copy, the order's deadline) is not the
// replica's doing and is not reported to the detector (the balancer still sees it end).
//
// Thread-safe: the live engine calls it from every worker. Calls are short and never wait.

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "rlab/core/mutex.h"
#include "rlab/core/outcome.h"
#include "rlab/core/rng.h"
#include "rlab/model/faults.h"
#include "rlab/model/scenario.h"
#include "rlab/policy/load_balancer.h"
#include "rlab/policy/outlier_detector.h"

namespace rlab {

// Levels of outstanding attempts told apart by ReplicaTotals::time_at_ns (the last: that many
// or more).
inline constexpr int kReplicaLoadLevels = 16;

// One replica's figures at the end of a run.
struct ReplicaTotals {
  int64_t calls = 0;           // attempts sent to it
  int64_t failures = 0;        // attempts that ended as a dependency fault
  int64_t abandoned = 0;       // attempts the caller gave up on (cancelled copies, deadlines)
  int64_t ejections = 0;       // times the outlier detector ejected it
  int64_t outstanding = 0;     // attempts started and not ended (0 after a drained run)
  int64_t latency_sum_ns = 0;  // over attempts that ended with an answer (not abandoned)
  // Time spent with k attempts outstanding (the caller's view: waiting in the replica's line or
  // in service), k = 0 .. kReplicaLoadLevels - 1, the last level "or more". Its shares are the
  // queue-length distribution the supermarket model predicts (Mitzenmacher 2001).
  std::array<int64_t, kReplicaLoadLevels> time_at_ns{};
  int64_t last_change_ns = 0;  // bookkeeping for time_at_ns
};

// An ejection or a return, for the events table.
struct ReplicaEvent {
  int64_t t_ns = 0;
  int replica = 0;
  bool ejected = false;
  EjectionReason reason = EjectionReason::kConsecutiveErrors;
};

class ReplicaPool {
 public:
  // The uniform draws one Begin consumes, whatever the balancer (common random numbers).
  static constexpr int kDrawsPerPick = 2;
  // Ejection events kept (the detector keeps as many).
  static constexpr size_t kMaxEvents = 4096;

  // `config` and `base` must have passed ValidateScenario.
  ReplicaPool(const ReplicasConfig& config, const FaultModelConfig& base);

  ReplicaPool(const ReplicaPool&) = delete;
  ReplicaPool& operator=(const ReplicaPool&) = delete;

  int count() const { return count_; }
  // Replica `r`'s fault model (immutable: safe to use without the pool's lock).
  const FaultModel& faults(int r) const { return *faults_[static_cast<size_t>(r)]; }

  // Picks the replica of an attempt starting at `now_ns` and counts the attempt started.
  // Consumes kDrawsPerPick draws of `rng`. Returns -1 when every replica is ejected and the
  // panic threshold is 0 (the caller answers the attempt itself: no replica was called).
  // With `outstanding`, also stores the chosen replica's attempts outstanding, this one
  // included (the load its fault model sees when it has no capacity limit).
  int Begin(int64_t now_ns, RandomStream& rng, int64_t* outstanding = nullptr);
  // The attempt sent to `replica` ended at `now_ns`, after `latency_ns`, with `outcome`.
  void End(int replica, int64_t now_ns, int64_t latency_ns, const Outcome& outcome);

  // The figures, the load-time histogram closed at `end_ns` (the run's end).
  std::vector<ReplicaTotals> Totals(int64_t end_ns) const;
  std::vector<ReplicaEvent> Events() const;
  // Picks made while too few replicas were left (ejections ignored).
  int64_t panic_picks() const { return balancer_->panic_picks(); }

 private:
  // Hands the detector's ejections to the balancer and collects its new events.
  void SyncLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds the time since the replica's last change to its current load level.
  static void ChargeTime(ReplicaTotals& t, int64_t now_ns);

  const int count_;
  std::vector<std::shared_ptr<const FaultModel>> faults_;
  // Both thread-safe on their own; mu_ keeps the hand-over from the detector to the balancer
  // and the totals consistent with each other.
  std::unique_ptr<LoadBalancer> balancer_;
  std::unique_ptr<OutlierDetector> detector_;  // null without outlier detection
  mutable Mutex mu_;
  std::vector<ReplicaTotals> totals_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> mask_ ABSL_GUARDED_BY(mu_);      // the detector's, scratch
  std::vector<bool> excluded_ ABSL_GUARDED_BY(mu_);  // what the balancer was told
  int excluded_count_ ABSL_GUARDED_BY(mu_) = 0;
  size_t events_taken_ ABSL_GUARDED_BY(mu_) = 0;  // of the detector's event list
  std::vector<ReplicaEvent> events_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rlab

#endif  // RLAB_MODEL_REPLICA_POOL_H_
