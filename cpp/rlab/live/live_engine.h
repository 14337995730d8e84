#ifndef RLAB_LIVE_LIVE_ENGINE_H_
#define RLAB_LIVE_LIVE_ENGINE_H_

// The live engine: the order pipeline of DESIGN §2 in real time. Orders go through a bounded job
// queue to a pool of worker threads, and each worker interprets the shared OrderFlow by blocking:
// an attempt really takes the fault model's latency, a backoff really sleeps, a bulkhead wait
// really waits, all on the steady clock and all interruptible by a shutdown. Fault phases run on
// the wall clock measured from Start(). Results come out in the simulated engine's shape
// (SimResult), so that everything built on simulate() reads a live run too.
//
// LiveEngine is the composition of four parts, each with its own state and locks (see
// docs/architecture.md, "The live engine's parts"): LiveIntake (admission, job queue, rate
// waits), LiveWorkerPool (workers, attempts, capacity and bulkhead lines), LiveSampler (time
// series, scraped gauges) and LiveShutdown (drain, cancel, report). It keeps the order table,
// the load generators and the result.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
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
#include "rlab/live/live_intake.h"
#include "rlab/live/live_metrics.h"
#include "rlab/live/live_order.h"
#include "rlab/live/live_sampler.h"
#include "rlab/live/live_shutdown.h"
#include "rlab/live/live_worker_pool.h"
#include "rlab/live/payment_ledger.h"
#include "rlab/live/rate_wait_queue.h"
#include "rlab/live/replica_metrics.h"
#include "rlab/live/round_metrics.h"
#include "rlab/model/faults.h"
#include "rlab/model/order_flow.h"
#include "rlab/model/origin_stats.h"
#include "rlab/model/run_result.h"
#include "rlab/model/scenario.h"
#include "rlab/policy/load_shedder.h"

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

  // Bounded memory (memory follows the orders in flight, not the orders run). An order's slot is
  // released once it is terminal and older than the `retain_orders` most recent orders (by id);
  // View/Wait by id then answer NotFound/true, while an OrderRef taken before keeps answering.
  int64_t retain_orders = 100'000;
  // With record_orders: the result keeps the records of the most recent `max_order_records`
  // orders (32 bytes each), the older ones are dropped as the run goes.
  int64_t max_order_records = 1'000'000;
  // Ledger pairs remembered for deduplication besides those of orders in flight (see
  // payment_ledger.h).
  int64_t idempotency_window = PaymentLedger::kDefaultWindow;
  // The time series keeps its most recent rows, between `max_samples` (>= 1) and twice that
  // (default: a day at 1 s), so that a service running for weeks does not grow by a row per
  // sample.
  int64_t max_samples = 86'400;
  // Breaker transitions kept for the result and TakeTransitions: the most recent ones (>= 1; the
  // rlab_breaker_transitions counters keep the full counts).
  int64_t max_transitions = 65'536;
};

// One order status change (LiveOptions::order_events).
struct LiveOrderEvent {
  int64_t id = 0;
  OrderStatus status = OrderStatus::kPending;
  FailReason reason = FailReason::kNone;
  int64_t t_ns = 0;       // engine time
  int attempts = 0;       // meaningful in a terminal event
  int charges = 0;        // committed charges, meaningful in a terminal event
  bool degraded = false;  // completed on a fallback's help, meaningful in a terminal event
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
  // Memory: order slots in the table (whole chunks; a chunk released from the table lives on
  // only while an OrderRef holds it), slots still addressable by id, records kept for the
  // result, idempotency keys held by orders in flight, and ledger pairs remembered. All stay
  // bounded by in-flight orders plus the configured history sizes.
  int64_t order_slots = 0;
  int64_t retained_orders = 0;
  int64_t recorded_orders = 0;
  int64_t idempotency_keys_held = 0;
  int64_t ledger_tracked = 0;
};

// What a caller can read about one order at any time.
struct LiveOrderView {
  OrderStatus status = OrderStatus::kPending;
  FailReason reason = FailReason::kNone;  // meaningful once terminal
  // The full record; end_ns, attempts and charges are meaningful once terminal.
  OrderRecord record;
};

// The end-of-run check of a live run: every order that arrived is in exactly one terminal state
// (arrived == completed + failed + rejected + expired + cancelled), none is in flight, and no
// order was finished twice or left unfinished in its slot. InternalError naming what differs.
absl::Status CheckOrderConservation(const SimResult& r, int64_t finished_twice,
                                    int64_t unfinished_slots);

// Runs one scenario on real threads. Create, Start, Submit or StartLoad, Shutdown, result().
// Thread-safe: Submit, View, Wait and MetricsSnapshot may be called from any thread.
class LiveEngine {
 private:
  using Chunk = LiveOrderChunk;
  // Tests reach private members through it (to break an invariant on purpose).
  friend class LiveEngineTestPeer;

