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
// Per-replica circuit breakers (ReplicasConfig::breaker): each replica has its own breaker
// (policy/circuit_breaker.h), fed with that replica's attempt outcomes by the shared breaker's
// table (BreakerResultOf: dependency faults fail, the caller giving up is ignored). The balancer
// picks only among replicas whose breaker admits a call (closed, or half-open with a probe slot
// free), as Finagle's and Envoy's balancers pick among available hosts; the others are blocked
// in the balancer (LoadBalancer::SetBlocked), panic or not. When no replica admits, Begin
// returns kBreakersOpen and the engine ends the attempt at once as a breaker_open rejection
// (RefusalOutcome): no replica is called. Each admitted attempt carries its breaker permit;
// End records it whatever the ending (an answer, a timeout, a cancelled hedge copy, a shutdown:
// the last two as ignored), so a probe slot is never held after its attempt ends. Ejection and
// the breakers are independent: an ejected replica's breaker keeps its state (it hears nothing
// while ejected), and a replica whose breaker opens is not ejected for it. With a dependency
// breaker too, OrderFlow asks the shared breaker before the engine asks the pool.
//
// Thread-safe: the live engine calls it from every worker. Calls are short and never wait.

#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "rlab/core/mutex.h"
#include "rlab/core/outcome.h"
#include "rlab/core/rng.h"
#include "rlab/model/faults.h"
#include "rlab/model/scenario.h"
#include "rlab/policy/circuit_breaker.h"
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
  // Per-replica breakers only: the breaker's state after its last operation, and how many
  // times it opened.
  BreakerState breaker_state = BreakerState::kClosed;
  int64_t breaker_opened = 0;
  // Half-open probe slots taken (0 after a drained run: no permit outlives its attempt).
  int64_t breaker_probes = 0;
};

// An ejection or a return, for the events table.
struct ReplicaEvent {
  int64_t t_ns = 0;
  int replica = 0;
  bool ejected = false;
  EjectionReason reason = EjectionReason::kConsecutiveErrors;
  // A per-replica breaker's transition to `breaker_to` (`ejected` and `reason` unused).
  bool breaker = false;
  BreakerState breaker_to = BreakerState::kClosed;
};

class ReplicaPool {
 public:
  // The uniform draws one Begin consumes, whatever the balancer (common random numbers).
  static constexpr int kDrawsPerPick = 2;
  // Ejection events kept (the detector keeps as many); as many breaker transitions again.
  static constexpr size_t kMaxEvents = 4096;
  // Begin's answers when no replica is called: every replica ejected (no panic) ...
  static constexpr int kNoReplica = -1;
  // ... or no replica's own breaker admits a call.
  static constexpr int kBreakersOpen = -2;
  // The outcome of an attempt Begin refused (kNoReplica or kBreakersOpen): HTTP 503 (Envoy's
  // "no healthy upstream"), or a breaker_open rejection, local like a shared breaker's.
  static Outcome RefusalOutcome(int code) {
    return code == kBreakersOpen ? Outcome::Of(OutcomeKind::kBreakerOpen) : Outcome::Http(503);
  }

  // `config` and `base` must have passed ValidateScenario.
  ReplicaPool(const ReplicasConfig& config, const FaultsConfig& base);

  ReplicaPool(const ReplicaPool&) = delete;
  ReplicaPool& operator=(const ReplicaPool&) = delete;

  int count() const { return count_; }
  // Replica `r`'s fault model (immutable: safe to use without the pool's lock).
  const FaultModel& faults(int r) const { return *faults_[static_cast<size_t>(r)]; }

  // Picks the replica of an attempt starting at `now_ns` and counts the attempt started.
  // Consumes kDrawsPerPick draws of `rng`. Returns kNoReplica when every replica is ejected
  // and the panic threshold is 0, kBreakersOpen when no replica's breaker admits a call (the
  // caller answers the attempt itself with RefusalOutcome: no replica was called).
  // With `outstanding`, also stores the chosen replica's attempts outstanding, this one
  // included (the load its fault model sees when it has no capacity limit). With per-replica
  // breakers, `permit` receives the replica breaker's permit, to hand back to End.
  int Begin(int64_t now_ns, RandomStream& rng, int64_t* outstanding = nullptr,
            uint64_t* permit = nullptr);
  // The attempt sent to `replica` ended at `now_ns`, after `latency_ns`, with `outcome`;
  // `permit` is what Begin stored (every ending must be reported, or a probe slot leaks).
  void End(int replica, int64_t now_ns, int64_t latency_ns, const Outcome& outcome,
           uint64_t permit = 0);
  // Whether the replicas have their own breakers.
  bool has_breakers() const { return !breakers_.empty(); }
  // Replica `r`'s breaker state after its last operation (closed without breakers).
  BreakerState BreakerStateOf(int r) const;

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
  // Per-replica breakers: re-reads the state of the breakers not closed (moving an open one
  // whose period has passed to half-open), so that the balancer's blocked set is current.
  void RefreshBreakersLocked(int64_t now_ns) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After an operation on replica r's breaker: records a transition and (un)blocks r.
  void NoteBreakerLocked(int r, int64_t now_ns) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

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
  // Per-replica breakers (empty without): used only under mu_, which serialises each
  // admission with the blocked set it is checked against.
  std::vector<std::unique_ptr<CircuitBreaker>> breakers_;
  int half_open_max_calls_ = 1;
  std::vector<BreakerState> breaker_state_ ABSL_GUARDED_BY(mu_);  // as last seen
  std::vector<bool> blocked_ ABSL_GUARDED_BY(mu_);                // what the balancer was told
  int blocked_count_ ABSL_GUARDED_BY(mu_) = 0;
  // Replicas whose breaker left closed (closed ones drop out at the next refresh).
  std::vector<int> watched_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> watching_ ABSL_GUARDED_BY(mu_);
  // When each open breaker's period ends, and the earliest of them: until then a refresh has
  // nothing to move, and costs nothing.
  std::vector<int64_t> open_until_ns_ ABSL_GUARDED_BY(mu_);
  int64_t next_due_ns_ ABSL_GUARDED_BY(mu_) = std::numeric_limits<int64_t>::max();
  size_t breaker_events_ ABSL_GUARDED_BY(mu_) = 0;  // transitions kept in events_
};

}  // namespace rlab

#endif  // RLAB_MODEL_REPLICA_POOL_H_
