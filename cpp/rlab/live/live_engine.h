#ifndef RLAB_LIVE_LIVE_ENGINE_H_
#define RLAB_LIVE_LIVE_ENGINE_H_

// The live engine: the order pipeline of DESIGN §2 in real time. Orders go through a bounded job
// queue to a pool of worker threads, and each worker interprets the shared OrderFlow by blocking:
// an attempt really takes the fault model's latency, a backoff really sleeps, a bulkhead wait
// really waits, all on the steady clock and all interruptible by a shutdown. Fault phases run on
// the wall clock measured from Start(). Results come out in the simulated engine's shape
// (SimResult), so that everything built on simulate() reads a live run too.

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rlab/core/histogram.h"
#include "rlab/core/metrics.h"
#include "rlab/core/mutex.h"
#include "rlab/core/rng.h"
#include "rlab/live/bounded_queue.h"
#include "rlab/live/payment_ledger.h"
#include "rlab/model/faults.h"
#include "rlab/model/order_flow.h"
#include "rlab/model/scenario.h"
#include "rlab/sim/sim_engine.h"

namespace rlab {

// How to run and what to keep.
struct LiveOptions {
  int64_t sample_every_ns = kNsPerSecond;  // wall-clock time-series interval; 0: none
  bool record_orders = true;               // keep one OrderRecord per order for the result
  bool record_events = true;               // keep breaker transitions and phase edges
  // Upper bounds (seconds) of the order latency histogram in the metrics registry.
  std::vector<double> latency_bounds_s = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5,   1.0,    2.5,   5.0,  10.0,  30.0, 60.0};
  // The payment provider's ledger (see payment_ledger.h). Empty: in memory, and orders without
  // an explicit idempotency key keep the flow's own per-order count. Set: a durable file loaded
  // by Create; every committed charge of a charging dependency goes through it.
  std::string ledger_path;
  bool ledger_fsync = false;  // fdatasync after each ledger line (power loss, not just kill -9)
  // Record every order status change for TakeOrderEvents (off: the hot path pays one branch).
  bool order_events = false;
};

// One order status change (LiveOptions::order_events).
struct LiveOrderEvent {
  int64_t id = 0;
  OrderStatus status = OrderStatus::kPending;
  FailReason reason = FailReason::kNone;
  int64_t t_ns = 0;  // engine time
  int attempts = 0;  // meaningful in a terminal event
  int charges = 0;   // committed charges, meaningful in a terminal event
};

// What the engine looks like inside right now (for a debug endpoint).
struct LiveInternals {
  bool running = false;  // started, not shutting down
  int64_t queue_depth = 0;
  int64_t queue_capacity = 0;
  int workers = 0;
  int64_t busy_workers = 0;
  int64_t in_flight = 0;  // admitted orders not yet terminal
  int64_t arrived = 0;
  struct Dep {
    std::string name;
    std::optional<BreakerState> breaker;  // none without a breaker
    int64_t in_flight_calls = 0;          // attempts in progress
    uint64_t faults_version = 0;          // SetFaults calls so far
  };
  std::vector<Dep> deps;
  std::string ledger_path;  // empty: in memory
  int64_t ledger_entries = 0;
  int64_t ledger_double_charged = 0;
  int64_t ledger_write_errors = 0;
  int64_t order_events_pending = 0;
};

// What a caller can read about one order at any time.
struct LiveOrderView {
  OrderStatus status = OrderStatus::kPending;
  FailReason reason = FailReason::kNone;  // meaningful once terminal
  // The full record; end_ns, attempts and charges are meaningful once terminal.
  OrderRecord record;
};

// How Shutdown went.
struct ShutdownReport {
  int64_t finished_in_time = 0;  // orders that became terminal normally during the grace time
  int64_t cancelled = 0;         // orders cancelled because the grace time ran out
  bool timed_out = false;        // the grace time ran out with work left
  int64_t elapsed_ns = 0;        // how long Shutdown took
};

