#ifndef RLAB_POLICY_CIRCUIT_BREAKER_H_
#define RLAB_POLICY_CIRCUIT_BREAKER_H_

// A whole circuit breaker in one file pair: closed / open / half-open, with consecutive-failure,
// failure-rate and slow-call-rate trip policies over a count or time window, two distinct
// rejection reasons, generations, and listeners dispatched in order outside the lock.
//
// The breaker is a pure state machine: every method takes `now_ns`; it never reads a clock,
// sleeps or starts a thread. It guards its own state with a mutex because the live engine shares
// one breaker between many workers.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rlab/core/mutex.h"
#include "rlab/core/outcome.h"
#include "rlab/core/schema.h"
#include "rlab/core/sliding_window.h"

namespace rlab {

// The three states of a breaker.
enum class BreakerState : uint8_t { kClosed = 0, kOpen = 1, kHalfOpen = 2 };

// "closed", "open" or "half_open".
std::string_view BreakerStateName(BreakerState state);

// How a guarded call ended, as far as the breaker is concerned.
enum class CallResult : uint8_t {
  kSuccess = 0,
  kFailure = 1,
  kIgnored = 2,  // caller cancellation or an excluded outcome: neither success nor failure
};

// What the breaker counts for an attempt's outcome, by the one table (ClassifyOutcome): dependency
// faults (timeouts, resets, errors, 408, 429, 5xx) are failures; the caller giving up and local
// rejections are ignored; any other answer, 4xx included, shows a healthy dependency.
constexpr CallResult BreakerResultOf(const Outcome& outcome) {
  switch (ClassifyOutcome(outcome)) {
    case OutcomeClass::kSuccess:
    case OutcomeClass::kCallerFault:
      return CallResult::kSuccess;
    case OutcomeClass::kDependencyFault:
      return CallResult::kFailure;
    case OutcomeClass::kCallerGaveUp:
    case OutcomeClass::kLocalRejection:
      return CallResult::kIgnored;
  }
  return CallResult::kFailure;
}

// Which window the rate-based trip policies look at.
enum class WindowKind : uint8_t { kCount = 0, kTime = 1 };

// The breaker's parameters. Any enabled trip policy can open the breaker.
struct BreakerConfig {
  // Opens on the N-th consecutive failure; 0 disables this policy.
  int consecutive_failures = 5;
  // Opens when failures / calls >= this over the window; 0 disables. In (0, 1].
  double failure_rate_threshold = 0.0;
  // Opens when slow calls / calls >= this over the window; 0 disables. In (0, 1].
  double slow_call_rate_threshold = 0.0;
  // A call that takes longer than this is slow (required when the slow-call policy is on).
  int64_t slow_call_duration_ns = 0;
  WindowKind window = WindowKind::kCount;
  // Count window: the last `window_size` calls.
  int window_size = 100;
  // Time window: the last `window_ns`, in `window_buckets` buckets.
  int64_t window_ns = 60 * int64_t{1'000'000'000};
  int window_buckets = 10;
  // The rate policies stay quiet until the window holds at least this many calls.
  int minimum_calls = 10;
  // How long the breaker stays open before the next admission moves it to half-open.
  int64_t open_for_ns = 5 * int64_t{1'000'000'000};
  // Each consecutive trip without closing multiplies the open duration by this (>= 1) ...
  double open_growth = 1.0;
  // ... up to this cap (>= open_for_ns; 0 means equal to open_for_ns).
  int64_t max_open_for_ns = 0;
  // Half-open admits at most this many concurrent probes.
  int half_open_max_calls = 1;
  // Half-open closes after this many successful probes; any failed probe reopens.
  int success_threshold = 1;
};

// The field table of BreakerConfig (rlab/core/schema.h): the one declaration of its fields.
const ConfigSchema<BreakerConfig>& BreakerSchema();

// Checks every field, naming the Python parameter and its allowed range on error: the table's
// ranges, then ValidateBreakerRules.
absl::Status ValidateBreakerConfig(const BreakerConfig& config);

// The rules between fields (a trip policy enabled, slow-call duration when needed, ...), for a
// config whose fields were already range-checked against the table.
absl::Status ValidateBreakerRules(const BreakerConfig& config);

// One state change, as delivered to listeners.
struct BreakerTransition {
  BreakerState from;
  BreakerState to;
  int64_t at_ns;        // the `now_ns` of the call that caused it
  uint64_t generation;  // the generation that the new state starts
};

// The answer to Allow(): admitted with a token for Record(), or rejected with a reason.
struct BreakerPermit {
  bool admitted = false;
  // kBreakerOpen or kBreakerHalfOpenFull when rejected.
  OutcomeKind rejection = OutcomeKind::kSuccess;
  // Generation and probe flag, packed: pass it back to Record() untouched.
  uint64_t token = 0;
  // When rejected as open: nanoseconds until the breaker will admit a probe.
  int64_t retry_in_ns = 0;
};

// A consistent snapshot of the breaker's state and counters (for metrics and debugging).
struct BreakerSnapshot {
  BreakerState state = BreakerState::kClosed;
  uint64_t generation = 0;
  int consecutive_failures = 0;  // current run of failures while closed
  int64_t window_calls = 0;
  int64_t window_failures = 0;
  int64_t window_slow = 0;
  int half_open_in_flight = 0;
  int half_open_successes = 0;
  int64_t open_until_ns = 0;
  int trips_in_row = 0;  // trips since the breaker last closed
  // Lifetime counters.
  int64_t admitted = 0;
  int64_t rejected_open = 0;
  int64_t rejected_half_open_full = 0;
  int64_t successes = 0;
  int64_t failures = 0;
  int64_t ignored = 0;
  int64_t stale = 0;  // results ignored because the state changed after admission
  int64_t slow = 0;
  int64_t transitions = 0;
};

// The circuit breaker. Thread-safe; listeners never run under its lock.
class CircuitBreaker {
 public:
  using Listener = std::function<void(const BreakerTransition&)>;

  // `config` must have passed ValidateBreakerConfig.
  explicit CircuitBreaker(const BreakerConfig& config);
  // Validates `config` first.
  static absl::StatusOr<std::unique_ptr<CircuitBreaker>> Create(const BreakerConfig& config);

  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  // Asks to make a call at `now_ns`. Moves open to half-open when the open period has passed.
  BreakerPermit Allow(int64_t now_ns);

  // Reports how an admitted call ended. `duration_ns` feeds the slow-call policy. A token from an
  // earlier generation is ignored (the state changed while the call ran); a probe's slot is
  // released whatever the result.
  void Record(uint64_t token, CallResult result, int64_t now_ns, int64_t duration_ns = 0);

  // The state at `now_ns`: an open breaker whose period has passed reports (and becomes)
  // half-open, so the reported state always agrees with what the next admission would see.
  BreakerState State(int64_t now_ns);

  // The state as of the last operation, without moving time.
  BreakerState PeekState() const;

  // A snapshot of state and counters at `now_ns` (time windows expire to `now_ns`).
  BreakerSnapshot Snapshot(int64_t now_ns);

  // Forces a state (an operator's override, e.g. for a chaos experiment); a new generation starts.
  void ForceState(BreakerState state, int64_t now_ns);

  // Replaces the parameters at `now_ns` (an operator turning a knob on a running breaker).
  // InvalidArgument, and nothing changes, unless ValidateBreakerConfig accepts `config`.
  // Semantics: the state and the run of trips (open_growth's exponent) are kept, and no
  // transition is reported; everything measured under the old parameters is dropped. The
  // consecutive-failure run, the window (rebuilt in the new shape) and the half-open probe slots
  // and successes reset, and a new generation starts, so results of calls admitted before are
  // ignored as stale. Why: those calls were judged by the old thresholds and slow-call duration,
  // a window of another kind or size cannot be carried over, and a lowered threshold should not
  // trip at once on history the operator may be reacting to. An open breaker's current period
  // is re-measured from when it opened with the new duration, so a shorter open_for takes effect
  // now: if the new period has already passed, the breaker moves to half-open at once (the one
  // transition Reconfigure can report, as State(now_ns) would).
  absl::Status Reconfigure(const BreakerConfig& config, int64_t now_ns);

  // Adds a listener for every later transition. Listeners run after the lock is released,
  // exactly once per transition, in transition order, one at a time. A listener may call back
  // into the breaker; transitions it causes are delivered after it returns.
  void AddListener(Listener listener);

  // Removes every listener.
  void ClearListeners();

  // The parameters in force (a copy: Reconfigure may replace them).
  BreakerConfig config() const;

  // Token helpers, for engines that keep permits in compact form.
  static uint64_t TokenGeneration(uint64_t token) { return token >> 1; }
  static bool TokenIsProbe(uint64_t token) { return (token & 1) != 0; }

 private:
  using ListenerList = std::vector<Listener>;

  // Moves to `to` at `now_ns`, starting a new generation and queueing the transition.
  void TransitionLocked(BreakerState to, int64_t now_ns) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves an expired open state to half-open.
  void MaybeHalfOpenLocked(int64_t now_ns) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies a result in the closed state and trips if a policy says so.
  void RecordClosedLocked(CallResult result, bool slow, int64_t now_ns)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t OpenDurationLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // (Re)builds the rate policies' window for config_.
  void BuildWindowLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The counters' invariants (rlab/core/invariant.h): aborts on a violation when they are on.
  void CheckInvariantsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tests reach the state through it (to break an invariant on purpose).
  friend class CircuitBreakerTestPeer;
  // Delivers queued transitions to the listeners, unless another thread already is.
  void DispatchPending();

  mutable Mutex mu_;
  BreakerConfig config_ ABSL_GUARDED_BY(mu_);
  BreakerState state_ ABSL_GUARDED_BY(mu_) = BreakerState::kClosed;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  int consecutive_failures_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<CountWindow> count_window_ ABSL_GUARDED_BY(mu_);
  std::optional<TimeWindowCounter> time_window_ ABSL_GUARDED_BY(mu_);
  int half_open_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int half_open_successes_ ABSL_GUARDED_BY(mu_) = 0;
  // Written under mu_; read without it by Allow's fast path.
  std::atomic<int64_t> open_until_ns_{0};
  int64_t opened_at_ns_ ABSL_GUARDED_BY(mu_) = 0;  // when the breaker last opened
  int trips_in_row_ ABSL_GUARDED_BY(mu_) = 0;
  BreakerSnapshot counters_ ABSL_GUARDED_BY(mu_);  // lifetime counters only
  // (generation << 2) | state, published under mu_ for Allow's lock-free fast path.
  std::atomic<uint64_t> word_{0};
  std::atomic<int64_t> admitted_{0};
  std::atomic<int64_t> rejected_open_{0};

  // Listener dispatch: transitions are queued under mu_ and delivered by one thread at a time.
  std::vector<BreakerTransition> pending_ ABSL_GUARDED_BY(mu_);
  bool dispatching_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<const ListenerList> listeners_ ABSL_GUARDED_BY(mu_);
};

// Runs `fn` through `breaker`, reading time from `clock`. `fn` returns a CallResult (or bool:
// true = success). An exception thrown by `fn` is recorded as a failure and rethrown, so a probe
// slot is never leaked. Returns the permit: callers check `admitted` to see whether fn ran.
template <typename Clock, typename Fn>
BreakerPermit GuardedCall(CircuitBreaker& breaker, const Clock& clock, Fn&& fn) {
  const int64_t start_ns = clock.NowNs();
  BreakerPermit permit = breaker.Allow(start_ns);
  if (!permit.admitted) return permit;
  CallResult result = CallResult::kFailure;
  try {
    if constexpr (std::is_same_v<decltype(fn()), bool>) {
      result = fn() ? CallResult::kSuccess : CallResult::kFailure;
    } else {
      result = fn();
    }
  } catch (...) {
    const int64_t end_ns = clock.NowNs();
    breaker.Record(permit.token, CallResult::kFailure, end_ns, end_ns - start_ns);
    throw;
  }
  const int64_t end_ns = clock.NowNs();
  breaker.Record(permit.token, result, end_ns, end_ns - start_ns);
  return permit;
}

}  // namespace rlab

#endif  // RLAB_POLICY_CIRCUIT_BREAKER_H_
