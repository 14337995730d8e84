#include "rlab/policy/circuit_breaker.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_format.h"
#include "rlab/core/clock.h"
#include "rlab/core/invariant.h"
#include "rlab/core/schema.h"
#include "rlab/core/validate.h"
#include "rlab/policy/throttle.h"

namespace rlab {
namespace {

uint64_t MakeToken(uint64_t generation, bool probe) { return (generation << 1) | (probe ? 1 : 0); }

}  // namespace

std::string_view BreakerStateName(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

namespace {
constexpr std::string_view kWindows[] = {"count", "time"};
}  // namespace

RLAB_TABLE(BreakerSchema, BreakerConfig, "Breaker", "", &ValidateBreakerRules,
           RLAB_INT(consecutive_failures, 0, kMaxCount, "calls",
                    "open on the N-th failure in a row (0 disables)"),
           RLAB_REAL(failure_rate_threshold, 0, 1, CC, "",
                     "open when failures/calls >= this over the window (0 disables)"),
           RLAB_REAL(slow_call_rate_threshold, 0, 1, CC, "",
                     "open when slow calls/calls >= this over the window (0 disables)"),
           RLAB_SECONDS(slow_call_duration, 0, kMaxS, CC, "a call that took longer is slow"),
           RLAB_CHOICE(window, kWindows, "the last window_size calls, or the last window_duration"),
           RLAB_INT(window_size, 1, kMaxCount, "calls", "calls in a count window"),
           schema::Seconds<&C::window_ns>("window_duration", 0, kMaxS, RLAB_ENDS_OC,
                                          "length of a time window"),
           RLAB_INT(window_buckets, 1, 1000, "buckets", "buckets of a time window"),
           RLAB_INT(minimum_calls, 1, kMaxCount, "calls",
                    "the rate policies wait for this many calls in the window"),
           RLAB_SECONDS(open_for, 0, kMaxS, OC, "open before the next admission becomes a probe"),
           RLAB_REAL(open_growth, 1, 1000, CC, "",
                     "each trip without closing multiplies open_for by this"),
           RLAB_SECONDS(max_open_for, 0, kMaxS, CC, "cap of the grown open_for (0: open_for)"),
           RLAB_INT(half_open_max_calls, 1, kMaxCount, "calls",
                    "concurrent probes allowed while half-open"),
           RLAB_INT(success_threshold, 1, kMaxCount, "calls", "successful probes needed to close"));

absl::Status ValidateBreakerConfig(const BreakerConfig& c) {
  return ValidateAt("", BreakerSchema(), c);
}

absl::Status ValidateBreakerRules(const BreakerConfig& c) {
  if (c.consecutive_failures == 0 && c.failure_rate_threshold == 0.0 &&
      c.slow_call_rate_threshold == 0.0) {
    return absl::InvalidArgumentError(
        "at least one trip policy must be enabled: consecutive_failures >= 1, "
        "failure_rate_threshold in (0, 1] or slow_call_rate_threshold in (0, 1], got 0, 0 and 0");
  }
  if (c.slow_call_rate_threshold > 0.0 && c.slow_call_duration_ns <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "slow_call_duration must be in (0, 1e+06] seconds when slow_call_rate_threshold is set, "
        "got %g",
        NsToSeconds(c.slow_call_duration_ns)));
  }
  if (c.max_open_for_ns != 0 && c.max_open_for_ns < c.open_for_ns) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "max_open_for must be 0 (no cap beyond open_for) or at least open_for (%g s), got %g",
        NsToSeconds(c.open_for_ns), NsToSeconds(c.max_open_for_ns)));
  }
  if (c.window != WindowKind::kTime) return absl::OkStatus();
  return ValidateBuckets("window_buckets", c.window_buckets, "window_duration", c.window_ns);
}

absl::StatusOr<std::unique_ptr<CircuitBreaker>> CircuitBreaker::Create(
    const BreakerConfig& config) {
  absl::Status s = ValidateBreakerConfig(config);
  if (!s.ok()) return s;
  return std::make_unique<CircuitBreaker>(config);
}

CircuitBreaker::CircuitBreaker(const BreakerConfig& config)
    : config_(config), listeners_(std::make_shared<const ListenerList>()) {
  MutexLock lock(&mu_);
  BuildWindowLocked();
}

void CircuitBreaker::BuildWindowLocked() {
  count_window_.reset();
  time_window_.reset();
  const bool rates = config_.failure_rate_threshold > 0.0 || config_.slow_call_rate_threshold > 0.0;
  if (rates && config_.window == WindowKind::kCount) count_window_.emplace(config_.window_size);
  if (rates && config_.window == WindowKind::kTime) {
    time_window_.emplace(config_.window_ns, config_.window_buckets);
  }
}

BreakerConfig CircuitBreaker::config() const {
  MutexLock lock(&mu_);
  return config_;
}