// Runs one scenario on real threads. Create, Start, Submit or StartLoad, Shutdown, result().
// Thread-safe: Submit, View, Wait and MetricsSnapshot may be called from any thread.
class LiveEngine {
 public:
  // Validates `config` (ValidateScenario plus what the live engine cannot run) and builds the
  // engine; no thread starts yet.
  static absl::StatusOr<std::unique_ptr<LiveEngine>> Create(const ScenarioConfig& config,
                                                            const LiveOptions& options);
  // Shuts down with no grace time if Shutdown was not called.
  ~LiveEngine();
  LiveEngine(const LiveEngine&) = delete;
  LiveEngine& operator=(const LiveEngine&) = delete;

  // Starts the workers (and the sampler); engine time 0 is now. FailedPrecondition if called
  // twice.
  absl::Status Start();

  // Submits one order with fallback-cache key `key` (< 0: derived from the order id). Returns the
  // order's id; a full queue rejects the order at once (status rejected, reason queue_full), which
  // still returns an id. FailedPrecondition before Start or once Shutdown has begun.
  // `idempotency_key` (empty: derived from the order id, unique to this run) is what the order's
  // charges carry to the ledger; InvalidArgument unless ValidateIdempotencyKey accepts it.
  absl::StatusOr<int64_t> Submit(int key = -1, std::string_view idempotency_key = {});

  // Replaces dependency `dependency`'s fault model for attempts that start from now on (those in
  // progress keep the model they started with). Phases are on the engine's clock, like the
  // scenario's. InvalidArgument (with the dotted path) for an invalid model, NotFound for an
  // unknown dependency.
  absl::Status SetFaults(std::string_view dependency, const FaultModelConfig& faults);

  // The status changes recorded since the last call, oldest first (order_events only).
  std::vector<LiveOrderEvent> TakeOrderEvents();

  // A snapshot of queue, workers, breakers and ledger.
  LiveInternals Internals() const;

  // Starts the scenario's load generator: one thread for open-loop arrivals, or one thread per
  // closed-loop client, for the scenario's duration measured from now. FailedPrecondition if
  // not started, already loading, or shutting down.
  absl::Status StartLoad();
  // Stops the load generators and joins them (idempotent).
  void StopLoad();
  // Whether the load generators are still producing orders (false once their duration is over).
  bool LoadRunning() const;

  // What is known about order `id`; NotFound for an id never returned by Submit.
  absl::StatusOr<LiveOrderView> View(int64_t id) const;
  // Waits up to `timeout_ns` (< 0: without limit) for order `id` to become terminal; returns
  // whether it is. Never holds an engine lock while sleeping that a worker needs.
  bool Wait(int64_t id, int64_t timeout_ns) const;
  // Waits up to `timeout_ns` (< 0: without limit) until no admitted order is in flight and the
  // load generators are done; returns whether that happened.
  bool WaitIdle(int64_t timeout_ns) const;

  // Stops intake (Submit fails from now on), stops the load generators, lets the workers finish
  // in-flight and queued orders for up to `timeout_ns`, then cancels the rest as `cancelled`
  // (reason shutdown) and joins every thread. Afterwards every order is in exactly one terminal
  // state. Idempotent: later calls return the first call's report.
  ShutdownReport Shutdown(int64_t timeout_ns);
  // Whether Shutdown has completed.
  bool shut_down() const { return shut_down_.load(std::memory_order_acquire); }

  // Refreshes the gauges and snapshots the metrics registry (Prometheus family names shared with
  // the simulated engine).
  std::vector<FamilySnapshot> MetricsSnapshot();

  // Breaker transitions not yet taken, oldest first (for logging outside any engine lock).
  std::vector<SimTransition> TakeTransitions();

  // The run's output, in the simulated engine's shape; complete once Shutdown returned
  // (FailedPrecondition before).
  absl::StatusOr<const SimResult*> result() const;

