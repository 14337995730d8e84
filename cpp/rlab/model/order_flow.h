#ifndef RLAB_MODEL_ORDER_FLOW_H_
#define RLAB_MODEL_ORDER_FLOW_H_

// The per-order flow, written once and interpreted by both engines (DESIGN §1): an order calls
// its dependencies in sequence, each through its policy stack (bulkhead → breaker ↔ retry →
// per-attempt timeout). The flow never waits: it returns what the engine must do next — make an
// attempt, sleep, wait for a bulkhead slot, or nothing because the order is done — and the engine
// reports back. The simulated engine schedules events; the live engine blocks a thread.

#include <array>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "rlab/core/mutex.h"
#include "rlab/core/outcome.h"
#include "rlab/core/rng.h"
#include "rlab/model/aws_retry_call.h"
#include "rlab/model/faults.h"
#include "rlab/model/replica_pool.h"
#include "rlab/model/limits.h"
#include "rlab/model/scenario.h"
#include "rlab/policy/bulkhead.h"
#include "rlab/policy/circuit_breaker.h"
#include "rlab/policy/hedge.h"
#include "rlab/policy/retry.h"
#include "rlab/policy/retry_budget.h"
#include "rlab/policy/throttle.h"

namespace rlab {

// Where an order is in its life. The last five are terminal.
enum class OrderStatus : uint8_t {
  kPending = 0,
  kQueued,
  kProcessing,
  kCompleted,
  kFailed,
  kRejected,
  kExpired,
  kCancelled,
};
inline constexpr int kNumOrderStatuses = 8;

// "pending", "queued", "processing", "completed", "failed", "rejected", "expired", "cancelled".
std::string_view OrderStatusName(OrderStatus status);
// True for the terminal states.
inline bool IsTerminal(OrderStatus s) { return s >= OrderStatus::kCompleted; }

// Why an order failed or was rejected; kNone otherwise.
enum class FailReason : uint8_t {
  kNone = 0,
  kExhausted,     // every attempt failed with a retryable outcome
  kPermanent,     // a local rejection other than the breaker (bulkhead full, throttled)
  kBreakerOpen,   // the breaker refused (open or half-open-full)
  kBudget,        // the retry budget refused a retry
  kDeadline,      // the order's deadline passed while it was being processed
  kNonRetryable,  // the dependency answered with a non-retryable outcome (e.g. a 4xx)
  kQueueFull,     // rejected at intake: the job queue was full
  kShutdown,      // cancelled by a shutdown (live engine)
  kShed,          // rejected at intake by the load shedder (intake.shedding)
  kQueueDelay,    // rejected at dequeue by the intake's queue discipline (CoDel)
  kLimited,       // a concurrency limit refused it (intake.limit, or <dependency>.limit)
  kRateLimited,   // a rate limit refused it (intake.rate_limit, or <dependency>.rate_limit)
};
inline constexpr int kNumFailReasons = 13;

// "", "exhausted", "permanent", "breaker_open", "budget", "deadline", "non_retryable",
// "queue_full", "shutdown", "shed", "queue_delay", "limited", "rate_limited".
std::string_view FailReasonName(FailReason reason);

// How the end of an order admitted under intake.limit is sampled: completed (or failed on an
// answer) is a success, running out of time (expired, or failed on its deadline) is a drop, a
// shutdown cancellation says nothing.
LimitSampleKind IntakeLimitSample(OrderStatus status, FailReason reason);

// Why a dependency's call failed when its retry loop ended with `end` (not kSucceeded) after
// `outcome`; `limited`: the last local rejection came from the client's concurrency limit. Shared
// by OrderFlow and the simulated engine's flat path (sim/flat_run.h).
FailReason RetryEndFailReason(RetryEndReason end, const Outcome& outcome, bool limited);

// A bounded least-recently-used cache of each key's last good value time, for fallbacks.
// Thread-safe (the live engine shares it).
class FallbackCache {
 public:
  explicit FallbackCache(int capacity) : capacity_(capacity) {}
  // Remembers that `key` had a good value at `now_ns`.
  void Put(int key, int64_t now_ns);
  // Whether `key` has a value no older than `ttl_ns` at `now_ns`.
  bool Fresh(int key, int64_t now_ns, int64_t ttl_ns);

 private:
  const int capacity_;
  Mutex mu_;
  std::list<std::pair<int, int64_t>> lru_ ABSL_GUARDED_BY(mu_);  // front: most recent
  absl::flat_hash_map<int, std::list<std::pair<int, int64_t>>::iterator> index_
      ABSL_GUARDED_BY(mu_);
};

// One dependency's shared state: its fault model and policies, used by every order.
struct DependencyRuntime {
  // Builds the policies of `config` (which must be valid).
  explicit DependencyRuntime(const DependencyConfig& config);

