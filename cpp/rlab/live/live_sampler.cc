#include "rlab/live/live_sampler.h"

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/str_format.h"
#include "rlab/core/clock.h"
#include "rlab/core/invariant.h"
#include "rlab/model/order_conservation.h"
#include "rlab/model/service_accounting.h"

namespace rlab {
namespace {

constexpr std::array<FailReason, 6> kSeriesReasons = {
    FailReason::kExhausted, FailReason::kPermanent, FailReason::kBreakerOpen,
    FailReason::kBudget,    FailReason::kDeadline,  FailReason::kNonRetryable};

}  // namespace

LiveSampler::LiveSampler(LiveSampleSources sources, int64_t every_ns, int64_t max_samples)
    : src_(std::move(sources)), every_ns_(every_ns), max_samples_(max_samples) {
  if (every_ns_ <= 0) return;
  const ScenarioConfig& config = *src_.config;
  const std::vector<DependencyRuntime>& deps = *src_.deps;
  auto& c = columns_;
  c = {"t", "arrivals", "completed", "failed", "rejected", "expired", "degraded"};
  for (FailReason r : kSeriesReasons) {
    c.push_back(absl::StrFormat("failed_%s", FailReasonName(r)));
  }
  c.insert(c.end(), {"queue_depth", "busy_workers", "in_system"});
  for (const DependencyConfig& d : config.dependencies) {
    for (const char* m : {"calls", "retries", "failures", "rejected_breaker", "breaker_state",
                          "budget_tokens", "in_flight"}) {
      c.push_back(absl::StrFormat("%s.%s", d.name, m));
    }
  }
  std::vector<std::string> names;
  for (const DependencyConfig& d : config.dependencies) names.push_back(d.name);
  RoundMetrics::AppendColumns(names, deps, c);  // hedged / fanned-out ones, as the simulator
  // A queue discipline other than FIFO, last: the job queue's standing delay and its drops.
  if (src_.queue_oldest_enqueued_ns) c.insert(c.end(), {"intake.queue_delay", "intake.dropped"});
  // Concurrency limits, after everything else (the simulated engine's names and order).
  for (size_t i = 0; i < deps.size(); ++i) {
    if (!deps[i].limiter) continue;
    for (const char* m : {"limit", "limit_inflight", "rejected_limit"}) {
      c.push_back(absl::StrFormat("%s.%s", config.dependencies[i].name, m));
    }
  }
  if (src_.intake_limiter != nullptr) {
    c.insert(c.end(), {"intake.limit", "intake.inflight", "intake.rejected"});
  }
  // Rate limits, after the concurrency limits (the simulated engine's names and order).
  for (size_t i = 0; i < deps.size(); ++i) {
    if (!deps[i].rate_gate) continue;
    for (const char* m : {"rate_limited", "rate_limit_waits"}) {
      c.push_back(absl::StrFormat("%s.%s", config.dependencies[i].name, m));
    }
  }
  if (src_.intake_rate != nullptr) {
    c.insert(c.end(), {"intake.rate_limited", "intake.rate_limit_waits"});
  }
  AppendServiceColumns(config, &c);  // service graphs, last (model/service_accounting.h)
  MutexLock lock(&rows_mu_);
  rows_.assign(c.size(), {});
  last_.deps.assign(config.dependencies.size(), {});
  last_.limit_rejected.assign(config.dependencies.size(), 0);
  last_.rate.assign(config.dependencies.size() + 1, {});
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
  // The row and the counters' new values are built in locals (lambdas below cannot show the
  // analysis that rows_mu_ is held), then stored at the end.
  Last last = last_;
  std::vector<double> row;
  row.reserve(rows_.size());
  auto put = [&row](double v) { row.push_back(v); };
  std::array<int64_t, kNumOrderStatuses> st{};
  for (OrderStatus s : kLiveTerminal) {
    st[static_cast<size_t>(s)] = m.by_status[static_cast<size_t>(s)]->value();
  }
  std::array<int64_t, kNumFailReasons> rs{};
  for (int r = 1; r < kNumFailReasons; ++r) rs[r] = m.by_reason[r]->value();
  const int64_t arrived = m.arrived->value();
  const int64_t degraded = m.degraded->value();
  const int64_t in_system = src_.in_system->load(std::memory_order_relaxed);
  // Conservation while workers run: the counters move independently, so only what holds at any
  // instant is checked here (totals only grow; in flight never below zero). Exact at shutdown.
  RLAB_INVARIANT(
      arrived >= last.arrived && TerminalOrders(st) >= TerminalOrders(last.by_status) &&
          in_system >= 0,
      "live engine at t = %d ns: arrived %d (was %d), terminal %d (was %d), %d in flight", now_ns,
      arrived, last.arrived, TerminalOrders(st), TerminalOrders(last.by_status), in_system);
  auto delta = [&](OrderStatus s) {
    const size_t i = static_cast<size_t>(s);
    return static_cast<double>(st[i] - last.by_status[i]);
  };
  put(NsToSeconds(now_ns));
  put(static_cast<double>(arrived - last.arrived));
  put(delta(OrderStatus::kCompleted));
  put(delta(OrderStatus::kFailed));
  put(delta(OrderStatus::kRejected));
  put(delta(OrderStatus::kExpired));
  put(static_cast<double>(degraded - last.degraded));
  for (FailReason r : kSeriesReasons) {
    const size_t i = static_cast<size_t>(r);
    put(static_cast<double>(rs[i] - last.by_reason[i]));
  }
  put(static_cast<double>(src_.queue_depth()));
  put(static_cast<double>(src_.busy_workers->load(std::memory_order_relaxed)));
  put(static_cast<double>(in_system));
  for (size_t d = 0; d < deps.size(); ++d) {
    const LiveDepMetrics& dm = m.deps[d];
    const std::array<int64_t, 4> now = {dm.calls->value(), dm.retry[0]->value(),
                                        dm.failures->value(), dm.rejected_breaker->value()};
    for (size_t k = 0; k < 4; ++k) put(static_cast<double>(now[k] - last.deps[d][k]));
    last.deps[d] = now;
    put(deps[d].breaker ? static_cast<double>(deps[d].breaker->State(now_ns)) : 0.0);
    put(deps[d].token_bucket ? deps[d].token_bucket->Snapshot().milli_tokens * 1e-3
                             : std::numeric_limits<double>::quiet_NaN());
    put(static_cast<double>(src_.dep_in_flight[d].load(std::memory_order_relaxed)));
  }
  src_.metrics->rounds.AppendSample(put);
  if (src_.queue_oldest_enqueued_ns) {
    const int64_t oldest = src_.queue_oldest_enqueued_ns();
    put(oldest < 0 ? 0.0 : NsToSeconds(std::max<int64_t>(0, now_ns - oldest)));
    const size_t r = static_cast<size_t>(FailReason::kQueueDelay);
    put(static_cast<double>(rs[r] - last.by_reason[r]));
  }
  for (size_t d = 0; d < deps.size(); ++d) {
    if (!deps[d].limiter) continue;
    const LimiterSnapshot l = deps[d].limiter->Peek();
    put(static_cast<double>(l.limit));
    put(static_cast<double>(l.inflight));
    put(static_cast<double>(l.rejected - last.limit_rejected[d]));
    last.limit_rejected[d] = l.rejected;
  }
  if (src_.intake_limiter != nullptr) {
    const LimiterSnapshot l = src_.intake_limiter->Peek();
    put(static_cast<double>(l.limit));
    put(static_cast<double>(l.inflight));
    put(static_cast<double>(l.rejected - last.intake_limit_rejected));
    last.intake_limit_rejected = l.rejected;
  }
  auto put_rate = [&](RateGate& gate, RateGate::Counts& seen) {
    const RateGate::Counts now = gate.counts();
    put(static_cast<double>(now.refused - seen.refused));
    put(static_cast<double>(now.waits - seen.waits));
    seen = now;
  };
  for (size_t d = 0; d < deps.size(); ++d) {
    if (deps[d].rate_gate) put_rate(*deps[d].rate_gate, last.rate[d]);
  }
  if (src_.intake_rate != nullptr) put_rate(*src_.intake_rate, last.rate[deps.size()]);
  if (src_.services) src_.services(put);  // service graphs, last (live_services.cc)
  for (size_t i = 0; i < rows_.size(); ++i) rows_[i].push_back(row[i]);
  if (static_cast<int64_t>(rows_[0].size()) >= 2 * max_samples_) {
    // Amortised: drop the oldest rows once the series is twice its bound.
    const auto drop = static_cast<std::ptrdiff_t>(rows_[0].size() - max_samples_);
    for (std::vector<double>& column : rows_) column.erase(column.begin(), column.begin() + drop);
  }
  last.arrived = arrived;
  last.by_status = st;
  last.by_reason = rs;
  last.degraded = degraded;
  last_ = std::move(last);
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