  // Engine time now: nanoseconds since Start (0 before).
  int64_t NowNs() const;
  // Orders submitted so far (accepted or rejected).
  int64_t arrived() const { return next_id_.load(std::memory_order_acquire); }
  // Admitted orders not yet terminal.
  int64_t in_system() const { return in_system_.load(std::memory_order_acquire); }
  const ScenarioConfig& config() const { return config_; }

 private:
  // One order's state. `status` is the publication point: every other field an order's owner
  // wrote is visible to a reader that saw a terminal status (release / acquire).
  struct OrderSlot {
    std::atomic<uint8_t> status{0};
    uint8_t reason = 0;
    int32_t key = 0;
    int64_t deadline_ns = 0;
    OrderRecord record;
    std::unique_ptr<std::string> idempotency_key;  // set by Submit when the caller gave one
  };
  static constexpr int kChunkBits = 14;
  static constexpr int64_t kChunkSize = int64_t{1} << kChunkBits;
  static constexpr int64_t kMaxChunks = int64_t{1} << 16;
  struct Chunk {
    std::array<OrderSlot, kChunkSize> slots;
  };

  // What a worker owns; only its thread touches it until the workers are joined.
  struct Worker {
    int index = 0;
    std::thread thread;
    std::vector<FlowStats> stats;      // the flows' counters, per dependency
    std::vector<FlowStats> published;  // what was already added to the shared counters
    std::vector<RandomStream> fault_rngs;
    std::vector<RandomStream> policy_rngs;
    // The fault models this worker draws from, refreshed when a dependency's version moves.
    std::vector<std::shared_ptr<const FaultModel>> fault_models;
    std::vector<uint64_t> fault_versions;
    LogHistogram latency_completed, latency_terminal, queue_wait;
    double sojourn_sum_s = 0.0;
    int64_t busy_ns = 0;
    int64_t charges = 0, applied_charges = 0, double_charged = 0;
  };

  // A dependency's current fault model. `version` moves (after `model` is replaced, under `mu`)
  // on every SetFaults; a worker compares it with its copy's version before each attempt and
  // takes the lock only when they differ.
  struct FaultSlot {
    Mutex mu;
    std::shared_ptr<const FaultModel> model ABSL_GUARDED_BY(mu);
    std::atomic<uint64_t> version{0};
  };

  // A thread waiting for a dependency's bulkhead slot, on its own stack.
  struct BulkheadWaiter {
    std::condition_variable cv;
    bool granted = false;
  };
  // One dependency's bulkhead waiters, oldest first. A hand-off can race ahead of the waiter it
  // is meant for (the flow reserved the place, the thread has not queued yet): it is then kept
  // in `pending_grants` and taken by the next waiter to arrive.
  struct BulkheadLine {
    Mutex mu;
    std::deque<BulkheadWaiter*> waiters ABSL_GUARDED_BY(mu);
    int pending_grants ABSL_GUARDED_BY(mu) = 0;
  };

  // A call waiting for a dependency's limited capacity; `abandoned` once its caller gave up
  // (the server still serves it unless drop_abandoned: wasted work).
  struct LineEntry {
    uint64_t ticket = 0;
    bool abandoned = false;
  };
  // One dependency's server when it has limited capacity: the end times of calls in service
  // and the line of calls waiting.
  struct Server {
    Mutex mu;
    std::condition_variable cv;
    std::priority_queue<int64_t, std::vector<int64_t>, std::greater<>> ends ABSL_GUARDED_BY(mu);
    std::deque<LineEntry> line ABSL_GUARDED_BY(mu);
    uint64_t next_ticket ABSL_GUARDED_BY(mu) = 0;
    std::optional<RandomStream> rng ABSL_GUARDED_BY(mu);  // draws for abandoned calls
    int64_t wasted ABSL_GUARDED_BY(mu) = 0;
    int64_t rejected ABSL_GUARDED_BY(mu) = 0;
    int64_t max_load ABSL_GUARDED_BY(mu) = 0;
  };

