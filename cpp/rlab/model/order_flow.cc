#include "rlab/model/order_flow.h"

#include <algorithm>
#include <array>

namespace rlab {
namespace {

constexpr std::array<std::string_view, kNumOrderStatuses> kStatusNames = {
    "pending", "queued", "processing", "completed", "failed", "rejected", "expired", "cancelled"};

constexpr std::array<std::string_view, kNumFailReasons> kReasonNames = {
    "",         "exhausted",     "permanent",  "breaker_open", "budget",
    "deadline", "non_retryable", "queue_full", "shutdown"};

RetryConfig SingleAttempt() {
  RetryConfig c;
  c.max_attempts = 1;
  return c;
}

bool IsBreakerRejection(const Outcome& o) {
  return o.kind == OutcomeKind::kBreakerOpen || o.kind == OutcomeKind::kBreakerHalfOpenFull;
}

}  // namespace

std::string_view OrderStatusName(OrderStatus status) {
  return kStatusNames[static_cast<size_t>(status)];
}

std::string_view FailReasonName(FailReason reason) {
  return kReasonNames[static_cast<size_t>(reason)];
}

void FallbackCache::Put(int key, int64_t now_ns) {
  MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it != index_.end()) {
    it->second->second = now_ns;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.emplace_front(key, now_ns);
  index_[key] = lru_.begin();
  if (static_cast<int>(lru_.size()) > capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

bool FallbackCache::Fresh(int key, int64_t now_ns, int64_t ttl_ns) {
  MutexLock lock(&mu_);
  auto it = index_.find(key);
  return it != index_.end() && now_ns - it->second->second <= ttl_ns;
}

DependencyRuntime::DependencyRuntime(const DependencyConfig& c)
    : config(&c), faults(c.faults), retry(c.retry ? *c.retry : SingleAttempt()) {
  if (c.breaker) breaker = std::make_unique<CircuitBreaker>(*c.breaker);
  if (c.token_bucket) {
    auto b = std::make_unique<TokenBucketBudget>(*c.token_bucket);
    token_bucket = b.get();
    budget = std::move(b);
  } else if (c.ratio_budget) {
    auto b = std::make_unique<RatioBudget>(*c.ratio_budget);
    ratio_budget = b.get();
    budget = std::move(b);
  }
  if (c.bulkhead) bulkhead = std::make_unique<Bulkhead>(*c.bulkhead);
  if (c.throttle) throttle = std::make_unique<AdaptiveThrottle>(*c.throttle);
  if (c.fallback.kind == FallbackConfig::Kind::kCache ||
      c.fallback.kind == FallbackConfig::Kind::kCacheOrDefault) {
    cache = std::make_unique<FallbackCache>(c.fallback.cache_capacity);
  }
}

OrderFlow::OrderFlow(std::vector<DependencyRuntime>* deps, std::vector<FlowStats>* stats, int key,
                     int64_t deadline_ns)
    : deps_(deps), stats_(stats), key_(key), deadline_ns_(deadline_ns) {}

FlowAction OrderFlow::Begin(int64_t now_ns, RandomStream& rng) {
  handoffs_ = 0;
  dep_ = 0;
  if (deps_->empty()) return Finish(OrderStatus::kCompleted, FailReason::kNone);
  return StartDependency(now_ns, rng);
}

FlowAction OrderFlow::StartDependency(int64_t now_ns, RandomStream& rng) {
  DependencyRuntime& d = (*deps_)[dep_];
  dep_committed_ = false;
  if (d.bulkhead) {
    switch (d.bulkhead->TryAcquire()) {
      case BulkheadDecision::kAdmitted:
        holds_bulkhead_ = true;
        break;
      case BulkheadDecision::kMustWait: {
        int64_t until_ns = deadline_ns_;
        const int64_t max_wait_ns = d.bulkhead->config().max_wait_ns;
        if (max_wait_ns >= 0) until_ns = std::min(until_ns, now_ns + max_wait_ns);
        return {FlowAction::Kind::kWaitBulkhead, dep_, until_ns, false};
      }
      case BulkheadDecision::kRejected:
        ++(*stats_)[dep_].rejected_bulkhead;
        last_outcome_ = Outcome::Of(OutcomeKind::kBulkheadFull);
        return FinishDependency(now_ns, false, FailReason::kPermanent, rng);
    }
  }
  return AfterBulkhead(now_ns, rng);
}

FlowAction OrderFlow::AfterBulkhead(int64_t now_ns, RandomStream& rng) {
  DependencyRuntime& d = (*deps_)[dep_];
  if (d.breaker && d.config->composition == Composition::kBreakerOutsideRetry) {
    const BreakerPermit p = d.breaker->Allow(now_ns);
    if (!p.admitted) {
      ++(*stats_)[dep_].rejected_breaker;
      last_outcome_ = Outcome::Of(p.rejection);
      return FinishDependency(now_ns, false, FailReason::kBreakerOpen, rng);
    }
    holds_breaker_ = true;
    breaker_token_ = p.token;
    breaker_start_ns_ = now_ns;
  }
  loop_.emplace(d.retry, d.budget.get(), deadline_ns_);
  return StartAttempt(now_ns, rng);
}

FlowAction OrderFlow::StartAttempt(int64_t now_ns, RandomStream& rng) {
  DependencyRuntime& d = (*deps_)[dep_];
  FlowStats& s = (*stats_)[dep_];
  if (!loop_->OnAttemptStart(now_ns)) {
    ++s.retry_ends[static_cast<size_t>(RetryEndReason::kDeadline)];
    last_outcome_ = Outcome::Of(OutcomeKind::kDeadlineExceeded);
    return FinishDependency(now_ns, false, FailReason::kDeadline, rng);
  }
  ++attempts_;
  if (loop_->attempts() > 1) ++s.retries;
  if (d.throttle && !d.throttle->Allow(now_ns, rng.Uniform01())) {
    ++s.rejected_throttle;
    return EndAttempt(now_ns, Outcome::Of(OutcomeKind::kThrottled), rng);
  }
  if (d.breaker && d.config->composition == Composition::kRetryOutsideBreaker) {
    const BreakerPermit p = d.breaker->Allow(now_ns);
    if (!p.admitted) {
      ++s.rejected_breaker;
      return EndAttempt(now_ns, Outcome::Of(p.rejection), rng);
    }
    holds_breaker_ = true;
    breaker_token_ = p.token;
    breaker_start_ns_ = now_ns;
  }
  ++s.calls;
  attempt_start_ns_ = now_ns;
  FlowAction a{FlowAction::Kind::kAttempt, dep_, kNoDeadline, false};
  if (d.config->attempt_timeout_ns > 0) a.until_ns = now_ns + d.config->attempt_timeout_ns;
  if (deadline_ns_ != kNoDeadline && deadline_ns_ <= a.until_ns) {
    a.until_ns = deadline_ns_;
    a.until_is_deadline = true;
  }
  return a;
}

FlowAction OrderFlow::OnAttemptDone(int64_t now_ns, const Outcome& outcome, bool committed,
                                    RandomStream& rng) {
  handoffs_ = 0;
  DependencyRuntime& d = (*deps_)[dep_];
  if (committed && d.config->charges) {
    ++charges_;
    // With an idempotency key the ledger applies the dependency's effect once per order.
    if (!d.config->idempotency_keys || !dep_committed_) ++applied_;
  }
  if (committed) dep_committed_ = true;
  if (!outcome.ok()) ++(*stats_)[dep_].failures;
  if (d.throttle) d.throttle->RecordOutcome(now_ns, outcome);
  if (holds_breaker_ && d.config->composition == Composition::kRetryOutsideBreaker) {
    d.breaker->Record(breaker_token_, BreakerResultOf(outcome), now_ns, now_ns - breaker_start_ns_);
    holds_breaker_ = false;
  }
  return EndAttempt(now_ns, outcome, rng);
}

FlowAction OrderFlow::EndAttempt(int64_t now_ns, const Outcome& outcome, RandomStream& rng) {
  last_outcome_ = outcome;
  const RetryStep step = loop_->OnAttemptEnd(outcome, now_ns, rng.Uniform01());
  if (step.retry()) return {FlowAction::Kind::kSleep, dep_, now_ns + step.delay_ns, false};
  ++(*stats_)[dep_].retry_ends[static_cast<size_t>(step.reason)];
  switch (step.reason) {
    case RetryEndReason::kSucceeded:
      return FinishDependency(now_ns, true, FailReason::kNone, rng);
    case RetryEndReason::kExhausted:
      return FinishDependency(now_ns, false, FailReason::kExhausted, rng);
    case RetryEndReason::kBudget:
      return FinishDependency(now_ns, false, FailReason::kBudget, rng);
    case RetryEndReason::kDeadline:
      return FinishDependency(now_ns, false, FailReason::kDeadline, rng);
    case RetryEndReason::kPermanent:
      break;
  }
  FailReason reason = FailReason::kNonRetryable;
  if (IsBreakerRejection(outcome)) {
    reason = FailReason::kBreakerOpen;
  } else if (outcome.IsLocalRejection()) {
    reason = FailReason::kPermanent;
  } else if (outcome.kind == OutcomeKind::kCancelled) {
    reason = FailReason::kShutdown;
  }
  return FinishDependency(now_ns, false, reason, rng);
}

FlowAction OrderFlow::OnSleepDone(int64_t now_ns, RandomStream& rng) {
  handoffs_ = 0;
  return StartAttempt(now_ns, rng);
}

FlowAction OrderFlow::OnBulkheadAdmitted(int64_t now_ns, RandomStream& rng) {
  handoffs_ = 0;
  holds_bulkhead_ = true;
  return AfterBulkhead(now_ns, rng);
}

FlowAction OrderFlow::OnBulkheadTimeout(int64_t now_ns, RandomStream& rng) {
  handoffs_ = 0;
  ++(*stats_)[dep_].rejected_bulkhead;
  last_outcome_ = Outcome::Of(OutcomeKind::kBulkheadFull);
  const bool deadline = deadline_ns_ != kNoDeadline && now_ns >= deadline_ns_;
  return FinishDependency(now_ns, false, deadline ? FailReason::kDeadline : FailReason::kPermanent,
                          rng);
}

void OrderFlow::ReleaseBulkhead() {
  if (!holds_bulkhead_) return;
  holds_bulkhead_ = false;
  if ((*deps_)[dep_].bulkhead->Release() == BulkheadRelease::kHandedOff) handoffs_ |= 1u << dep_;
}

FlowAction OrderFlow::FinishDependency(int64_t now_ns, bool ok, FailReason reason,
                                       RandomStream& rng) {
  DependencyRuntime& d = (*deps_)[dep_];
  if (holds_breaker_) {
    // Breaker outside the retry loop: the loop's final result is the one call it admitted.
    d.breaker->Record(breaker_token_, ok ? CallResult::kSuccess : BreakerResultOf(last_outcome_),
                      now_ns, now_ns - breaker_start_ns_);
    holds_breaker_ = false;
  }
  loop_.reset();
  ReleaseBulkhead();
  if (ok) {
    if (d.cache) d.cache->Put(key_, now_ns);
  } else {
    // A fallback stands in for an unhealthy dependency, not for a caller who stopped waiting:
    // once the order's deadline has passed (or the retry loop gave up because of it) or the
    // order was cancelled, a degraded success would report an order nobody can receive as
    // served, and would hide the timeout (the rule of seed 002's TryWithFallback).
    const bool out_of_time =
        reason == FailReason::kDeadline || (deadline_ns_ != kNoDeadline && now_ns >= deadline_ns_);
    if (reason == FailReason::kShutdown) return Finish(OrderStatus::kFailed, reason);
    bool absorbed = false;
    switch (d.config->fallback.kind) {
      case FallbackConfig::Kind::kNone:
        break;
      case FallbackConfig::Kind::kCache:
        absorbed = d.cache->Fresh(key_, now_ns, d.config->fallback.cache_ttl_ns);
        break;
      case FallbackConfig::Kind::kDefault:
      case FallbackConfig::Kind::kCacheOrDefault:
        absorbed = true;
        break;
    }
    if (absorbed && out_of_time) return Finish(OrderStatus::kFailed, FailReason::kDeadline);
    if (!absorbed) return Finish(OrderStatus::kFailed, reason);
    ++(*stats_)[dep_].fallbacks;
    degraded_ = true;
  }
  if (++dep_ == static_cast<int>(deps_->size())) {
    --dep_;
    return Finish(OrderStatus::kCompleted, FailReason::kNone);
  }
  return StartDependency(now_ns, rng);
}

FlowAction OrderFlow::Finish(OrderStatus status, FailReason reason) {
  status_ = status;
  reason_ = reason;
  // Degraded describes a success served partly from fallbacks: an order that failed later (a
  // deadline at the next dependency, say) is a failure, not a degraded one.
  if (status != OrderStatus::kCompleted) degraded_ = false;
  return {FlowAction::Kind::kDone, dep_, 0, false};
}

uint32_t OrderFlow::Cancel(int64_t now_ns) {
  handoffs_ = 0;
  if (IsTerminal(status_)) return 0;
  DependencyRuntime& d = (*deps_)[dep_];
  if (holds_breaker_) {
    d.breaker->Record(breaker_token_, CallResult::kIgnored, now_ns, now_ns - breaker_start_ns_);
    holds_breaker_ = false;
  }
  loop_.reset();
  ReleaseBulkhead();
  status_ = OrderStatus::kCancelled;
  reason_ = FailReason::kShutdown;
  degraded_ = false;
  return handoffs_;
}

}  // namespace rlab
