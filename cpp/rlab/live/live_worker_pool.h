#ifndef RLAB_LIVE_LIVE_WORKER_POOL_H_
#define RLAB_LIVE_LIVE_WORKER_POOL_H_

// The live engine's worker pool: threads that take orders from the intake's job queue and
// interpret the shared OrderFlow by blocking. An attempt really takes the fault model's latency
// (waiting in a capacity-limited dependency's line first), a backoff really sleeps, a bulkhead
// wait really waits; every wait watches the shutdown's cancellation. The pool owns its workers,
// the dependencies' bulkhead lines and capacity-limited servers, their current fault models and
// their in-flight counts; it ends each order through Hooks::finish.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "rlab/core/histogram.h"
#include "rlab/core/metrics.h"
#include "rlab/core/mutex.h"
#include "rlab/core/rng.h"
#include "rlab/live/live_intake.h"
#include "rlab/live/live_metrics.h"
#include "rlab/live/live_order.h"
#include "rlab/live/live_shutdown.h"
#include "rlab/live/payment_ledger.h"
#include "rlab/model/capacity_server.h"
#include "rlab/model/faults.h"
#include "rlab/model/order_flow.h"
#include "rlab/model/run_result.h"
#include "rlab/model/scenario.h"
#include "rlab/model/service_accounting.h"
#include "rlab/policy/queue_discipline.h"

namespace rlab {

// What a worker owns; only its thread touches it until the workers are joined (the engine's
// accounting for orders ended outside a worker is one too).
struct LiveWorker {
  int index = 0;
  std::thread thread;
  std::vector<FlowStats> stats;      // the flows' counters, per dependency
  std::vector<FlowStats> published;  // what was already added to the shared counters
  std::vector<RandomStream> fault_rngs;
  std::vector<RandomStream> policy_rngs;
  // The load balancers' draws, per dependency (used by dependencies with replicas only).
  std::vector<RandomStream> replica_rngs;
  // The fault models this worker draws from, refreshed when a dependency's version moves.
  std::vector<std::shared_ptr<const FaultModel>> fault_models;
  std::vector<uint64_t> fault_versions;
  LogHistogram latency_completed, latency_terminal, queue_wait;
  double sojourn_sum_s = 0.0;
  int64_t busy_ns = 0;
  int64_t charges = 0, applied_charges = 0, double_charged = 0;
  // Service graphs: the fallback-cache key of the flow this worker runs (its calls to a
  // service carry it to the child request).
  int32_t flow_key = 0;
};

// The worker threads and everything they block on. Thread-safe.
class LiveWorkerPool {
 public:
  // What the pool needs from the rest of the engine.
  struct Hooks {
    // Ends an order (the order table's last touch): `w` the worker that accounts for it,
    // `ledger_applied` (>= 0) the ledger's applied-charge count when it decided.
    std::function<void(LiveWorker* w, const LiveJob& job, OrderStatus status, FailReason reason,
                       const OrderFlow* flow, int64_t now_ns, bool admitted, int ledger_applied)>
        finish;
    // Records an order status change (only called with order events on).
    std::function<void(int64_t id, OrderStatus status, int64_t t_ns)> record_event;
  };

  // Builds `config.workers` workers (their draws from `rng`) and a line and server per
  // dependency of `deps`. `ledger` is read at use time (the engine opens it after building the
  // pool); `run_tag` makes derived idempotency keys unique to the run.
  LiveWorkerPool(const ScenarioConfig& config, bool order_events, Rng& rng,
                 std::vector<DependencyRuntime>& deps, LiveMetrics& metrics, LiveIntake& intake,
                 LiveShutdown& shutdown, const std::unique_ptr<PaymentLedger>& ledger,
                 std::string run_tag, Hooks hooks);
  ~LiveWorkerPool();  // live_worker_pool.cc, where the services' types are complete
  LiveWorkerPool(const LiveWorkerPool&) = delete;
  LiveWorkerPool& operator=(const LiveWorkerPool&) = delete;