  // How a blocking step ended.
  enum class WaitEnd : uint8_t { kDone, kTimeout, kInterrupted };
  struct AttemptEnd {
    Outcome outcome;
    bool committed = false;
    bool interrupted = false;
  };

  // Metric series the hot paths update directly.
  struct DepMetrics {
    Counter* calls = nullptr;
    Counter* failures = nullptr;
    std::array<Counter*, 6> retry{};  // retried, succeeded, exhausted, permanent, budget, deadline
    Counter* rejected_breaker = nullptr;
    Counter* rejected_bulkhead = nullptr;
    Counter* rejected_throttle = nullptr;
    Counter* fallbacks = nullptr;
    Counter* trips = nullptr;
    std::array<Counter*, kNumOutcomeKinds> failure_kinds{};
    std::array<std::array<Counter*, 3>, 3> transitions{};  // [from][to]
    std::array<Gauge*, 3> state{};
    Gauge* in_flight = nullptr;
  };

  LiveEngine(const ScenarioConfig& config, const LiveOptions& options);
  absl::Status InitMetrics();

  OrderSlot& Slot(int64_t id) const;
  std::chrono::steady_clock::time_point ToSteady(int64_t t_ns) const;

  void WorkerLoop(Worker& w);
  void Process(Worker& w, int64_t id);
  AttemptEnd DoAttempt(Worker& w, const FlowAction& action);
  AttemptEnd DoLimitedAttempt(Worker& w, const FaultModel& fm, const FlowAction& action,
                              int64_t now_ns);
  // Frees finished service slots and starts abandoned calls at the head of the line.
  void ReapLocked(Server& s, const FaultModel& fm, int64_t now_ns)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // The fault model `w` must use for an attempt of `dep` starting now.
  const FaultModel& ModelFor(Worker& w, int dep);
  // The key order `id`'s charges carry.
  std::string LedgerKey(const OrderSlot& o, int64_t id) const;
  void RecordEvent(int64_t id, OrderStatus status, FailReason reason, int64_t t_ns, int attempts,
                   int charges);
  WaitEnd SleepUntil(int64_t t_ns) const;
  WaitEnd WaitBulkhead(int dep, int64_t until_ns);
  void DeliverHandoffs(uint32_t mask);
  void PublishStats(Worker& w);
  // `ledger_applied` (>= 0) overrides the flow's applied-charge count when the ledger decided.
  void Finish(Worker* w, OrderSlot& o, int64_t id, OrderStatus status, FailReason reason,
              const OrderFlow* flow, int64_t now_ns, bool admitted, int ledger_applied = -1);
  void NotifyDone();
  void OnTransition(int dep, const BreakerTransition& t);

  void OpenLoop(int64_t t0_ns, int64_t end_ns);
  void ClosedLoopClient(int client, int64_t t0_ns, int64_t end_ns);
  void LoadThreadDone();
  bool WaitUntil(int64_t id, std::chrono::steady_clock::time_point deadline, bool forever,
                 bool stop_with_load) const;
  bool LoadSleepUntil(int64_t t_ns) const;
  void SamplerLoop();
  void InitTimeSeries();
  void Sample(int64_t now_ns, bool final);
  void BuildResult(int64_t end_ns);

  const ScenarioConfig config_;
  const LiveOptions options_;
  Rng rng_;
  std::vector<DependencyRuntime> deps_;
  BoundedQueue<int64_t> queue_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::unique_ptr<BulkheadLine>> bulkhead_lines_;
  std::vector<std::unique_ptr<Server>> servers_;
  std::unique_ptr<std::atomic<int64_t>[]> dep_in_flight_;  // attempts in progress
  std::unique_ptr<std::atomic<int64_t>[]> dep_max_load_;   // most attempts in progress at once
  std::vector<std::unique_ptr<FaultSlot>> fault_slots_;
  std::unique_ptr<PaymentLedger> ledger_;  // set by Create
  std::string run_tag_;                    // makes derived idempotency keys unique to this run

