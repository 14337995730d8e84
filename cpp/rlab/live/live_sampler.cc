#include "rlab/live/live_sampler.h"

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/str_format.h"
#include "rlab/core/clock.h"
#include "rlab/core/invariant.h"
#include "rlab/model/order_conservation.h"
#include "rlab/model/series_row.h"
#include "rlab/model/service_accounting.h"

namespace rlab {

LiveSampler::LiveSampler(LiveSampleSources sources, int64_t every_ns, int64_t max_samples)
    : src_(std::move(sources)), every_ns_(every_ns), max_samples_(max_samples) {
  if (every_ns_ <= 0) return;
  const ScenarioConfig& config = *src_.config;
  for (const DependencyConfig& d : config.dependencies) layout_.labels.push_back(d.name);
  layout_.intake_discipline = static_cast<bool>(src_.queue_oldest_enqueued_ns);
  layout_.intake_limit = src_.intake_limiter != nullptr;
  layout_.intake_rate = src_.intake_rate != nullptr;
  auto& c = columns_;
  c = SeriesColumns(layout_, *src_.deps);  // model/series_row.h, as the simulated engine
  AppendServiceColumns(config, &c);        // service graphs, last (model/service_accounting.h)
  MutexLock lock(&rows_mu_);
  rows_.assign(c.size(), {});
  series_ = SeriesRow(config.dependencies.size());
}

LiveSampler::~LiveSampler() { Stop(); }

void LiveSampler::Start(std::chrono::steady_clock::time_point start) {
  if (every_ns_ > 0) thread_ = std::thread([this, start] { Loop(start); });
}

void LiveSampler::Stop() {
  if (!thread_.joinable()) return;
  {
    // Set under the lock the thread waits with, so that no wake-up is lost.
    MutexLock lock(&thread_mu_);
    stop_ = true;
  }
  thread_cv_.SignalAll();
  thread_.join();
}

void LiveSampler::Loop(std::chrono::steady_clock::time_point start) {
  int64_t next = every_ns_;
  for (;;) {
    {
      MutexLock lock(&thread_mu_);
      const auto deadline = start + std::chrono::nanoseconds(next);
      while (!stop_) {
        if (thread_cv_.WaitUntil(&thread_mu_, deadline)) break;
      }
      if (stop_) return;
    }
    Sample(next, false);
    next += every_ns_;
  }
}

std::vector<std::vector<double>> LiveSampler::rows() const {
  MutexLock lock(&rows_mu_);
  return rows_;
}

void LiveSampler::Sample(int64_t now_ns, bool final) {
  MutexLock lock(&rows_mu_);
  if (rows_.empty()) return;
  // The final row closes a partial interval; skip it when a regular sample just did.
  if (final && now_ns <= last_sample_ns_) return;
  last_sample_ns_ = now_ns;
  const LiveMetrics& m = *src_.metrics;
  std::vector<DependencyRuntime>& deps = *src_.deps;
  std::vector<double> row;
  row.reserve(rows_.size());
  auto put = [&row](double v) { row.push_back(v); };
  SeriesCounts now;
  for (OrderStatus s : kLiveTerminal) {
    now.by_status[static_cast<size_t>(s)] = m.by_status[static_cast<size_t>(s)]->value();
  }
  for (int r = 1; r < kNumFailReasons; ++r) now.by_reason[r] = m.by_reason[r]->value();
  now.arrived = m.arrived->value();
  now.degraded = m.degraded->value();
  now.in_system = src_.in_system->load(std::memory_order_relaxed);
  now.queue_depth = src_.queue_depth();
  now.busy_workers = src_.busy_workers->load(std::memory_order_relaxed);
  if (src_.queue_oldest_enqueued_ns) {
    const int64_t oldest = src_.queue_oldest_enqueued_ns();
    now.oldest_wait_ns = oldest < 0 ? 0 : std::max<int64_t>(0, now_ns - oldest);
  }
  now.deps.resize(deps.size());
  for (size_t d = 0; d < deps.size(); ++d) {
    const LiveDepMetrics& dm = m.deps[d];
    SeriesDepCounts& c = now.deps[d];
    c.calls = dm.calls->value();
    c.retries = dm.retry[0]->value();
    c.failures = dm.failures->value();
    c.rejected_breaker = dm.rejected_breaker->value();
    c.in_flight = src_.dep_in_flight[d].load(std::memory_order_relaxed);
  }
  m.rounds.FillSeriesCounts(now.deps);
  // Conservation while workers run: the counters move independently, so only what holds at any
  // instant is checked here (totals only grow; in flight never below zero). Exact at shutdown.
  const SeriesCounts& last = series_.last();
  RLAB_INVARIANT(now.arrived >= last.arrived &&
                     TerminalOrders(now.by_status) >= TerminalOrders(last.by_status) &&
                     now.in_system >= 0,
                 "live engine at t = %d ns: arrived %d (was %d), terminal %d (was %d), %d in "
                 "flight",
                 now_ns, now.arrived, last.arrived, TerminalOrders(now.by_status),
                 TerminalOrders(last.by_status), now.in_system);
  series_.Put(now_ns, layout_, now, deps, src_.intake_limiter, src_.intake_rate, put);
  if (src_.services) src_.services(put);  // service graphs, last (live_services.cc)
  for (size_t i = 0; i < rows_.size(); ++i) rows_[i].push_back(row[i]);
  if (static_cast<int64_t>(rows_[0].size()) >= 2 * max_samples_) {
    // Amortised: drop the oldest rows once the series is twice its bound.
    const auto drop = static_cast<std::ptrdiff_t>(rows_[0].size() - max_samples_);
    for (std::vector<double>& column : rows_) column.erase(column.begin(), column.begin() + drop);
  }
}

void LiveSampler::RefreshGauges(int64_t now_ns, bool started) {
  LiveMetrics& m = *src_.metrics;
  std::vector<DependencyRuntime>& deps = *src_.deps;
  m.queue_depth->Set(static_cast<double>(src_.queue_depth()));
  m.busy_workers->Set(static_cast<double>(src_.busy_workers->load(std::memory_order_relaxed)));
  m.in_flight->Set(static_cast<double>(src_.in_system->load(std::memory_order_relaxed)));
  for (size_t d = 0; d < deps.size(); ++d) {
    LiveDepMetrics& dm = m.deps[d];
    dm.in_flight->Set(static_cast<double>(src_.dep_in_flight[d].load(std::memory_order_relaxed)));
    // State(now) moves an expired open breaker to half-open (its listener updates the gauges),
    // so the exported state is what the next call would see.
    if (deps[d].breaker && started) deps[d].breaker->State(now_ns);
    if (dm.budget_tokens != nullptr) {
      dm.budget_tokens->Set(deps[d].token_bucket->Snapshot().milli_tokens * 1e-3);
    }
  }
  m.rounds.RefreshGauges(deps);
  m.replicas.Refresh(deps, now_ns);
  for (const LiveMetrics::LimitGauges& g : m.limit_gauges) {
    const LimiterSnapshot s = g.limiter->Peek();
    g.limit->Set(static_cast<double>(s.limit));
    g.inflight->Set(static_cast<double>(s.inflight));
  }
  MutexLock lock(&m.rate_counters_mu);
  for (const LiveMetrics::RateCounters& r : m.rate_counters) {
    const RateGate::Counts n = r.gate->counts();
    r.refused->Add(n.refused - r.refused->value());
    r.waits->Add(n.waits - r.waits->value());
  }
}

}  // namespace rlab
