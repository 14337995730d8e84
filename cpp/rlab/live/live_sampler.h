#ifndef RLAB_LIVE_LIVE_SAMPLER_H_
#define RLAB_LIVE_LIVE_SAMPLER_H_

// The live engine's sampler: a thread that writes one time-series row per interval of wall-clock
// time (deltas of the order and dependency counters, levels of the queue, workers and limits),
// and the refresh of the gauges that are read only when the metrics are scraped. It reads the
// other parts of the engine through LiveSampleSources and writes nothing but its own rows and
// the registry's gauges.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "rlab/core/metrics.h"
#include "rlab/core/mutex.h"
#include "rlab/live/live_metrics.h"
#include "rlab/model/order_flow.h"
#include "rlab/model/run_result.h"
#include "rlab/model/scenario.h"
#include "rlab/model/series_row.h"

namespace rlab {

// What a row and a scrape read: the engine's counters and levels, owned by the other parts.
struct LiveSampleSources {
  const ScenarioConfig* config = nullptr;
  std::vector<DependencyRuntime>* deps = nullptr;  // breakers, budgets, limiters, gates
  LiveMetrics* metrics = nullptr;
  const std::atomic<int64_t>* dep_in_flight = nullptr;  // attempts in progress, per dependency
  const std::atomic<int64_t>* busy_workers = nullptr;
  const std::atomic<int64_t>* in_system = nullptr;  // admitted orders not yet terminal
  std::function<int64_t()> queue_depth;             // orders in the job queue
  // The job queue's oldest enqueue time (< 0: empty); set only when it has a queue discipline
  // other than FIFO (the columns intake.queue_delay and intake.dropped).
  std::function<int64_t()> queue_oldest_enqueued_ns;
  ConcurrencyLimiter* intake_limiter = nullptr;  // intake.limit, or null
  RateGate* intake_rate = nullptr;               // intake.rate_limit, or null
  // Service graphs: puts the `service.<name>.*` columns of a row (model/service_accounting.h);
  // set when the scenario has services.
  std::function<void(absl::FunctionRef<void(double)> put)> services;
};

// Writes the time series (its own thread, one row per `every_ns`) and refreshes the scraped
// gauges. Thread-safe.
class LiveSampler {
 public:
  // Lays out the columns (none when `every_ns` is 0: no series); keeps the most recent rows,
  // between `max_samples` and twice that.
  LiveSampler(LiveSampleSources sources, int64_t every_ns, int64_t max_samples);
  // Stops the thread if Stop was not called.
  ~LiveSampler();
  LiveSampler(const LiveSampler&) = delete;
  LiveSampler& operator=(const LiveSampler&) = delete;

  // Starts the sampling thread (without a series, nothing); engine time 0 is `start`.
  void Start(std::chrono::steady_clock::time_point start);
  // Stops and joins the sampling thread (idempotent).
  void Stop();
  // Appends a row at engine time `now_ns`; a `final` row closes a partial interval and is
  // skipped when a regular row was just written.
  void Sample(int64_t now_ns, bool final);
  // Refreshes the gauges read only when scraped (queue, workers, breakers, budgets, limits,
  // rates, rounds, replicas) at engine time `now_ns`; `started`: whether the engine runs (a
  // breaker's state is brought up to `now_ns` only then).
  void RefreshGauges(int64_t now_ns, bool started);
  // The column names (fixed by the constructor).
  std::vector<std::string> columns() const { return columns_; }
  // The rows kept so far, one vector per column.
  std::vector<std::vector<double>> rows() const;

 private:
  void Loop(std::chrono::steady_clock::time_point start);

  const LiveSampleSources src_;
  const int64_t every_ns_;
  const int64_t max_samples_;
  std::vector<std::string> columns_;  // fixed by the constructor

  Mutex thread_mu_;
  CondVar thread_cv_;
  bool stop_ ABSL_GUARDED_BY(thread_mu_) = false;
  std::thread thread_;  // started by Start, joined by Stop (the engine's Start / Shutdown)

  mutable Mutex rows_mu_;
  std::vector<std::vector<double>> rows_ ABSL_GUARDED_BY(rows_mu_);
  SeriesLayout layout_;                            // fixed by the constructor
  SeriesRow series_ ABSL_GUARDED_BY(rows_mu_){0};  // keeps the counters of the previous row
  int64_t last_sample_ns_ ABSL_GUARDED_BY(rows_mu_) = 0;
};

}  // namespace rlab

#endif  // RLAB_LIVE_LIVE_SAMPLER_H_