  // Order status changes (options_.order_events).
  mutable Mutex order_events_mu_;
  std::vector<LiveOrderEvent> order_events_ ABSL_GUARDED_BY(order_events_mu_);

  std::unique_ptr<std::atomic<Chunk*>[]> chunks_;
  std::atomic<int64_t> next_id_{0};
  std::atomic<int64_t> in_system_{0};
  std::atomic<int64_t> busy_{0};
  std::atomic<bool> started_{false};
  std::atomic<bool> accepting_{false};
  std::atomic<int> submitting_{0};  // Submit calls past the intake check
  std::atomic<bool> cancel_{false};
  std::atomic<bool> shutdown_begun_{false};
  std::atomic<bool> shut_down_{false};
  std::chrono::steady_clock::time_point start_;

  // Interruptible sleeps (attempt latency, backoff) wait here; Shutdown's cancel wakes them.
  mutable Mutex sleep_mu_;
  mutable std::condition_variable sleep_cv_;

  // Waiters for order completion (Wait, WaitIdle, closed-loop clients).
  mutable Mutex done_mu_;
  mutable std::condition_variable done_cv_;
  mutable std::atomic<int> done_waiters_{0};

  // Load generators.
  mutable Mutex load_mu_;
  mutable std::condition_variable load_cv_;
  std::atomic<bool> load_stop_{false};
  std::vector<std::thread> load_threads_ ABSL_GUARDED_BY(load_mu_);
  std::atomic<int> load_active_{0};

  // Workers still running, for Shutdown's grace period.
  Mutex exit_mu_;
  std::condition_variable exit_cv_;
  std::atomic<int> workers_running_{0};

  // Accounting for orders finished outside a worker (queue rejections, shutdown cancellations).
  Mutex aux_mu_;
  Worker aux_ ABSL_GUARDED_BY(aux_mu_);

  // Metrics.
  MetricsRegistry registry_;
  Counter* arrived_ = nullptr;
  std::array<Counter*, kNumOrderStatuses> by_status_{};
  std::array<Counter*, kNumFailReasons> by_reason_{};
  Counter* degraded_ = nullptr;
  Histogram* latency_ = nullptr;
  Gauge* queue_depth_ = nullptr;
  Gauge* busy_workers_ = nullptr;
  Gauge* in_flight_ = nullptr;
  std::vector<DepMetrics> dep_metrics_;

  // Transitions for the result, and for TakeTransitions.
  Mutex events_mu_;
  std::vector<SimTransition> transitions_ ABSL_GUARDED_BY(events_mu_);
  size_t transitions_taken_ ABSL_GUARDED_BY(events_mu_) = 0;

  // Time series.
  Mutex sample_mu_;
  std::condition_variable sample_cv_;
  std::atomic<bool> sample_stop_{false};
  std::thread sampler_;
  // The rows below are written by the sampler thread only, then by Shutdown after joining it.
  std::vector<std::string> ts_columns_;
  std::vector<std::vector<double>> ts_;
  struct Last {
    int64_t arrived = 0;
    std::array<int64_t, kNumOrderStatuses> by_status{};
    std::array<int64_t, kNumFailReasons> by_reason{};
    int64_t degraded = 0;
    std::vector<std::array<int64_t, 4>> deps;  // calls, retries, failures, rejected_breaker
  };
  Last last_;
  int64_t last_sample_ns_ = 0;

  Mutex shutdown_mu_;
  ShutdownReport report_ ABSL_GUARDED_BY(shutdown_mu_);
  SimResult result_;  // written once by Shutdown, read-only afterwards
};

}  // namespace rlab

#endif  // RLAB_LIVE_LIVE_ENGINE_H_
