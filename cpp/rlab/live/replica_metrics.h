#ifndef RLAB_LIVE_REPLICA_METRICS_H_
#define RLAB_LIVE_REPLICA_METRICS_H_

// The live engine's per-replica Prometheus families (dependencies with `replicas`), the same
// names and labels as the simulator's result (python/reliability_lab/metrics.py), read from the
// pools when scraped. Kept out of the engine (live_sampler.cc) so that it only forwards to it.
//
// Families (labels `dependency`, `replica`: the replica's index, bounded by kMaxReplicas):
//   rlab_replica_calls            counter: attempts sent to the replica
//   rlab_replica_failures         counter: attempts it failed (dependency faults)
//   rlab_replica_ejections        counter: outlier ejections
//   rlab_replica_breaker_trips    counter: its own breaker's openings (per-replica breakers)
//   rlab_replica_breaker_state    gauge, label `state` too: 1 for the current state

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "rlab/core/metrics.h"
#include "rlab/core/mutex.h"
#include "rlab/model/order_flow.h"

namespace rlab {

class ReplicaMetrics {
 public:
  // Registers the families for the dependencies with a replica pool (none without).
  absl::Status Init(MetricsRegistry& registry, const std::vector<std::string>& names,
                    const std::vector<DependencyRuntime>& deps);
  // Brings the series up to the pools' figures at `now_ns` (at scrape time; thread-safe).
  void Refresh(const std::vector<DependencyRuntime>& deps, int64_t now_ns);

 private:
  struct Pool {
    size_t index = 0;  // the dependency
    size_t first = 0;  // its first series in the families
    int count = 0;
    bool breakers = false;
    size_t first_breaker = 0;  // its first series in the breaker families
  };
  // The counters only grow: each refresh adds what the pool counted since the last one.
  struct Last {
    int64_t calls = 0;
    int64_t failures = 0;
    int64_t ejections = 0;
    int64_t trips = 0;
  };
  std::vector<Pool> pools_;
  Family<Counter>* calls_ = nullptr;
  Family<Counter>* failures_ = nullptr;
  Family<Counter>* ejections_ = nullptr;
  Family<Counter>* trips_ = nullptr;  // null without per-replica breakers
  Family<Gauge>* state_ = nullptr;    // three series (closed, open, half_open) per replica
  Mutex mu_;
  std::vector<Last> last_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rlab

#endif  // RLAB_LIVE_REPLICA_METRICS_H_
