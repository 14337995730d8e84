#include "rlab/model/order_flow.h"

#include <algorithm>
#include <array>
#include <limits>

namespace rlab {
namespace {

constexpr std::array<std::string_view, kNumOrderStatuses> kStatusNames = {
    "pending", "queued", "processing", "completed", "failed", "rejected", "expired", "cancelled"};

constexpr std::array<std::string_view, kNumFailReasons> kReasonNames = {"",
                                                                        "exhausted",
                                                                        "permanent",
                                                                        "breaker_open",
                                                                        "budget",
                                                                        "deadline",
                                                                        "non_retryable",
                                                                        "queue_full",
                                                                        "shutdown",
                                                                        "shed",
                                                                        "queue_delay",
                                                                        "limited",
                                                                        "rate_limited"};

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

LimitSampleKind IntakeLimitSample(OrderStatus status, FailReason reason) {
  if (status == OrderStatus::kCancelled) return LimitSampleKind::kIgnore;
  if (status == OrderStatus::kExpired) return LimitSampleKind::kDropped;
  if (status == OrderStatus::kFailed && reason == FailReason::kDeadline) {
    return LimitSampleKind::kDropped;
  }
  return LimitSampleKind::kSuccess;
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
  if (c.hedge) {
    hedger = std::make_unique<Hedger>(*c.hedge);
    max_copies = 1 + c.hedge->max_hedges;
  } else if (c.fanout) {
    max_copies = c.fanout->copies;
  }
  uses_rounds = c.hedge.has_value() || c.fanout.has_value();
  if (c.replicas) replicas = std::make_unique<ReplicaPool>(*c.replicas, c.faults);
  // Engine time starts at 0; the adaptive mode's rate clock starts with it.
  if (c.aws_retry) aws_retry = std::make_unique<AwsRetryPolicy>(*c.aws_retry, 0);
  if (c.limit) limiter = std::make_unique<ConcurrencyLimiter>(ToConcurrencyLimitConfig(*c.limit));
  if (c.rate_limit) rate_gate = std::make_unique<RateGate>(*c.rate_limit);
}

OrderFlow::OrderFlow(std::vector<DependencyRuntime>* deps, std::vector<FlowStats>* stats, int key,
                     int64_t deadline_ns, int first_dep, int num_deps)
    : deps_(deps),
      stats_(stats),
      key_(key),
      deadline_ns_(deadline_ns),
      first_dep_(first_dep),
      end_dep_(num_deps < 0 ? static_cast<int>(deps->size()) : first_dep + num_deps) {}

FlowAction OrderFlow::Begin(int64_t now_ns, RandomStream& rng) {
  handoffs_ = 0;
  dep_ = first_dep_;
  if (end_dep_ == first_dep_) return Finish(OrderStatus::kCompleted, FailReason::kNone);
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
  aws_.Reset();
  return StartAttempt(now_ns, rng);
}

FlowAction OrderFlow::StartAttempt(int64_t now_ns, RandomStream& rng) {
  DependencyRuntime& d = (*deps_)[dep_];
  FlowStats& s = (*stats_)[dep_];
  if (d.aws_retry) {  // the adaptive mode's send token: now, after a wait, or refused
    const AwsRetryCall::SendDecision send = aws_.BeforeSend(*d.aws_retry, now_ns);
    if (send.send == AwsRetryCall::Send::kWait) {
      return {FlowAction::Kind::kSleep, dep_, now_ns + send.wait_ns, false};
    }
    if (send.send == AwsRetryCall::Send::kRefused) {
      ++s.rejected_throttle;
      return EndAttempt(now_ns, Outcome::Of(OutcomeKind::kThrottled), rng);
    }
  }
  if (d.rate_gate && !rate_reserved_) {
    // The rate limit paces calls (a hedged round is one call): a permit due within max_wait
    // (and before the deadline) delays the call, any other refuses it for good.
    int64_t cap_ns = std::numeric_limits<int64_t>::max();
    if (deadline_ns_ != kNoDeadline) cap_ns = std::max<int64_t>(0, deadline_ns_ - now_ns);
    const std::optional<int64_t> wait_ns = d.rate_gate->Reserve(key_, now_ns, cap_ns);
    if (!wait_ns) {
      ++s.rejected_rate_limit;
      last_outcome_ = Outcome::Of(OutcomeKind::kThrottled);
      return FinishDependency(now_ns, false, FailReason::kRateLimited, rng);
    }
    if (*wait_ns > 0) {
      ++s.rate_limit_waits;
      rate_reserved_ = true;
      return {FlowAction::Kind::kSleep, dep_, now_ns + *wait_ns, false};
    }
  }
  rate_reserved_ = false;
  if (!loop_->OnAttemptStart(now_ns)) {
    ++s.retry_ends[static_cast<size_t>(RetryEndReason::kDeadline)];
    last_outcome_ = Outcome::Of(OutcomeKind::kDeadlineExceeded);
    return FinishDependency(now_ns, false, FailReason::kDeadline, rng);
  }
  if (d.rounds()) {
    // The retry loop sees one attempt per round; the round's copies are attempts for the
    // breaker, the throttle and the per-attempt timeout.
    if (loop_->attempts() > 1) ++s.retries;
    return StartRound(now_ns, rng);
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
  if (d.limiter) {
    // Last before the call, so that the permit's RTT is the call's own.
    std::optional<LimitToken> t = d.limiter->TryAcquire(now_ns);
    if (!t) {
      ++s.rejected_limit;
      if (holds_breaker_ && d.config->composition == Composition::kRetryOutsideBreaker) {
        d.breaker->Record(breaker_token_, CallResult::kIgnored, now_ns, 0);
        holds_breaker_ = false;
      }
      limited_ = true;
      // A local capacity rejection, as a full bulkhead's: permanent for the retry loop.
      return EndAttempt(now_ns, Outcome::Of(OutcomeKind::kBulkheadFull), rng);
    }
    limit_token_ = *t;
    holds_limit_ = true;
  }
  ++s.calls;
  attempt_start_ns_ = now_ns;
  outstanding_ = 1;
  return CopyAction(1, now_ns);
}

FlowAction OrderFlow::CopyAction(uint32_t launch, int64_t now_ns) const {
  const DependencyRuntime& d = (*deps_)[dep_];
  FlowAction a{FlowAction::Kind::kAttempt, dep_, kNoDeadline, false};
  a.launch = launch;
  if (d.config->attempt_timeout_ns > 0) a.until_ns = now_ns + d.config->attempt_timeout_ns;
  if (deadline_ns_ != kNoDeadline && deadline_ns_ <= a.until_ns) {
    a.until_ns = deadline_ns_;
    a.until_is_deadline = true;
  }
  return a;
}

// Rounds. The rules (docs/request_patterns.md):
// - every copy is an attempt for the breaker (retry-outside-breaker: each takes its own permit
//   and records its own result; a cancelled copy records "ignored"), for the throttle and for
//   the per-attempt timeout; with breaker-outside-retry the breaker admits the whole loop once;
// - the retry loop (and its retry budget) counts rounds: a hedged round fails only when every
//   copy it sent failed, a fan-out round as soon as the quorum is out of reach, and only then
//   may the retry loop back off and start a new round. gRFC A6 ("Client Retries") makes hedging
//   and retries mutually exclusive per method and sends the next hedge at once after a
//   non-fatal failure; the lab lets both compose, and leaves failures to the retry policy;
// - the round's winner decides it at once: the other copies are cancelled (their server work
//   goes on and is counted as wasted by the engine).
FlowAction OrderFlow::StartRound(int64_t now_ns, RandomStream& rng) {
  DependencyRuntime& d = (*deps_)[dep_];
  if (static_cast<int>(copies_.size()) < d.max_copies) copies_.resize(d.max_copies);
  next_copy_ = 0;
  round_ok_ = 0;
  round_failed_ = 0;
  outstanding_ = 0;
  next_hedge_ns_ = kNoDeadline;
  if (d.config->fanout) {
    const FanOutConfig& f = *d.config->fanout;
    uint32_t launch = 0;
    Outcome rejection;
    for (int c = 0; c < f.copies; ++c) {
      if (std::optional<Outcome> r = LaunchCopy(c, now_ns, rng)) {
        ++round_failed_;
        rejection = *r;
      } else {
        launch |= 1u << c;
      }
    }
    if (round_failed_ > f.copies - f.quorum) {
      // The quorum is out of reach before anything left: the admitted copies are not sent.
      CancelCopies(now_ns);
      return EndAttempt(now_ns, rejection, rng);
    }
    return CopyAction(launch, now_ns);
  }
  d.hedger->OnCall(now_ns);
  if (std::optional<Outcome> r = LaunchCopy(0, now_ns, rng)) return EndAttempt(now_ns, *r, rng);
  FlowAction a = CopyAction(1, now_ns);
  next_hedge_ns_ = now_ns + d.hedger->DelayNs();
  // A hedge at or after the deadline could not be answered in time.
  if (deadline_ns_ != kNoDeadline && next_hedge_ns_ >= deadline_ns_) next_hedge_ns_ = kNoDeadline;
  a.hedge_at_ns = next_hedge_ns_;
  return a;
}

std::optional<Outcome> OrderFlow::LaunchCopy(int copy, int64_t now_ns, RandomStream& rng) {
  DependencyRuntime& d = (*deps_)[dep_];
  FlowStats& s = (*stats_)[dep_];
  next_copy_ = copy + 1;
  ++attempts_;
  if (d.throttle && !d.throttle->Allow(now_ns, rng.Uniform01())) {
    ++s.rejected_throttle;
    return Outcome::Of(OutcomeKind::kThrottled);
  }
  Copy& cp = copies_[copy];
  cp.holds_breaker = false;
  if (d.breaker && d.config->composition == Composition::kRetryOutsideBreaker) {
    const BreakerPermit p = d.breaker->Allow(now_ns);
    if (!p.admitted) {
      ++s.rejected_breaker;
      return Outcome::Of(p.rejection);
    }
    cp.holds_breaker = true;
    cp.breaker_token = p.token;
  }
  cp.holds_limit = false;
  if (d.limiter) {
    // Each copy is a call in flight and takes its own permit, last before it is sent (as a
    // plain attempt's). A refused copy is a local capacity rejection of that copy alone.
    std::optional<LimitToken> t = d.limiter->TryAcquire(now_ns);
    if (!t) {
      ++s.rejected_limit;
      if (cp.holds_breaker) {
        d.breaker->Record(cp.breaker_token, CallResult::kIgnored, now_ns, 0);
        cp.holds_breaker = false;
      }
      limited_ = true;
      return Outcome::Of(OutcomeKind::kBulkheadFull);
    }
    cp.limit_token = *t;
    cp.holds_limit = true;
  }
  ++s.calls;
  cp.start_ns = now_ns;
  outstanding_ |= 1u << copy;
  return std::nullopt;
}

FlowAction OrderFlow::OnHedgeTimer(int64_t now_ns, RandomStream& rng) {
  handoffs_ = 0;
  const FlowAction wait{FlowAction::Kind::kWait, dep_, 0, false};
  if (outstanding_ == 0 || next_hedge_ns_ == kNoDeadline || now_ns < next_hedge_ns_) return wait;
  DependencyRuntime& d = (*deps_)[dep_];
  FlowStats& s = (*stats_)[dep_];
  next_hedge_ns_ = kNoDeadline;
  if (!d.hedger->TryHedge(now_ns)) {
    ++s.hedges_denied;
    return wait;
  }
  const int c = next_copy_;
  // Refused locally (breaker open, throttled): no more hedges for this call; the copies already
  // sent go on.
  if (LaunchCopy(c, now_ns, rng).has_value()) return wait;
  ++s.hedges;
  FlowAction a = CopyAction(1u << c, now_ns);
  if (next_copy_ < d.max_copies) {
    next_hedge_ns_ = now_ns + d.hedger->DelayNs();
    if (deadline_ns_ != kNoDeadline && next_hedge_ns_ >= deadline_ns_) {
      next_hedge_ns_ = kNoDeadline;
    }
  }
  a.hedge_at_ns = next_hedge_ns_;
  return a;
}

FlowAction OrderFlow::OnCopyDone(int64_t now_ns, const Outcome& outcome, int copy,
                                 RandomStream& rng) {
  DependencyRuntime& d = (*deps_)[dep_];
  outstanding_ &= ~(1u << copy);
  const FanOutConfig* fanout = d.config->fanout ? &*d.config->fanout : nullptr;
  if (outcome.ok()) {
    if (d.hedger) d.hedger->RecordLatency(now_ns - copies_[copy].start_ns);
    ++round_ok_;
    if (round_ok_ >= (fanout ? fanout->quorum : 1)) {
      if (d.hedger && copy > 0) ++(*stats_)[dep_].hedges_won;
      CancelCopies(now_ns);
      return EndAttempt(now_ns, outcome, rng);
    }
    return {FlowAction::Kind::kWait, dep_, 0, false};
  }
  ++round_failed_;
  const bool lost = fanout ? round_failed_ > fanout->copies - fanout->quorum : outstanding_ == 0;
  if (!lost) return {FlowAction::Kind::kWait, dep_, 0, false};
  CancelCopies(now_ns);
  return EndAttempt(now_ns, outcome, rng);
}

void OrderFlow::CancelCopies(int64_t now_ns) {
  DependencyRuntime& d = (*deps_)[dep_];
  for (uint32_t mask = outstanding_; mask != 0; mask &= mask - 1) {
    Copy& cp = copies_[__builtin_ctz(mask)];
    if (d.hedger) {
      // A copy cancelled after at least the hedge delay is known to be slower than the delay's
      // quantile: recording its elapsed time (a lower bound of its latency) keeps its rank. Left
      // out, the slow copies that hedges cut short would bias the quantile low, hedging more
      // and cutting more of them short.
      const int64_t elapsed_ns = now_ns - cp.start_ns;
      if (elapsed_ns >= d.hedger->DelayNs()) d.hedger->RecordLatency(elapsed_ns);
    }
    if (cp.holds_breaker) {
      // Cancelled, not failed: the breaker hears nothing about the copy (and frees its permit).
      d.breaker->Record(cp.breaker_token, CallResult::kIgnored, now_ns, now_ns - cp.start_ns);
      cp.holds_breaker = false;
    }
    // Cancelled: its latency says nothing about the dependency.
    ReleaseCopyLimit(__builtin_ctz(mask), now_ns, nullptr, nullptr);
    ++(*stats_)[dep_].cancelled;
  }
  next_hedge_ns_ = kNoDeadline;
  outstanding_ = 0;
}

FlowAction OrderFlow::OnAttemptDone(int64_t now_ns, const Outcome& outcome, bool committed,
                                    RandomStream& rng, int copy) {
  handoffs_ = 0;
  DependencyRuntime& d = (*deps_)[dep_];
  if (committed && d.config->charges) {
    ++charges_;
    // With an idempotency key the ledger applies the dependency's effect once per order.
    if (!d.config->idempotency_keys || !dep_committed_) ++applied_;
  }
  if (committed) dep_committed_ = true;
  if (IsBreakerRejection(outcome)) {
    // The replicas' own breakers refused the attempt (ReplicaPool::kBreakersOpen): nobody was
    // called. Counted as a shared breaker's refusal is: a rejection, not a call.
    FlowStats& s = (*stats_)[dep_];
    --s.calls;
    ++s.rejected_breaker;
    if (d.hedger && copy > 0) {
      // As a hedge the shared breaker refuses: not sent, and no more hedges for this call.
      --s.hedges;
      next_hedge_ns_ = kNoDeadline;
    }
  } else if (outcome.ok()) {
    ++(*stats_)[dep_].successes;
  } else {
    ++(*stats_)[dep_].failures;
  }
  if (d.throttle) d.throttle->RecordOutcome(now_ns, outcome);
  if (d.rounds()) {
    Copy& cp = copies_[copy];
    if (cp.holds_breaker) {
      d.breaker->Record(cp.breaker_token, BreakerResultOf(outcome), now_ns, now_ns - cp.start_ns);
      cp.holds_breaker = false;
    }
    ReleaseCopyLimit(copy, now_ns, &outcome, &rng);
    return OnCopyDone(now_ns, outcome, copy, rng);
  }
  outstanding_ = 0;
  ReleaseLimit(now_ns, &outcome, &rng);
  if (holds_breaker_ && d.config->composition == Composition::kRetryOutsideBreaker) {
    d.breaker->Record(breaker_token_, BreakerResultOf(outcome), now_ns, now_ns - breaker_start_ns_);
    holds_breaker_ = false;
  }
  return EndAttempt(now_ns, outcome, rng);
}

FlowAction OrderFlow::EndAttempt(int64_t now_ns, const Outcome& outcome, RandomStream& rng) {
  last_outcome_ = outcome;
  DependencyRuntime& d = (*deps_)[dep_];
  const RetryStep step = d.aws_retry ? aws_.OnAttemptEnd(*d.aws_retry, loop_->attempts(), outcome,
                                                         now_ns, rng.Uniform01(), deadline_ns_)
                                     : loop_->OnAttemptEnd(outcome, now_ns, rng.Uniform01());
  if (step.retry()) return {FlowAction::Kind::kSleep, dep_, now_ns + step.delay_ns, false};
  ++(*stats_)[dep_].retry_ends[static_cast<size_t>(step.reason)];
  if (step.reason == RetryEndReason::kSucceeded) {
    return FinishDependency(now_ns, true, FailReason::kNone, rng);
  }
  return FinishDependency(now_ns, false, RetryEndFailReason(step.reason, outcome, limited_), rng);
}

FailReason RetryEndFailReason(RetryEndReason end, const Outcome& outcome, bool limited) {
  switch (end) {
    case RetryEndReason::kSucceeded:
      return FailReason::kNone;
    case RetryEndReason::kExhausted:
      return FailReason::kExhausted;
    case RetryEndReason::kBudget:
      return FailReason::kBudget;
    case RetryEndReason::kDeadline:
      return FailReason::kDeadline;
    case RetryEndReason::kPermanent:
      break;
  }
  if (limited && outcome.kind == OutcomeKind::kBulkheadFull) return FailReason::kLimited;
  if (IsBreakerRejection(outcome)) return FailReason::kBreakerOpen;
  if (outcome.IsLocalRejection()) return FailReason::kPermanent;
  if (outcome.kind == OutcomeKind::kCancelled) return FailReason::kShutdown;
  return FailReason::kNonRetryable;
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
  if ((*deps_)[dep_].bulkhead->Release() == BulkheadRelease::kHandedOff) {
    handoffs_ |= 1u << (dep_ - first_dep_);
  }
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
  if (++dep_ == end_dep_) {
    --dep_;
    return Finish(OrderStatus::kCompleted, FailReason::kNone);
  }
  return StartDependency(now_ns, rng);
}

void OrderFlow::ReleaseLimit(int64_t now_ns, const Outcome* outcome, RandomStream* rng) {
  if (!holds_limit_) return;
  holds_limit_ = false;
  ConcurrencyLimiter& limiter = *(*deps_)[dep_].limiter;
  // Cancelled (shutdown): the attempt tells nothing about the dependency.
  const LimitSampleKind kind =
      outcome == nullptr ? LimitSampleKind::kIgnore : ClientLimitSample(*outcome);
  switch (kind) {
    case LimitSampleKind::kSuccess:
      limiter.OnSuccess(limit_token_, now_ns, rng->Uniform01());
      break;
    case LimitSampleKind::kDropped:
      limiter.OnDropped(limit_token_, now_ns, rng->Uniform01());
      break;
    case LimitSampleKind::kIgnore:
      limiter.OnIgnore(limit_token_);
      break;
  }
}

void OrderFlow::ReleaseCopyLimit(int copy, int64_t now_ns, const Outcome* outcome,
                                 RandomStream* rng) {
  Copy& cp = copies_[copy];
  if (!cp.holds_limit) return;
  cp.holds_limit = false;
  ConcurrencyLimiter& limiter = *(*deps_)[dep_].limiter;
  const LimitSampleKind kind =
      outcome == nullptr ? LimitSampleKind::kIgnore : ClientLimitSample(*outcome);
  switch (kind) {
    case LimitSampleKind::kSuccess:
      limiter.OnSuccess(cp.limit_token, now_ns, rng->Uniform01());
      break;
    case LimitSampleKind::kDropped:
      limiter.OnDropped(cp.limit_token, now_ns, rng->Uniform01());
      break;
    case LimitSampleKind::kIgnore:
      limiter.OnIgnore(cp.limit_token);
      break;
  }
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
  if (d.rounds()) CancelCopies(now_ns);
  ReleaseLimit(now_ns, nullptr, nullptr);
  outstanding_ = 0;
  loop_.reset();
  ReleaseBulkhead();
  status_ = OrderStatus::kCancelled;
  reason_ = FailReason::kShutdown;
  degraded_ = false;
  return handoffs_;
}

}  // namespace rlab