absl::Status CircuitBreaker::Reconfigure(const BreakerConfig& config, int64_t now_ns) {
  if (absl::Status s = ValidateBreakerConfig(config); !s.ok()) return s;
  bool queued;
  {
    MutexLock lock(&mu_);
    const size_t before = pending_.size();
    config_ = config;
    BuildWindowLocked();
    consecutive_failures_ = 0;
    half_open_in_flight_ = 0;
    half_open_successes_ = 0;
    // A new generation without a transition: calls admitted under the old parameters report
    // stale. Published like a transition so Allow's fast path hands out new-generation tokens.
    ++generation_;
    word_.store((generation_ << 2) | static_cast<uint64_t>(state_), std::memory_order_release);
    if (state_ == BreakerState::kOpen) {
      open_until_ns_.store(opened_at_ns_ + OpenDurationLocked(), std::memory_order_relaxed);
      MaybeHalfOpenLocked(now_ns);
    }
    queued = pending_.size() != before;
    CheckInvariantsLocked();
  }
  if (queued) DispatchPending();
  return absl::OkStatus();
}

BreakerPermit CircuitBreaker::Allow(int64_t now_ns) {
  BreakerPermit permit;
  // Lock-free fast paths for the two common cases, closed and open-and-not-yet-expired: the state
  // word is published under the lock, so a reader sees a state that held at some instant during
  // this call. A call admitted just before a trip records under the old generation and is
  // ignored, exactly as if it had taken the lock first.
  const uint64_t word = word_.load(std::memory_order_acquire);
  const auto fast_state = static_cast<BreakerState>(word & 3);
  if (fast_state == BreakerState::kClosed) {
    admitted_.fetch_add(1, std::memory_order_relaxed);
    permit.admitted = true;
    permit.token = MakeToken(word >> 2, false);
    return permit;
  }
  if (fast_state == BreakerState::kOpen) {
    const int64_t open_until_ns = open_until_ns_.load(std::memory_order_relaxed);
    if (now_ns < open_until_ns) {
      rejected_open_.fetch_add(1, std::memory_order_relaxed);
      permit.rejection = OutcomeKind::kBreakerOpen;
      permit.retry_in_ns = open_until_ns - now_ns;
      return permit;
    }
  }
  bool queued = false;
  {
    MutexLock lock(&mu_);
    if (state_ == BreakerState::kOpen) {
      const int64_t open_until_ns = open_until_ns_.load(std::memory_order_relaxed);
      if (now_ns < open_until_ns) {
        rejected_open_.fetch_add(1, std::memory_order_relaxed);
        permit.rejection = OutcomeKind::kBreakerOpen;
        permit.retry_in_ns = open_until_ns - now_ns;
        return permit;
      }
      TransitionLocked(BreakerState::kHalfOpen, now_ns);
      queued = true;
    }
    if (state_ == BreakerState::kClosed) {
      admitted_.fetch_add(1, std::memory_order_relaxed);
      permit.admitted = true;
      permit.token = MakeToken(generation_, false);
    } else if (half_open_in_flight_ < config_.half_open_max_calls) {
      ++half_open_in_flight_;
      admitted_.fetch_add(1, std::memory_order_relaxed);
      permit.admitted = true;
      permit.token = MakeToken(generation_, true);
    } else {
      ++counters_.rejected_half_open_full;
      permit.rejection = OutcomeKind::kBreakerHalfOpenFull;
    }
    CheckInvariantsLocked();
  }
  if (queued) DispatchPending();
  return permit;
}

void CircuitBreaker::Record(uint64_t token, CallResult result, int64_t now_ns,
                            int64_t duration_ns) {
  bool queued = false;
  {
    MutexLock lock(&mu_);
    const bool slow =
        config_.slow_call_duration_ns > 0 && duration_ns > config_.slow_call_duration_ns;
    if (TokenGeneration(token) != generation_) {
      // Admitted under an earlier state: its result says nothing about the current one, and the
      // transition already reset the probe slots it may have held.
      ++counters_.stale;
      return;
    }
    counters_.slow += slow ? 1 : 0;
    switch (result) {
      case CallResult::kSuccess:
        ++counters_.successes;
        break;
      case CallResult::kFailure:
        ++counters_.failures;
        break;
      case CallResult::kIgnored:
        ++counters_.ignored;
        break;
    }
    const size_t before = pending_.size();
    if (state_ == BreakerState::kClosed) {
      RecordClosedLocked(result, slow, now_ns);
    } else if (state_ == BreakerState::kHalfOpen && TokenIsProbe(token)) {
      // A token recorded twice (a caller's mistake) must not free a probe slot it never held.
      if (half_open_in_flight_ > 0) --half_open_in_flight_;
      if (result == CallResult::kFailure) {
        TransitionLocked(BreakerState::kOpen, now_ns);
      } else if (result == CallResult::kSuccess &&
                 ++half_open_successes_ >= config_.success_threshold) {
        TransitionLocked(BreakerState::kClosed, now_ns);
      }
    }
    queued = pending_.size() != before;
    CheckInvariantsLocked();
  }
  if (queued) DispatchPending();
}