 public:
  // Orders' slots are allocated (and released) this many at a time.
  static constexpr int kOrderChunkBits = kLiveOrderChunkBits;
  static constexpr int64_t kOrderChunk = kLiveOrderChunk;

  // A counted reference to one order's slot: valid (and answering View/Wait) however long it is
  // kept, even after the engine released the slot from its table (the slot's chunk is freed when
  // the last reference goes). Cheap to move; copying takes another reference.
  class OrderRef {
   public:
    OrderRef() = default;
    OrderRef(const OrderRef& other);
    OrderRef& operator=(const OrderRef& other);
    OrderRef(OrderRef&& other) noexcept : chunk_(other.chunk_), id_(other.id_) {
      other.chunk_ = nullptr;
    }
    OrderRef& operator=(OrderRef&& other) noexcept;
    ~OrderRef() { Reset(); }
    bool valid() const { return chunk_ != nullptr; }
    int64_t id() const { return id_; }
    // A reference to order `id` if it lives in the same chunk (an invalid one otherwise).
    OrderRef Sibling(int64_t id) const;
    void Reset();

   private:
    friend class LiveEngine;
    OrderRef(Chunk* chunk, int64_t id) : chunk_(chunk), id_(id) {}  // adopts one reference
    Chunk* chunk_ = nullptr;
    int64_t id_ = -1;
  };

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
  // still returns an id. Unavailable (intake closed) before Start or once Shutdown has begun.
  // Never blocks: an order whose intake.rate_limit permit is due later is parked, pending.
  // `idempotency_key` (empty: derived from the order id, unique to this run) is what the order's
  // charges carry to the ledger; InvalidArgument unless ValidateIdempotencyKey accepts it.
  // `origin` (intake.shedding): the order's criticality and tenant; absent: drawn from the
  // scenario's traffic mix (what the load generators do). A shed order is rejected at once
  // (reason shed) and still returns an id.
  absl::StatusOr<int64_t> Submit(int key = -1, std::string_view idempotency_key = {},
                                 std::optional<OrderOrigin> origin = std::nullopt);
  // Submit, returning a reference to the order (for a handle that outlives its slot's release).
  absl::StatusOr<OrderRef> SubmitOrder(int key = -1, std::string_view idempotency_key = {},
                                       std::optional<OrderOrigin> origin = std::nullopt);

  // Replaces dependency `dependency`'s fault model for attempts that start from now on (those in
  // progress keep the model they started with). Phases are on the engine's clock, like the
  // scenario's. InvalidArgument (with the dotted path) for an invalid model, NotFound for an
  // unknown dependency.
  absl::Status SetFaults(std::string_view dependency, const FaultsConfig& faults);

  // Replaces dependency `dependency`'s circuit breaker parameters from now on (engine time), by
  // CircuitBreaker::Reconfigure: the state is kept, calls admitted before report stale, and an
  // open period is re-measured with the new open_for. Thread-safe (the breaker's own lock).
  // NotFound for an unknown dependency, FailedPrecondition for one without a breaker (a breaker
  // cannot be added at run time), InvalidArgument with the dotted path
  // ("payment.breaker.open_for ...") for invalid parameters. The run's scenario (config()) keeps
  // the parameters it started with.
  absl::Status SetBreakerConfig(std::string_view dependency, const BreakerConfig& breaker);

  // The status changes recorded since the last call, oldest first (order_events only).
  std::vector<LiveOrderEvent> TakeOrderEvents();

  // A snapshot of queue, workers, breakers and ledger.
  LiveInternals Internals() const;

  // Starts the scenario's load generator: one thread for open-loop arrivals, or one thread per
  // closed-loop client, for the scenario's duration measured from now. Unavailable if not
  // started or shutting down, FailedPrecondition if already loading.
  absl::Status StartLoad();
  // Changes the open-loop arrival rate (Poisson or constant arrivals), in orders per second,
  // from now on: before the load starts or while it runs. A running generator wakes and draws
  // its next arrival from now at the new rate (for a Poisson process, which is memoryless, that
  // is exactly the process with the new rate from now). Thread-safe. InvalidArgument
  // ("arrivals.rate must be in (0, 1e+07], got ...") for a bad rate, FailedPrecondition for
  // arrivals without one rate (schedule, trace, closed loop).
  absl::Status SetArrivalRate(double rate_per_s);
  // The open-loop arrival rate in force (orders per second; 0 for arrivals without one rate).
  double arrival_rate() const { return arrival_rate_.load(std::memory_order_acquire); }

  // Stops the load generators and joins them (idempotent).
  void StopLoad();
  // Whether the load generators are still producing orders (false once their duration is over).
  bool LoadRunning() const;