  const DependencyConfig* config;
  FaultModel faults;
  RetryConfig retry;  // a single attempt when the scenario has none
  std::unique_ptr<CircuitBreaker> breaker;
  std::unique_ptr<RetryBudget> budget;
  TokenBucketBudget* token_bucket = nullptr;  // = budget when it is a token bucket
  RatioBudget* ratio_budget = nullptr;        // = budget when it is a ratio budget
  std::unique_ptr<Bulkhead> bulkhead;
  std::unique_ptr<AdaptiveThrottle> throttle;
  std::unique_ptr<FallbackCache> cache;
  std::unique_ptr<Hedger> hedger;  // when the dependency hedges its calls
  std::unique_ptr<ConcurrencyLimiter> limiter;  // the client-side concurrency limit, if any
  std::unique_ptr<RateGate> rate_gate;          // the client-side rate limit, if any
  // Copies per call: 1, fanout.copies, or 1 + hedge.max_hedges.
  int max_copies = 1;
  // Whether calls are rounds of copies (hedge or fanout set). Cached: the engines ask per event.
  bool uses_rounds = false;
  bool rounds() const { return uses_rounds; }
  // The pool of replicas when the dependency has `replicas` (null otherwise): the engines ask it
  // which replica serves each attempt and tell it how the attempt ended.
  std::unique_ptr<ReplicaPool> replicas;
  std::unique_ptr<AwsRetryPolicy> aws_retry;  // when an AWS SDK retry mode runs the retry loop
};

// What the engine must do next for an order.
struct FlowAction {
  enum class Kind : uint8_t {
    kAttempt,       // call dependency `dep` now; give up on it at `until_ns`
    kSleep,         // wait until `until_ns` (a backoff), then call OnSleepDone
    kWaitBulkhead,  // wait for a slot of dependency `dep`'s bulkhead until `until_ns`
    kDone,          // the order is terminal (see OrderFlow::status())
    kWait,          // nothing new: other copies of the current call are still outstanding
  };
  Kind kind = Kind::kDone;
  int dep = 0;
  int64_t until_ns = 0;  // kAttempt: the attempt's timeout (deadline-capped); kNoDeadline: none
  // kAttempt only: true when until_ns comes from the order's deadline rather than the attempt
  // timeout, so that running out of time is reported as the caller's deadline.
  bool until_is_deadline = false;
  // kAttempt only: the copies to send now, bit c for copy c (a hedge or fan-out call sends
  // several; a plain call sends copy 0). Every copy reports back with OnAttemptDone(copy).
  uint32_t launch = 1;
  // kAttempt only: when not kNoDeadline, call OnHedgeTimer at this time unless the call is over
  // (a stale timer is harmless: the flow ignores it).
  int64_t hedge_at_ns = kNoDeadline;
};

// Counters an engine aggregates across orders (per dependency).
struct FlowStats {
  int64_t calls = 0;     // attempts sent to the dependency
  int64_t retries = 0;   // attempts after the first of a loop
  int64_t failures = 0;  // attempts that did not succeed (answered or not)
  int64_t rejected_breaker = 0;
  int64_t rejected_bulkhead = 0;
  int64_t rejected_throttle = 0;
  int64_t fallbacks = 0;  // failures absorbed by a fallback (the order went on, degraded)
  std::array<int64_t, kNumRetryEndReasons> retry_ends{};  // how retry loops ended
  int64_t successes = 0;      // attempts that succeeded: calls = successes + failures + cancelled
  int64_t cancelled = 0;      // copies cancelled because their call was decided without them
  int64_t hedges = 0;         // hedge copies sent (included in calls)
  int64_t hedges_won = 0;     // calls whose winning copy was a hedge
  int64_t hedges_denied = 0;  // hedges the hedge budget refused
  int64_t rejected_limit = 0;       // attempts the client-side concurrency limit refused
  int64_t rejected_rate_limit = 0;  // calls the client-side rate limit refused
  int64_t rate_limit_waits = 0;     // calls the rate limit delayed (a permit due later)
};

// The flow of one order. Not thread-safe: an order has one owner at a time.
class OrderFlow {
 public:
  // `deps` and `stats` (one per dependency) must outlive the flow. `deadline_ns` is absolute
  // (kNoDeadline for none).
  // Service graphs: the flow runs deps [first_dep, first_dep + num_deps) (-1: to the end), a
  // service's own dependencies in the engine's flat list; dep indices in actions are into
  // `deps`, handoffs() bits are relative to first_dep.
  OrderFlow(std::vector<DependencyRuntime>* deps, std::vector<FlowStats>* stats, int key,
            int64_t deadline_ns, int first_dep = 0, int num_deps = -1);

  // Processing starts at `now_ns` (a worker took the order).
  FlowAction Begin(int64_t now_ns, RandomStream& rng);
  // The current attempt (copy `copy` of the current call) ended with `outcome` at `now_ns`;
  // `committed` says whether its effect happened (for the charge ledger).
  FlowAction OnAttemptDone(int64_t now_ns, const Outcome& outcome, bool committed,
                           RandomStream& rng, int copy = 0);
  // A hedge timer (FlowAction::hedge_at_ns) fired: may send the next hedge copy.
  FlowAction OnHedgeTimer(int64_t now_ns, RandomStream& rng);
  // A backoff sleep ended.
  FlowAction OnSleepDone(int64_t now_ns, RandomStream& rng);
  // The bulkhead handed this order a slot after a wait.
  FlowAction OnBulkheadAdmitted(int64_t now_ns, RandomStream& rng);
  // The bulkhead wait ran out (max_wait or the deadline): the engine already cancelled the wait.
  FlowAction OnBulkheadTimeout(int64_t now_ns, RandomStream& rng);
  // Ends the order as cancelled (shutdown), releasing whatever it holds; returns handoffs().
  uint32_t Cancel(int64_t now_ns);