  // Starts the worker threads; engine time 0 is `start`.
  void Start(std::chrono::steady_clock::time_point start);
  // Wakes every wait that does not watch LiveShutdown::SleepUntil (capacity lines, bulkhead
  // lines), after the shutdown's cancellation was set.
  void InterruptWaits();
  // Joins the worker threads (they exit once the job queue is closed and empty).
  void Join();
  // Replaces dependency `dep`'s fault model for attempts that start from now on.
  void SetFaults(int dep, const FaultsConfig& faults);

  // The workers, for the result (only once they are joined).
  const std::vector<std::unique_ptr<LiveWorker>>& workers() const { return workers_; }
  // Workers holding an order now.
  const std::atomic<int64_t>& busy() const { return busy_; }
  // Attempts in progress, per dependency.
  const std::atomic<int64_t>* dep_in_flight() const { return dep_in_flight_.get(); }
  // Server time of cancelled copies, per dependency.
  const std::atomic<int64_t>* dep_wasted_ns() const { return dep_wasted_ns_.get(); }
  // Most attempts in progress at once on dependency `dep` (unlimited capacity).
  int64_t dep_max_load(int dep) const { return dep_max_load_[dep].load(); }
  // SetFaults calls so far for dependency `dep`.
  uint64_t faults_version(int dep) const {
    return fault_slots_[dep]->version.load(std::memory_order_acquire);
  }
  // The totals of dependency `dep`'s capacity-limited server (`replica` < 0) or replica's, once
  // the workers are joined. The server first works off its line, as the simulated one does
  // after the last order: every call left in it was abandoned (served for nobody or dropped).
  CapacityCounts ServerTotals(int dep, int replica);
  // The number of replicas' servers of dependency `dep`.
  int replica_servers(int dep) const { return static_cast<int>(replica_servers_[dep].size()); }

  // Service graphs (live_services.{h,cc}; model/service_graph.h). Each non-root service has its
  // own worker threads and bounded job queue, owned here; an attempt of a dependency whose
  // `service` is set is a request to that service, and the calling worker waits for its answer.
  // The pool's config is then the scenario's working copy (LiveWorkingConfig: every tier's
  // dependencies, root first); `scenario` is the scenario as given (it must outlive the pool).
  // Called once by the engine, right after building the pool (no thread runs yet).
  void InitServices(const ScenarioConfig& scenario, Rng& rng);
  // rlab_service_* (InitMetrics); nothing without services.
  absl::Status InitServiceMetrics(const std::vector<double>& latency_bounds_s);
  // An order ended (Finish): rlab_service_*{service="root"}.
  void OnRootServiceEnd(OrderStatus status, int64_t sojourn_ns);
  // Shutdown, once the root's workers are joined: the services' work left may end until
  // `grace_end` (`forever`: however long it takes), then it is cancelled and their threads
  // joined.
  void StopServices(std::chrono::steady_clock::time_point grace_end, bool forever);
  // The sampler: the services' `service.<name>.*` columns of a row.
  void SampleServices(absl::FunctionRef<void(double)> put);
  // The result's services (empty without services; entry 0 is the root's, left to the caller).
  std::vector<ServiceTotals> ServiceResult();
  // The services' workers, for the result (only once StopServices returned).
  const std::vector<std::unique_ptr<LiveWorker>>& service_workers() const {
    return service_workers_;
  }

 private:
  struct ServiceTier;  // live_services.h
  struct ServiceCall;  // live_services.h

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
    CondVar cv;
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