void CircuitBreaker::RecordClosedLocked(CallResult result, bool slow, int64_t now_ns) {
  if (result == CallResult::kIgnored) return;
  const bool failure = result == CallResult::kFailure;
  consecutive_failures_ = failure ? consecutive_failures_ + 1 : 0;
  if (config_.consecutive_failures > 0 && consecutive_failures_ >= config_.consecutive_failures) {
    TransitionLocked(BreakerState::kOpen, now_ns);
    return;
  }
  int64_t calls = 0, failures = 0, slow_calls = 0;
  if (count_window_) {
    count_window_->Add(failure, slow);
    calls = count_window_->calls();
    failures = count_window_->failures();
    slow_calls = count_window_->slow();
  } else if (time_window_) {
    time_window_->AddAll(now_ns, {1, failure ? 1 : 0, slow ? 1 : 0});
    const auto& totals = time_window_->Totals(now_ns);
    calls = totals[0];
    failures = totals[1];
    slow_calls = totals[2];
  } else {
    return;
  }
  if (calls < config_.minimum_calls) return;
  const double n = static_cast<double>(calls);
  const bool rate_trip = config_.failure_rate_threshold > 0.0 &&
                         static_cast<double>(failures) / n >= config_.failure_rate_threshold;
  const bool slow_trip = config_.slow_call_rate_threshold > 0.0 &&
                         static_cast<double>(slow_calls) / n >= config_.slow_call_rate_threshold;
  if (rate_trip || slow_trip) TransitionLocked(BreakerState::kOpen, now_ns);
}

int64_t CircuitBreaker::OpenDurationLocked() const {
  if (config_.open_growth == 1.0 || trips_in_row_ <= 1) return config_.open_for_ns;
  const double cap_ns = static_cast<double>(config_.max_open_for_ns > 0 ? config_.max_open_for_ns
                                                                        : config_.open_for_ns);
  const double grown = static_cast<double>(config_.open_for_ns) *
                       std::pow(config_.open_growth, static_cast<double>(trips_in_row_ - 1));
  return static_cast<int64_t>(std::min(grown, cap_ns));
}

void CircuitBreaker::TransitionLocked(BreakerState to, int64_t now_ns) {
  const BreakerState from = state_;
  state_ = to;
  ++generation_;
  ++counters_.transitions;
  consecutive_failures_ = 0;
  half_open_in_flight_ = 0;
  half_open_successes_ = 0;
  if (count_window_) count_window_->Reset();
  if (time_window_) time_window_->Reset();
  if (to == BreakerState::kOpen) {
    ++trips_in_row_;
    opened_at_ns_ = now_ns;
    open_until_ns_.store(now_ns + OpenDurationLocked(), std::memory_order_relaxed);
  } else if (to == BreakerState::kClosed) {
    trips_in_row_ = 0;
  }
  word_.store((generation_ << 2) | static_cast<uint64_t>(to), std::memory_order_release);
  pending_.push_back({from, to, now_ns, generation_});
}

void CircuitBreaker::CheckInvariantsLocked() const {
  if constexpr (!kInvariantsOn) return;
  const bool half_open = state_ == BreakerState::kHalfOpen;
  RLAB_INVARIANT(half_open_in_flight_ >= 0 && half_open_in_flight_ <= config_.half_open_max_calls,
                 "breaker: %d half-open probes in flight, %d permitted", half_open_in_flight_,
                 config_.half_open_max_calls);
  // Reaching success_threshold closes the breaker at once.
  RLAB_INVARIANT(half_open_successes_ >= 0 && half_open_successes_ < config_.success_threshold,
                 "breaker: %d half-open successes, threshold %d", half_open_successes_,
                 config_.success_threshold);
  RLAB_INVARIANT(half_open || (half_open_in_flight_ == 0 && half_open_successes_ == 0),
                 "breaker %s: %d probes in flight and %d probe successes outside half-open",
                 BreakerStateName(state_), half_open_in_flight_, half_open_successes_);
  // Reaching consecutive_failures opens it at once; only a closed breaker counts them.
  RLAB_INVARIANT(consecutive_failures_ >= 0 &&
                     (config_.consecutive_failures == 0 ||
                      consecutive_failures_ < config_.consecutive_failures) &&
                     (state_ == BreakerState::kClosed || consecutive_failures_ == 0),
                 "breaker %s: %d consecutive failures, threshold %d", BreakerStateName(state_),
                 consecutive_failures_, config_.consecutive_failures);
  const BreakerSnapshot& c = counters_;
  RLAB_INVARIANT(c.successes >= 0 && c.failures >= 0 && c.ignored >= 0 && c.stale >= 0 &&
                     c.slow >= 0 && c.transitions >= 0 && c.rejected_half_open_full >= 0 &&
                     admitted_.load(std::memory_order_relaxed) >= 0 &&
                     rejected_open_.load(std::memory_order_relaxed) >= 0 && trips_in_row_ >= 0,
                 "breaker: a negative counter (successes %d, failures %d, ignored %d, stale %d, "
                 "slow %d, transitions %d, half-open full %d, trips in a row %d)",
                 c.successes, c.failures, c.ignored, c.stale, c.slow, c.transitions,
                 c.rejected_half_open_full, trips_in_row_);
  RLAB_INVARIANT(static_cast<uint64_t>(c.transitions) <= generation_,
                 "breaker: %d transitions but generation %d", c.transitions, generation_);
  if (count_window_) {
    RLAB_INVARIANT(count_window_->calls() <= config_.window_size,
                   "breaker: %d calls in a count window of %d", count_window_->calls(),
                   config_.window_size);
  }
}