  OrderStatus status() const { return status_; }
  FailReason reason() const { return reason_; }
  bool degraded() const { return degraded_; }       // completed, with a fallback's help
  int attempts() const { return attempts_; }        // attempts over all dependencies
  int charges() const { return charges_; }          // committed charges (before deduplication)
  int applied_charges() const { return applied_; }  // charges the ledger applied
  // Bit d is set when the last call released dependency d's bulkhead slot to a waiter, which the
  // engine must then wake with OnBulkheadAdmitted. Reset by every call.
  uint32_t handoffs() const { return handoffs_; }
  int current_dep() const { return dep_; }
  // The copies of the current call still outstanding (bit c: copy c). When a call is decided,
  // the flow cancels its other copies: the engine stops waiting for every copy it launched that
  // is no longer in this mask (their server work goes on: it is wasted, not undone).
  uint32_t outstanding() const { return outstanding_; }

 private:
  FlowAction StartDependency(int64_t now_ns, RandomStream& rng);
  FlowAction AfterBulkhead(int64_t now_ns, RandomStream& rng);
  FlowAction StartAttempt(int64_t now_ns, RandomStream& rng);
  FlowAction EndAttempt(int64_t now_ns, const Outcome& outcome, RandomStream& rng);
  FlowAction FinishDependency(int64_t now_ns, bool ok, FailReason reason, RandomStream& rng);
  FlowAction Finish(OrderStatus status, FailReason reason);
  void ReleaseBulkhead();
  // Rounds (hedge / fan-out): one call of the retry loop is a round of copies.
  FlowAction StartRound(int64_t now_ns, RandomStream& rng);
  // Sends copy `copy` through throttle and breaker; a local rejection is returned, else nullopt.
  std::optional<Outcome> LaunchCopy(int copy, int64_t now_ns, RandomStream& rng);
  FlowAction CopyAction(uint32_t launch, int64_t now_ns) const;
  FlowAction OnCopyDone(int64_t now_ns, const Outcome& outcome, int copy, RandomStream& rng);
  void CancelCopies(int64_t now_ns);

  std::vector<DependencyRuntime>* deps_;
  std::vector<FlowStats>* stats_;
  int key_;
  int64_t deadline_ns_;
  int dep_ = 0;
  std::optional<RetryLoop> loop_;
  uint64_t breaker_token_ = 0;  // breaker-outside-retry: the permit of the whole loop
  int64_t breaker_start_ns_ = 0;
  bool holds_breaker_ = false;
  bool holds_bulkhead_ = false;
  Outcome last_outcome_;
  OrderStatus status_ = OrderStatus::kProcessing;
  FailReason reason_ = FailReason::kNone;
  bool degraded_ = false;
  bool dep_committed_ = false;  // the current dependency's effect already happened once
  int attempts_ = 0;
  int charges_ = 0;
  int applied_ = 0;
  uint32_t handoffs_ = 0;
  int64_t attempt_start_ns_ = 0;
  uint32_t outstanding_ = 0;
  // The current round's copies (rounds only).
  struct Copy {
    uint64_t breaker_token = 0;
    int64_t start_ns = 0;
    bool holds_breaker = false;
    // The copy's own permit of the dependency's concurrency limit.
    LimitToken limit_token;
    bool holds_limit = false;
  };
  std::vector<Copy> copies_;
  int next_copy_ = 0;  // copies launched (or refused) in the round
  int round_ok_ = 0;   // copies that succeeded
  int round_failed_ = 0;
  int64_t next_hedge_ns_ = kNoDeadline;  // when the next hedge is due; kNoDeadline: none
  AwsRetryCall aws_;                     // the current call's AWS retry-mode state
  // The current attempt's permit of the dependency's concurrency limit.
  LimitToken limit_token_;
  bool holds_limit_ = false;
  bool limited_ = false;        // the last local rejection came from the concurrency limit
  bool rate_reserved_ = false;  // the next call's rate permit is reserved (after its wait)
  // Hands the permit back, sampled as `outcome` says (model/limits.h).
  void ReleaseLimit(int64_t now_ns, const Outcome* outcome, RandomStream* rng);
  // The same for copy `copy` of a round.
  void ReleaseCopyLimit(int copy, int64_t now_ns, const Outcome* outcome, RandomStream* rng);
  int first_dep_ = 0;  // the flow's dependencies: [first_dep_, end_dep_)
  int end_dep_ = 0;
};

}  // namespace rlab

#endif  // RLAB_MODEL_ORDER_FLOW_H_