  // A call waiting in a capacity-limited server's line: its ticket and its caller's timeout.
  struct LineCall {
    uint64_t ticket = 0;
    int64_t until_ns = 0;
  };
  // What the server decided for a waiting call: its service started at `start_ns` (when its
  // slot freed) with `draw`, or the line's discipline dropped it (CoDel: 503).
  struct LineGrant {
    bool dropped = false;
    int64_t start_ns = 0;
    AttemptDraw draw;
  };
  // One dependency's server when it has limited capacity: the line and its rules
  // (model/capacity_server.h), interpreted under `mu`. The server learns that a call's service
  // ended from its end time (drawn when it started), and hands the freed slot out at that time.
  struct Server {
    explicit Server(const CapacityConfig& capacity) : line(capacity) {}
    Mutex mu;
    CondVar cv;
    CapacityServer<LineCall> line ABSL_GUARDED_BY(mu);
    // The end times of the calls in service (as many as line.in_service()).
    std::priority_queue<int64_t, std::vector<int64_t>, std::greater<>> ends ABSL_GUARDED_BY(mu);
    // The calls whose thread waits in the line, by ticket, with the server's decision once made.
    // A thread that gives up removes its own; its call stays in line (rule 1).
    absl::flat_hash_map<uint64_t, std::optional<LineGrant>> waiters ABSL_GUARDED_BY(mu);
    uint64_t next_ticket ABSL_GUARDED_BY(mu) = 0;
    int64_t clock_ns ABSL_GUARDED_BY(mu) = 0;  // the latest time the line was told (monotonic)
    // Draws for the calls started from the line (at the instant their slot freed).
    std::optional<RandomStream> rng ABSL_GUARDED_BY(mu);
  };
  // How a blocking step ended.
  using WaitEnd = LiveWaitEnd;
  struct AttemptEnd {
    Outcome outcome;
    bool committed = false;
    bool interrupted = false;
  };

  // The engine time now (the pool runs only after Start).
  int64_t NowNs() const;
  std::chrono::steady_clock::time_point ToSteady(int64_t t_ns) const;

  void WorkerLoop(LiveWorker& w);
  void Process(LiveWorker& w, const LiveJob& job);
  // Interprets `flow` by blocking, from Begin at `start_ns` until it is done or the shutdown
  // interrupts it (the flow is then cancelled); its bulkhead hand-offs count from dependency
  // `first_dep`. `on_end(dep, end)` sees every attempt's answer. Returns the engine time at the
  // end. An order's flow (Process) and a service request's (ServeCall, live_services.cc).
  int64_t RunFlow(LiveWorker& w, OrderFlow& flow, int64_t start_ns, int first_dep,
                  absl::FunctionRef<void(int dep, const AttemptEnd& end)> on_end);
  AttemptEnd DoAttempt(LiveWorker& w, const FlowAction& action);
  // Runs a hedged or fanned-out call (a round of copies, unlimited capacity) from its first
  // kAttempt to the flow's first action after the round; `on_end(dep, end)` sees every answer.
  template <typename OnEnd>
  FlowAction RunRound(LiveWorker& w, OrderFlow& flow, FlowAction action, OnEnd& on_end,
                      bool* cancelled);
  // `server`: the line to wait in (a replica's), or null for the dependency's own.
  AttemptEnd DoLimitedAttempt(LiveWorker& w, const FaultModel& fm, const FlowAction& action,
                              int64_t now_ns, Server* server = nullptr);
  // Brings the line up to `now_ns`: every call in service that ended by then frees its slot at
  // its end time, which the line hands out at once (CapacityServer::Next). Returns the time the
  // line is at (never earlier than before: threads read the clock before taking the lock).
  int64_t AdvanceLocked(Server& s, const FaultModel& fm, int64_t now_ns)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // The fault model `w` must use for an attempt of `dep` starting now.
  const FaultModel& ModelFor(LiveWorker& w, int dep);
  // The key order `id`'s charges carry.
  std::string LedgerKey(const LiveOrderSlot& o, int64_t id) const;
  WaitEnd SleepUntil(int64_t t_ns) const;
  WaitEnd WaitBulkhead(int dep, int64_t until_ns);
  // `mask` bits count from dependency `first_dep` (a service's flow: its first dependency).
  void DeliverHandoffs(uint32_t mask, int first_dep = 0);
  void PublishStats(LiveWorker& w);

