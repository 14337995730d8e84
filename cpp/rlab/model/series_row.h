#ifndef RLAB_MODEL_SERIES_ROW_H_
#define RLAB_MODEL_SERIES_ROW_H_

// A run's time series, defined once for both engines: which columns a run has, in which order,
// and what each row holds (deltas of counters since the previous row, levels as they are at the
// sample). The engines only read their counters at the sample instant and hand them over; the
// simulated engine samples in virtual time, the live engine on its sampler thread.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "rlab/model/limits.h"
#include "rlab/model/order_flow.h"
#include "rlab/policy/concurrency_limit.h"

namespace rlab {

// What a run samples besides the fixed columns: its dependencies (the flat list both engines
// index, service graphs' own dependencies included, by label) and the intake's optional parts.
struct SeriesLayout {
  std::vector<std::string> labels;  // one per dependency, in the engines' order
  bool intake_discipline = false;   // a job-queue discipline other than FIFO
  bool intake_limit = false;        // intake.limit
  bool intake_rate = false;         // intake.rate_limit
};

// The column names of a run with `layout` whose dependencies are `deps` (their policies decide
// the optional columns). Service graphs' `service.<name>.*` columns come after these
// (AppendServiceColumns, model/service_accounting.h).
std::vector<std::string> SeriesColumns(const SeriesLayout& layout,
                                       const std::vector<DependencyRuntime>& deps);

// One dependency's counters at a sample (cumulative) and its calls in progress (a level).
struct SeriesDepCounts {
  int64_t calls = 0;
  int64_t retries = 0;
  int64_t failures = 0;
  int64_t rejected_breaker = 0;
  int64_t in_flight = 0;
  // Rounds (hedged or fanned-out calls) only.
  int64_t hedges = 0;
  int64_t hedges_won = 0;
  int64_t cancelled = 0;
  int64_t hedges_denied = 0;
  int64_t wasted_attempt_ns = 0;
};

// The run's counters at a sample (cumulative) and its levels.
struct SeriesCounts {
  int64_t arrived = 0;
  std::array<int64_t, kNumOrderStatuses> by_status{};
  std::array<int64_t, kNumFailReasons> by_reason{};
  int64_t degraded = 0;
  int64_t queue_depth = 0;
  int64_t busy_workers = 0;
  int64_t in_system = 0;
  int64_t oldest_wait_ns = 0;  // intake discipline: how long the oldest queued order has waited
  std::vector<SeriesDepCounts> deps;
};

// Writes the rows of SeriesColumns, remembering the counters of the previous row. Not
// thread-safe: one writer (the simulated engine, or the live sampler under its lock).
class SeriesRow {
 public:
  // For a run of `num_deps` dependencies.
  explicit SeriesRow(size_t num_deps);

  // Puts one row's values in SeriesColumns' order: `now`'s deltas since the previous call and
  // its levels, then the state of `deps`' breakers, budgets, limiters and rate gates and of the
  // intake's limiter and rate gate (null when absent) at `now_ns`.
  void Put(int64_t now_ns, const SeriesLayout& layout, const SeriesCounts& now,
           std::vector<DependencyRuntime>& deps, ConcurrencyLimiter* intake_limiter,
           RateGate* intake_rate, absl::FunctionRef<void(double)> put);

  // The cumulative counts of the previous row (zero before the first).
  const SeriesCounts& last() const { return last_; }

 private:
  SeriesCounts last_;
  std::vector<int64_t> limit_rejected_;  // per dependency with a limit
  int64_t intake_limit_rejected_ = 0;
  std::vector<RateGate::Counts> rate_;  // per dependency, then intake.rate_limit last
};

}  // namespace rlab

#endif  // RLAB_MODEL_SERIES_ROW_H_
