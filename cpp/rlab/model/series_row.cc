#include "rlab/model/series_row.h"

#include <limits>

#include "absl/strings/str_format.h"
#include "rlab/core/clock.h"

namespace rlab {
namespace {

// The failure reasons with a column of their own, in column order.
constexpr std::array<FailReason, 6> kSeriesReasons = {
    FailReason::kExhausted, FailReason::kPermanent, FailReason::kBreakerOpen,
    FailReason::kBudget,    FailReason::kDeadline,  FailReason::kNonRetryable};

}  // namespace

std::vector<std::string> SeriesColumns(const SeriesLayout& layout,
                                       const std::vector<DependencyRuntime>& deps) {
  std::vector<std::string> c = {"t",        "arrivals", "completed", "failed",
                                "rejected", "expired",  "degraded"};
  for (FailReason r : kSeriesReasons) c.push_back(absl::StrFormat("failed_%s", FailReasonName(r)));
  c.insert(c.end(), {"queue_depth", "busy_workers", "in_system"});
  auto per_dep = [&](auto has, std::initializer_list<const char*> names) {
    for (size_t i = 0; i < deps.size(); ++i) {
      if (!has(deps[i])) continue;
      for (const char* m : names) c.push_back(absl::StrFormat("%s.%s", layout.labels[i], m));
    }
  };
  per_dep([](const DependencyRuntime&) { return true; },
          {"calls", "retries", "failures", "rejected_breaker", "breaker_state", "budget_tokens",
           "in_flight"});
  // Hedged or fanned-out dependencies only, after all the others: the price of the copies
  // (per interval: hedges sent, calls a hedge won, copies cancelled, seconds of server time
  // spent on cancelled copies, hedges the budget refused).
  per_dep([](const DependencyRuntime& d) { return d.rounds(); },
          {"hedges", "hedges_won", "cancelled", "wasted_attempt_seconds", "hedges_denied"});
  // A queue discipline other than FIFO: the job queue's standing delay and its drops.
  if (layout.intake_discipline) c.insert(c.end(), {"intake.queue_delay", "intake.dropped"});
  // Concurrency limits: the limit, the permits held, the refusals.
  per_dep([](const DependencyRuntime& d) { return d.limiter != nullptr; },
          {"limit", "limit_inflight", "rejected_limit"});
  if (layout.intake_limit)
    c.insert(c.end(), {"intake.limit", "intake.inflight", "intake.rejected"});
  // Rate limits: per interval, the refusals and the waits.
  per_dep([](const DependencyRuntime& d) { return d.rate_gate != nullptr; },
          {"rate_limited", "rate_limit_waits"});
  if (layout.intake_rate) c.insert(c.end(), {"intake.rate_limited", "intake.rate_limit_waits"});
  return c;
}

SeriesRow::SeriesRow(size_t num_deps) : limit_rejected_(num_deps, 0), rate_(num_deps + 1) {
  last_.deps.resize(num_deps);
}

void SeriesRow::Put(int64_t now_ns, const SeriesLayout& layout, const SeriesCounts& now,
                    std::vector<DependencyRuntime>& deps, ConcurrencyLimiter* intake_limiter,
                    RateGate* intake_rate, absl::FunctionRef<void(double)> put) {
  const SeriesCounts& l = last_;
  auto delta = [&](int64_t a, int64_t b) { put(static_cast<double>(a - b)); };
  put(NsToSeconds(now_ns));
  delta(now.arrived, l.arrived);
  for (OrderStatus s : {OrderStatus::kCompleted, OrderStatus::kFailed, OrderStatus::kRejected,
                        OrderStatus::kExpired}) {
    const size_t i = static_cast<size_t>(s);
    delta(now.by_status[i], l.by_status[i]);
  }
  delta(now.degraded, l.degraded);
  for (FailReason r : kSeriesReasons) {
    const size_t i = static_cast<size_t>(r);
    delta(now.by_reason[i], l.by_reason[i]);
  }
  put(static_cast<double>(now.queue_depth));
  put(static_cast<double>(now.busy_workers));
  put(static_cast<double>(now.in_system));
  for (size_t d = 0; d < deps.size(); ++d) {
    const SeriesDepCounts& s = now.deps[d];
    const SeriesDepCounts& p = l.deps[d];
    delta(s.calls, p.calls);
    delta(s.retries, p.retries);
    delta(s.failures, p.failures);
    delta(s.rejected_breaker, p.rejected_breaker);
    put(deps[d].breaker ? static_cast<double>(deps[d].breaker->State(now_ns)) : 0.0);
    put(deps[d].token_bucket ? deps[d].token_bucket->Snapshot().milli_tokens * 1e-3
                             : std::numeric_limits<double>::quiet_NaN());
    put(static_cast<double>(s.in_flight));
  }
  for (size_t d = 0; d < deps.size(); ++d) {
    if (!deps[d].rounds()) continue;
    const SeriesDepCounts& s = now.deps[d];
    const SeriesDepCounts& p = l.deps[d];
    // The rounds' columns, in SeriesColumns' order.
    delta(s.hedges, p.hedges);
    delta(s.hedges_won, p.hedges_won);
    delta(s.cancelled, p.cancelled);
    put(NsToSeconds(s.wasted_attempt_ns - p.wasted_attempt_ns));
    delta(s.hedges_denied, p.hedges_denied);
  }
  if (layout.intake_discipline) {
    put(NsToSeconds(now.oldest_wait_ns));
    const size_t r = static_cast<size_t>(FailReason::kQueueDelay);
    delta(now.by_reason[r], l.by_reason[r]);
  }
  auto put_limit = [&](ConcurrencyLimiter& limiter, int64_t& seen) {
    const LimiterSnapshot s = limiter.Peek();
    put(static_cast<double>(s.limit));
    put(static_cast<double>(s.inflight));
    delta(s.rejected, seen);
    seen = s.rejected;
  };
  for (size_t d = 0; d < deps.size(); ++d) {
    if (deps[d].limiter) put_limit(*deps[d].limiter, limit_rejected_[d]);
  }
  if (intake_limiter != nullptr) put_limit(*intake_limiter, intake_limit_rejected_);
  auto put_rate = [&](RateGate& gate, RateGate::Counts& seen) {
    const RateGate::Counts c = gate.counts();
    delta(c.refused, seen.refused);
    delta(c.waits, seen.waits);
    seen = c;
  };
  for (size_t d = 0; d < deps.size(); ++d) {
    if (deps[d].rate_gate) put_rate(*deps[d].rate_gate, rate_[d]);
  }
  if (intake_rate != nullptr) put_rate(*intake_rate, rate_[deps.size()]);
  last_ = now;
}

}  // namespace rlab