  // Service graphs (live_services.cc).
  void StartServices();  // Start: the services' workers, before the root's
  // DoAttempt for a dependency that calls a service.
  AttemptEnd CallService(LiveWorker& w, const FlowAction& a);
  void ServiceWorkerLoop(ServiceTier& tier, LiveWorker& w);
  void ServeCall(ServiceTier& tier, LiveWorker& w, const std::shared_ptr<ServiceCall>& call);
  // `held_worker`: false for a request its intake.discipline dropped at dequeue (no worker).
  void EndCall(ServiceTier& tier, ServiceCall& call, ChildEnd end, bool held_worker = true);
  void WakeServiceCallers();  // InterruptWaits: callers waiting for an answer wake
  bool CallsService(int dep) const { return !dep_tier_.empty() && dep_tier_[dep] > 0; }
  // Queues `call` at tier `t` or refuses it (its queue is full): true when queued. Every call
  // to a service is admitted here (CallService, RunServiceRound).
  bool QueueServiceCall(ServiceTier& t, const std::shared_ptr<ServiceCall>& call);
  // A call parked for its service's intake.rate_limit permit is due (the tier's rate_waits
  // thread): it meets the intake.limit and the queue now, or ends.
  void ReleaseServiceCall(ServiceTier& t, const std::shared_ptr<ServiceCall>& call);
  // RunRound for a dependency that calls a service: each copy of the hedged or fanned-out call
  // is a request of its own to the service.
  FlowAction RunServiceRound(LiveWorker& w, OrderFlow& flow, FlowAction action,
                             absl::FunctionRef<void(int dep, const AttemptEnd& end)> on_end,
                             bool* cancelled);

  const ScenarioConfig& config_;
  const bool order_events_;
  std::vector<DependencyRuntime>& deps_;
  LiveMetrics& metrics_;
  LiveIntake& intake_;
  LiveShutdown& shutdown_;
  const std::unique_ptr<PaymentLedger>& ledger_;
  const std::string run_tag_;
  const Hooks hooks_;
  std::chrono::steady_clock::time_point start_;  // set by Start before any thread runs

  std::vector<std::unique_ptr<LiveWorker>> workers_;
  std::vector<std::unique_ptr<BulkheadLine>> bulkhead_lines_;
  std::vector<std::unique_ptr<Server>> servers_;
  // Dependencies with replicas: one server per replica (capacity lines), empty otherwise.
  std::vector<std::vector<std::unique_ptr<Server>>> replica_servers_;
  std::unique_ptr<std::atomic<int64_t>[]> dep_in_flight_;  // attempts in progress
  std::unique_ptr<std::atomic<int64_t>[]> dep_max_load_;   // most attempts in progress at once
  std::unique_ptr<std::atomic<int64_t>[]> dep_wasted_ns_;  // service of cancelled copies
  std::vector<std::unique_ptr<FaultSlot>> fault_slots_;
  std::atomic<int64_t> busy_{0};

  // Service graphs (set by InitServices; empty without services).
  const ScenarioConfig* scenario_ = nullptr;  // as given
  int root_deps_ = 0;          // the root's dependencies: config_.dependencies[0, root_deps_)
  std::vector<int> dep_tier_;  // per dependency: the tier it calls (1 + service index), or 0
  std::vector<std::unique_ptr<ServiceTier>> tiers_;
  std::vector<std::unique_ptr<LiveWorker>> service_workers_;
  Mutex service_waiters_mu_;
  std::vector<ServiceCall*> service_waiters_ ABSL_GUARDED_BY(service_waiters_mu_);
  // rlab_service_requests / rlab_service_latency_seconds, service="root" (the orders).
  std::array<Counter*, 4> root_service_requests_{};
  Histogram* root_service_latency_ = nullptr;
};

}  // namespace rlab

#endif  // RLAB_LIVE_LIVE_WORKER_POOL_H_
