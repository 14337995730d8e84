#ifndef RLAB_POLICY_LOAD_BALANCER_H_
#define RLAB_POLICY_LOAD_BALANCER_H_

// Client-side load balancing over N replicas. Each pick chooses a replica among those that are
// not ejected; the caller reports when the call starts and ends.
//
//   kRoundRobin        the next replica in order.
//   kRandom            a uniform choice.
//   kLeastOutstanding  the fewest calls in flight (ties broken uniformly by the draw).
//   kPowerOfTwo        two distinct uniform choices, the one with fewer calls in flight
//                      (Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing",
//                      IEEE TPDS 2001; Vvedenskaya, Dobrushin, Karpelevich 1996).
//   kPeakEwma          two distinct uniform choices, the one with the lower cost
//                      ewma_latency * (outstanding + 1), as Finagle's PeakEwma balancer
//                      (twitter/finagle finagle-core/.../loadbalancer/PeakEwma.scala), used with
//                      its power-of-two-choices picker in Finagle and linkerd.
//
// Peak EWMA keeps per replica a latency estimate that jumps up to any latency above it (the
// peak) and otherwise moves towards each observed latency with weight 1 - exp(-dt / tau), dt
// the time since the previous observation; between observations it decays towards zero with
// time constant tau, so a replica that was slow long ago becomes attractive again. A replica
// with calls in flight and no latency seen yet costs a large penalty (Finagle's rule), so the
// first probe of an unknown replica is not followed by a burst. Unlike Finagle, reading the
// cost does not change the state (Finagle folds its decay into every read): the weight of an
// observation depends only on observation times, which keeps picks a pure function of history.
//
// Ejection and panic (Envoy's healthy_panic_threshold): when the share of replicas not ejected
// falls below panic_threshold percent, picks ignore ejections and go over the whole pool. With
// no replica available (everything ejected and the threshold 0), Pick returns -1.
//
// Blocking (SetBlocked) is the hard exclusion of a replica whose own circuit breaker admits no
// call (model/replica_pool.h): unlike an ejection it holds in panic too, and it does not count
// against the panic threshold (Finagle's balancers likewise skip a node whose status is not
// Open without treating it as a failed health check). Every replica blocked: Pick returns -1.
//
// Pure: time and uniform draws in [0, 1) come in as arguments. Thread-safe.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rlab/core/mutex.h"
#include "rlab/core/schema.h"
#include "rlab/policy/outlier_detector.h"

namespace rlab {

enum class LbKind { kRoundRobin, kRandom, kLeastOutstanding, kPowerOfTwo, kPeakEwma };

// "round_robin", "random", "least_outstanding", "p2c", "peak_ewma".
std::string_view LbKindName(LbKind kind);
absl::StatusOr<LbKind> ParseLbKind(std::string_view name);

// Parameters; names in error messages are the dotted Python paths ("load_balancer.<field>").
struct LoadBalancerConfig {
  LbKind kind = LbKind::kRoundRobin;
  // Replicas in the pool, in [1, 100000].
  int replicas = 1;
  // Peak EWMA's time constant tau, in (0, 1e6] s (Finagle's default decay time: 10 s).
  int64_t decay_ns = 10 * int64_t{1'000'000'000};
  // Below this share of replicas not ejected, in [0, 100] percent, ejections are ignored
  // (Envoy's default healthy_panic_threshold: 50).
  double panic_threshold_percent = 50.0;
};

// Checks the fields by the table, named "load_balancer.<field>" (the Python parameters).
absl::Status Validate(const LoadBalancerConfig& config);
// The field table (Python: rl.LoadBalancer's kind, replicas, decay, panic_threshold).
const ConfigSchema<LoadBalancerConfig>& LoadBalancerSchema();

// One replica's counters, for metrics and tests.
struct ReplicaLoad {
  int64_t outstanding = 0;  // calls started and not ended
  int64_t picks = 0;
  int64_t starts = 0;
  int64_t ends = 0;
  int64_t errors = 0;            // ends with ok = false
  double ewma_latency_ns = 0.0;  // Peak EWMA's estimate at its last observation
};

class LoadBalancer {
 public:
  // `config` must have passed Validate. With an outlier detector (same replica count), picks
  // skip the replicas it ejects and OnEnd reports results to it.
  explicit LoadBalancer(const LoadBalancerConfig& config,
                        std::shared_ptr<OutlierDetector> outlier = nullptr);
  static absl::StatusOr<std::unique_ptr<LoadBalancer>> Create(
      const LoadBalancerConfig& config, std::shared_ptr<OutlierDetector> outlier = nullptr);

  LoadBalancer(const LoadBalancer&) = delete;
  LoadBalancer& operator=(const LoadBalancer&) = delete;

  // Chooses a replica at `now_ns` with the uniform draws u1, u2 in [0, 1) (random uses u1; P2C
  // and Peak EWMA use both; least outstanding uses u1 to break ties; round robin none). Runs
  // the detector's due ticks first. Returns -1 when no replica is available.
  int Pick(int64_t now_ns, double u1, double u2);
  // A call to `replica` starts (after Pick, or for a replica chosen elsewhere).
  void OnStart(int replica);
  // A call to `replica` ended at `now_ns` after `latency_ns`; `ok` says whether it succeeded.
  // Ends without a matching start are ignored (outstanding never goes below zero).
  void OnEnd(int replica, int64_t now_ns, int64_t latency_ns, bool ok);

  // Marks a replica ejected or not by hand (in addition to the detector's ejections).
  void SetEjected(int replica, bool ejected);
  // Marks a replica blocked or not: never picked while blocked, panic or not.
  void SetBlocked(int replica, bool blocked);
  // Whether picks currently ignore ejections (too few replicas left).
  bool InPanic() const;
  // Peak EWMA's cost of `replica` at `now_ns` (the other kinds: outstanding + 1).
  double Cost(int replica, int64_t now_ns) const;
  ReplicaLoad Load(int replica) const;
  int64_t panic_picks() const;
  const LoadBalancerConfig& config() const { return config_; }
  const std::shared_ptr<OutlierDetector>& outlier() const { return outlier_; }

 private:
  struct Replica {
    int64_t outstanding = 0;
    int64_t picks = 0;
    int64_t starts = 0;
    int64_t ends = 0;
    int64_t errors = 0;
    double cost_ns = 0.0;  // peak EWMA at stamp_ns
    int64_t stamp_ns = 0;  // time of the last latency observation
    bool seen = false;     // a latency has been observed
    bool manually_ejected = false;
    bool blocked = false;  // SetBlocked
  };

  // Whether replica i may be picked, given the detector's mask (nullptr: none ejected).
  bool EligibleLocked(size_t i, const std::vector<bool>* ejected) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  double CostLocked(const Replica& r, int64_t now_ns) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Picks among the whole pool (`all`) or among candidates_ (ascending replica indices).
  int PickLocked(int64_t now_ns, double u1, double u2, bool all) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const LoadBalancerConfig config_;
  const std::shared_ptr<OutlierDetector> outlier_;
  mutable Mutex mu_;
  std::vector<Replica> replicas_ ABSL_GUARDED_BY(mu_);
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;  // round robin's cursor
  int64_t panic_picks_ ABSL_GUARDED_BY(mu_) = 0;
  int manually_ejected_ ABSL_GUARDED_BY(mu_) = 0;
  int blocked_ ABSL_GUARDED_BY(mu_) = 0;  // replicas blocked (SetBlocked)
  // Scratch reused across picks, so that a pick allocates nothing.
  std::vector<int> candidates_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> ejected_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rlab

#endif  // RLAB_POLICY_LOAD_BALANCER_H_