void CircuitBreaker::MaybeHalfOpenLocked(int64_t now_ns) {
  if (state_ == BreakerState::kOpen && now_ns >= open_until_ns_.load(std::memory_order_relaxed)) {
    TransitionLocked(BreakerState::kHalfOpen, now_ns);
  }
}

BreakerState CircuitBreaker::State(int64_t now_ns) {
  BreakerState state;
  bool queued;
  {
    MutexLock lock(&mu_);
    const size_t before = pending_.size();
    MaybeHalfOpenLocked(now_ns);
    state = state_;
    queued = pending_.size() != before;
  }
  if (queued) DispatchPending();
  return state;
}

BreakerState CircuitBreaker::PeekState() const {
  MutexLock lock(&mu_);
  return state_;
}

BreakerSnapshot CircuitBreaker::Snapshot(int64_t now_ns) {
  BreakerSnapshot snap;
  bool queued;
  {
    MutexLock lock(&mu_);
    const size_t before = pending_.size();
    MaybeHalfOpenLocked(now_ns);
    queued = pending_.size() != before;
    snap = counters_;
    snap.admitted = admitted_.load(std::memory_order_relaxed);
    snap.rejected_open = rejected_open_.load(std::memory_order_relaxed);
    snap.state = state_;
    snap.generation = generation_;
    snap.consecutive_failures = consecutive_failures_;
    if (count_window_) {
      snap.window_calls = count_window_->calls();
      snap.window_failures = count_window_->failures();
      snap.window_slow = count_window_->slow();
    } else if (time_window_) {
      const auto& totals = time_window_->Totals(now_ns);
      snap.window_calls = totals[0];
      snap.window_failures = totals[1];
      snap.window_slow = totals[2];
    }
    snap.half_open_in_flight = half_open_in_flight_;
    snap.half_open_successes = half_open_successes_;
    snap.open_until_ns = open_until_ns_.load(std::memory_order_relaxed);
    snap.trips_in_row = trips_in_row_;
    CheckInvariantsLocked();
  }
  if (queued) DispatchPending();
  return snap;
}

void CircuitBreaker::ForceState(BreakerState state, int64_t now_ns) {
  {
    MutexLock lock(&mu_);
    if (state == BreakerState::kClosed) trips_in_row_ = 0;
    TransitionLocked(state, now_ns);
  }
  DispatchPending();
}

void CircuitBreaker::AddListener(Listener listener) {
  MutexLock lock(&mu_);
  auto next = std::make_shared<ListenerList>(*listeners_);
  next->push_back(std::move(listener));
  listeners_ = std::move(next);
}

void CircuitBreaker::ClearListeners() {
  MutexLock lock(&mu_);
  listeners_ = std::make_shared<const ListenerList>();
}

void CircuitBreaker::DispatchPending() {
  // One dispatcher at a time drains the queue in order; a thread that finds a dispatcher at work
  // leaves its transitions to it. This keeps listener calls outside the lock, serial, and in
  // transition order even when several threads cause transitions at once.
  for (;;) {
    std::vector<BreakerTransition> batch;
    std::shared_ptr<const ListenerList> listeners;
    {
      MutexLock lock(&mu_);
      if (dispatching_ || pending_.empty()) return;
      dispatching_ = true;
      batch.swap(pending_);
      listeners = listeners_;
    }
    for (const BreakerTransition& t : batch) {
      for (const Listener& listener : *listeners) {
        try {
          listener(t);
        } catch (...) {
          // A failing listener must not wedge the breaker or starve the other listeners.
        }
      }
    }
    MutexLock lock(&mu_);
    dispatching_ = false;
  }
}

}  // namespace rlab