  // A reference to order `id`; NotFound for an id never returned by Submit, or for an order
  // whose slot was released (terminal, and older than the last retain_orders orders).
  absl::StatusOr<OrderRef> Find(int64_t id) const;
  // References to every order still addressable by id, in id order.
  std::vector<OrderRef> Retained() const;
  // What is known about order `id`; NotFound as Find.
  absl::StatusOr<LiveOrderView> View(int64_t id) const;
  // What is known about a referenced order (a pending view for an invalid reference).
  LiveOrderView View(const OrderRef& order) const;
  // Waits up to `timeout_ns` (< 0: without limit) for order `id` to become terminal; returns
  // whether it is (true for a released order: only terminal orders are released). Never holds
  // an engine lock while sleeping that a worker needs.
  bool Wait(int64_t id, int64_t timeout_ns) const;
  bool Wait(const OrderRef& order, int64_t timeout_ns) const;  // false if `order` is invalid
  // Waits up to `timeout_ns` (< 0: without limit) until no admitted order is in flight and the
  // load generators are done; returns whether that happened.
  bool WaitIdle(int64_t timeout_ns) const;

  // Stops intake (Submit fails from now on), stops the load generators, lets the workers finish
  // in-flight and queued orders for up to `timeout_ns` (orders waiting for an intake rate-limit
  // permit are queued at their time within it), then cancels the rest as `cancelled`
  // (reason shutdown) and joins every thread. Afterwards every order is in exactly one terminal
  // state, which is checked (CheckOrderConservation; a violation is written to stderr and to
  // the report's internal_error). Idempotent: later calls return the first call's report.
  ShutdownReport Shutdown(int64_t timeout_ns);
  // Whether Shutdown has completed.
  bool shut_down() const { return shutdown_.done(); }

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
  // The scenario as given (service graphs: config_ is its working copy, see live_services.h).
  const ScenarioConfig& config() const { return scenario_; }
  // The label of dependency `dep` in the result, the metrics and the transitions: its name, or
  // "<service>.<name>" for a service's own dependency (model/service_graph.h FlatDependencies).
  const std::string& DependencyLabel(int dep) const { return config_.dependencies[dep].name; }
  // The id of the result's first order record (records are kept for the most recent
  // max_order_records orders); meaningful once Shutdown returned.
  int64_t recorded_first_id() const { return recorded_first_id_; }

 private:
  using OrderSlot = LiveOrderSlot;
  using Job = LiveJob;

  LiveEngine(const ScenarioConfig& config, const LiveOptions& options);
  absl::Status InitMetrics();
  // Submit and SubmitOrder; `ref` (if not null) receives a reference to the order.
  absl::StatusOr<int64_t> SubmitImpl(int key, std::string_view idempotency_key, OrderRef* ref,
                                     std::optional<OrderOrigin> origin = std::nullopt);

