#ifndef RLAB_LIVE_ROUND_METRICS_H_
#define RLAB_LIVE_ROUND_METRICS_H_

// The live engine's observability of request patterns (hedging and fan-out rounds): Prometheus
// families and time-series columns for the dependencies whose calls are rounds, matching the
// simulator's columns (sim_engine.cc InitTimeSeries) and the result's totals. Kept out of
// the engine (live_worker_pool.cc, live_sampler.cc) so that it only forwards to it.
//
// Families (one series per round dependency, label `dependency`):
//   rlab_dependency_hedges         counter: hedge copies sent
//   rlab_dependency_hedges_won     counter: calls won by a hedge
//   rlab_dependency_hedges_denied  counter: hedges the hedge budget refused
//   rlab_dependency_copies_cancelled counter: copies cancelled once their call was decided
//   rlab_dependency_wasted_attempt_seconds gauge: server time of cancelled copies (monotone)
//   rlab_hedge_budget_tokens       gauge: hedge budget tokens left (hedged with a budget only)

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "rlab/core/metrics.h"
#include "rlab/model/order_flow.h"
#include "rlab/model/series_row.h"

namespace rlab {

class RoundMetrics {
 public:
  // Registers the families for the dependencies whose `deps[d].rounds()`. `names` are the
  // dependencies' names; `wasted_ns` (one per dependency) the engine's wasted-service counters.
  absl::Status Init(MetricsRegistry& registry, const std::vector<std::string>& names,
                    const std::vector<DependencyRuntime>& deps,
                    const std::atomic<int64_t>* wasted_ns);
  // Adds a worker's counters since its last publication (`published` is updated).
  void Publish(size_t dep, const FlowStats& now, FlowStats& published);
  // Refreshes the gauges (at scrape time).
  void RefreshGauges(const std::vector<DependencyRuntime>& deps);
  // Fills the round counters of `counts` (one per dependency) for a time-series row
  // (model/series_row.h). After Init.
  void FillSeriesCounts(std::vector<SeriesDepCounts>& counts) const;

 private:
  struct Dep {
    size_t index = 0;
    std::string name;
    std::array<Counter*, 4> counters{};  // hedges, hedges_won, hedges_denied, cancelled
    Gauge* wasted_s = nullptr;
    Gauge* tokens = nullptr;  // null unless hedged with a budget
  };
  std::vector<Dep> deps_;
  const std::atomic<int64_t>* wasted_ns_ = nullptr;
};

}  // namespace rlab

#endif  // RLAB_LIVE_ROUND_METRICS_H_