  // The chunk holding `id` in the table, or nullptr (never submitted, or released).
  Chunk* FindChunkLocked(int64_t id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(index_mu_);
  // Releases the chunks every order of which is terminal and older than the retained history:
  // their records go to the result's store, the table drops its reference.
  void ReleaseChunks();
  void RecordChunkLocked(const Chunk& c, int64_t count) ABSL_EXCLUSIVE_LOCKS_REQUIRED(index_mu_);
  std::chrono::steady_clock::time_point ToSteady(int64_t t_ns) const;

  void RecordEvent(int64_t id, OrderStatus status, FailReason reason, int64_t t_ns, int attempts,
                   int charges, bool degraded = false);
  // `ledger_applied` (>= 0) overrides the flow's applied-charge count when the ledger decided.
  // The order's last touch of its slot: after it the chunk may be freed.
  void Finish(LiveWorker* w, Chunk& c, int64_t id, OrderStatus status, FailReason reason,
              const OrderFlow* flow, int64_t now_ns, bool admitted, int ledger_applied = -1);
  void NotifyDone();
  void OnTransition(int dep, const BreakerTransition& t);

  void OpenLoop(int64_t t0_ns, int64_t end_ns);
  void ClosedLoopClient(int client, int64_t t0_ns, int64_t end_ns);
  void LoadThreadDone();
  // Waits for `slot` to become terminal (nullptr: for the engine to become idle).
  bool WaitUntil(const OrderSlot* slot, std::chrono::steady_clock::time_point deadline,
                 bool forever, bool stop_with_load) const;
  bool LoadSleepUntil(int64_t t_ns) const;
  // Like LoadSleepUntil, but also returns (kRateChanged) as soon as SetArrivalRate moves the
  // rate version away from `seen`.
  enum class LoadWake { kDue, kStopped, kRateChanged };
  LoadWake LoadSleepOrRateChange(int64_t t_ns, uint64_t seen) const;
  void BuildResult(int64_t end_ns);

  const ScenarioConfig config_;
  const LiveOptions options_;
  Rng rng_;
  std::vector<DependencyRuntime> deps_;
  // Admission, the job queue and the rate waits (set by the constructor).
  std::unique_ptr<LiveIntake> intake_;
  std::unique_ptr<PaymentLedger> ledger_;  // set by Create
  std::string run_tag_;                    // makes derived idempotency keys unique to this run

  // Order status changes (options_.order_events).
  mutable Mutex order_events_mu_;
  std::vector<LiveOrderEvent> order_events_ ABSL_GUARDED_BY(order_events_mu_);

  // The order table: chunks by id. `young_` holds consecutive chunks from `young_base_` (the
  // newest is being filled); a chunk moves to `old_` once past the retained history, and leaves
  // it when its last order ends (old_ holds only chunks with orders in flight: few).
  mutable Mutex index_mu_;
  std::deque<Chunk*> young_ ABSL_GUARDED_BY(index_mu_);
  int64_t young_base_ ABSL_GUARDED_BY(index_mu_) = 0;  // base id of young_.front()
  std::vector<Chunk*> old_ ABSL_GUARDED_BY(index_mu_);
  // Records of released orders for the result (record_orders): runs of consecutive records by
  // first id, the oldest dropped beyond max_order_records.
  std::map<int64_t, std::vector<OrderRecord>> recorded_ ABSL_GUARDED_BY(index_mu_);
  int64_t recorded_count_ ABSL_GUARDED_BY(index_mu_) = 0;
  std::atomic<int64_t> keys_held_{0};       // idempotency keys of orders not yet terminal
  std::atomic<int64_t> finished_twice_{0};  // Finish on a terminal order: an engine bug
  std::atomic<int64_t> next_id_{0};
  std::atomic<int64_t> in_system_{0};
  std::atomic<bool> started_{false};
  std::chrono::steady_clock::time_point start_;

  // Waiters for order completion (Wait, WaitIdle, closed-loop clients).
  mutable Mutex done_mu_;
  mutable CondVar done_cv_;
  mutable std::atomic<int> done_waiters_{0};

  // Load generators.
  mutable Mutex load_mu_;
  mutable CondVar load_cv_;
  std::atomic<bool> load_stop_{false};
  std::vector<std::thread> load_threads_ ABSL_GUARDED_BY(load_mu_);
  std::atomic<int> load_active_{0};
  // The open-loop rate (SetArrivalRate). The version moves under load_mu_ after the rate is
  // stored, so that a generator waiting on load_cv_ cannot miss a change.
  std::atomic<double> arrival_rate_{0.0};
  std::atomic<uint64_t> arrival_rate_version_{0};

  // Accounting for orders finished outside a worker (queue rejections, shutdown cancellations).
  Mutex aux_mu_;
  LiveWorker aux_ ABSL_GUARDED_BY(aux_mu_);

  // Metrics (every part writes its series; the sampler reads them and refreshes the gauges).
  LiveMetrics metrics_;

  // Phase edges (known in advance, bounded by the scenario) and the most recent breaker
  // transitions (at most options_.max_transitions: a breaker flapping for weeks must not grow the
  // engine), for the result and for TakeTransitions.
  Mutex events_mu_;
  std::vector<SimTransition> phase_edges_ ABSL_GUARDED_BY(events_mu_);
  std::deque<SimTransition> transitions_ ABSL_GUARDED_BY(events_mu_);
  int64_t transitions_dropped_ ABSL_GUARDED_BY(events_mu_) = 0;  // the oldest, beyond the cap
  int64_t transitions_taken_ ABSL_GUARDED_BY(events_mu_) = 0;    // counted from the first ever

  // The workers and what they block on (set by the constructor).
  std::unique_ptr<LiveWorkerPool> pool_;

  // The time series and the scraped gauges (set by the constructor, after everything it reads).
  std::unique_ptr<LiveSampler> sampler_;

  // The shutdown sequence, the cancellation every wait watches, the workers still running.
  LiveShutdown shutdown_;
  SimResult result_;               // written once by Shutdown, read-only afterwards
  int64_t recorded_first_id_ = 0;  // likewise

  // Service graphs (live_services.{h,cc}; model/service_graph.h): config_ is the working copy
  // of the scenario, whose dependencies are every tier's (root first, labelled
  // "<service>.<name>"), so that everything indexed by dependency covers them; the services'
  // workers and queues are the pool's.
  const ScenarioConfig scenario_;  // as given (config())
};

}  // namespace rlab

#endif  // RLAB_LIVE_LIVE_ENGINE_H_
