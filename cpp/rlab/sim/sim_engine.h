#ifndef RLAB_SIM_SIM_ENGINE_H_
#define RLAB_SIM_SIM_ENGINE_H_

// The simulated engine: the order pipeline of DESIGN §2 in virtual time. A single-threaded
// discrete-event loop interprets the shared OrderFlow by scheduling events, so a run is fast and
// bit-identical for a given seed. Nothing here reads a clock or starts a thread.

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "rlab/core/histogram.h"
#include "rlab/core/rng.h"
#include "rlab/model/arrivals.h"
#include "rlab/model/capacity_server.h"
#include "rlab/model/faults.h"
#include "rlab/model/order_flow.h"
#include "rlab/model/run_result.h"
#include "rlab/model/scenario.h"
#include "rlab/model/series_row.h"
#include "rlab/model/service_accounting.h"
#include "rlab/model/service_graph.h"
#include "rlab/model/service_intake.h"
#include "rlab/policy/load_shedder.h"
#include "rlab/sim/attempt_payload.h"
#include "rlab/sim/event_queue.h"
#include "rlab/sim/flat_run.h"

namespace rlab {

// How to run and what to keep.
struct SimOptions {
  int64_t sample_every_ns = kNsPerSecond;  // base interval (model/sample_schedule.h); 0: none
  bool record_orders = true;               // one OrderRecord per order (32 bytes each)
  bool record_events = true;               // breaker transitions and phase edges
  int64_t until_ns = -1;  // stop at this virtual time, leaving orders in flight; -1: drain
  int64_t max_events = 4'000'000'000;  // a run that needs more stops with an error
  // A run whose virtual clock stays on one instant for this many events in a row stops with an
  // error: zero think time and zero-latency answers make a closed loop that never advances time
  // (a Zeno loop) and would otherwise spin until max_events. Legitimate bursts at one instant
  // (every client of a closed loop starting at t = 0) are far below it.
  int64_t max_events_at_one_instant = 20'000'000;
  // Whether a scenario of the flat shape (sim/flat_run.h) runs on the flat path, which gives
  // bit-identical results faster. false (or the environment variable RLAB_SIM_FLAT=0) forces the
  // general loop: the differential tests compare the two.
  bool flat_path = true;
};

// Runs one scenario once. Construct, Run, read result().
class SimEngine {
 public:
  // `config` must have passed ValidateScenario; it must outlive the engine.
  SimEngine(const ScenarioConfig& config, const SimOptions& options);
  SimEngine(const SimEngine&) = delete;
  SimEngine& operator=(const SimEngine&) = delete;

  // Runs to the end (drained, or until_ns). Fails with ResourceExhausted when max_events is hit or
  // when virtual time stops advancing (max_events_at_one_instant).
  absl::Status Run();

  // The run's output; complete after Run returns.
  SimResult& result() { return result_; }

 private:
  enum EventType : uint32_t {
    kArrival = 0,
    kClientSubmit,
    kAttemptEnd,
    kServiceDone,
    kSleepEnd,
    kBulkheadTimeout,
    kSample,
    kHedgeTimer,
    kIntakeReady,  // an order's intake.rate_limit permit is due
    kServiceCall,  // service graphs: a call to a service reaches it (a = index into calls_)
    kTierFree,     // service graphs: a worker of tier a is free (after its answer went out)
    // Service graphs: a child's intake.rate_limit permit is due (a: slot, b: gen).
    kServiceReady,
  };

  // An admitted order that is not terminal yet.
  struct Active {
    std::optional<OrderFlow> flow;
    int64_t arrival_ns = 0;
    int64_t start_ns = -1;
    int64_t deadline_ns = 0;
    int64_t record = -1;          // index into result_.orders, or -1
    int64_t retry_after_ns = -1;  // of the pending answer
    uint32_t gen = 0;  // bumped whenever the order starts waiting: older events are stale
    int32_t client = -1;
    int32_t key = 0;
    int32_t attempt_dep = -1;  // the dependency of the attempt in progress
    uint32_t outstanding = 0;  // the copies of that call in progress (bit c: copy c)
    // Hedge / fan-out calls only, per copy: the Retry-After of its answer, and its service time
    // once the server started it (-1 before), for the wasted work of cancelled copies.
    std::vector<int64_t> copy_retry_after_ns;
    std::vector<int64_t> copy_service_ns;
    // Dependencies with replicas only, per copy: the replica serving it (-1: none was
    // available) and when it was sent.
    std::vector<int32_t> copy_replica;
    std::vector<int64_t> copy_sent_ns;
    std::vector<uint64_t> copy_replica_permit;  // the replica breaker's permit, per copy
    bool holds_worker = false;
    bool live = false;
    OrderOrigin origin;  // criticality and tenant (intake.shedding)
    // intake.limit: the order's permit (admitted orders hold one until they end).
    // A child request (service graphs) holds its service's intake.limit permit in the same two.
    LimitToken intake_token;
    bool holds_intake = false;
    // Service graphs: the tier serving this request (0: the root, an order) and, for a child
    // request, the attempt waiting for it (parent slot, gen, global dep, copy) and its timeout.
    int32_t tier = 0;
    uint32_t parent = 0;
    uint32_t parent_gen = 0;
    int32_t parent_dep = -1;
    uint8_t parent_copy = 0;
    bool caller_until_is_deadline = false;
    int64_t caller_until_ns = 0;
  };

  // Service graphs: a call on its way to a service (handled by a kServiceCall event, so that no
  // slot is allocated while a flow action is being applied).
  struct PendingCall {
    uint32_t slot;
    uint32_t gen;
    int32_t dep;
    int32_t copy;
    int64_t until_ns;
    bool until_is_deadline;
  };

  // Service graphs: a non-root tier's worker pool and job queue (FIFO). The root's are the
  // members job_queue_, ready_, idle_workers_ below.
  struct Tier {
    int first_dep = 0;  // its dependencies in deps_: [first_dep, first_dep + num_deps)
    int num_deps = 0;
    int queue_capacity = 0;
    int64_t deadline_ns = 0;
    std::deque<uint32_t> jobs;
    std::deque<uint32_t> ready;
    int idle = 0;
    bool dispatching = false;
    int workers = 0;  // its pool size (busy = workers - idle)
    // Its own intake (services[name].intake: discipline, limit) and the limiter's draws.
    std::unique_ptr<ServiceIntake> intake;
    RandomStream intake_rng{0};
  };

  // A call waiting in a dependency's server line: the attempt copy to resume.
  struct LineCall {
    uint32_t slot;
    uint32_t gen;
    int64_t until_ns;
    bool until_is_deadline;
    uint8_t copy;
  };

  // One dependency's server and its load.
  struct Server {
    int in_flight = 0;                                           // attempts whose caller is waiting
    std::deque<std::pair<uint32_t, uint32_t>> bulkhead_waiters;  // (slot, gen), FIFO
    // With limited capacity: the line and its rules (model/capacity_server.h).
    std::optional<CapacityServer<LineCall>> capacity;
  };

  void Schedule(int64_t t_ns, EventType type, uint32_t a = 0, uint32_t b = 0, uint32_t c = 0);
  void NewOrder(int64_t now_ns, int client);
  void ScheduleNextArrival(int64_t now_ns);
  void ScheduleClient(int client, int64_t at_ns);
  uint32_t AllocSlot();
  void DispatchWork(int64_t now_ns);
  // Takes the next job as the intake's queue discipline says, failing the ones it drops;
  // kNoJob when it dropped every job waiting.
  uint32_t TakeJob(int64_t now_ns);
  void Start(uint32_t slot, int64_t now_ns);
  void Apply(uint32_t slot, const FlowAction& action, int64_t now_ns);
  void Handle(uint32_t slot, const FlowAction& action, int64_t now_ns);
  void DoAttempt(uint32_t slot, const FlowAction& action, int64_t now_ns);
  void LaunchCopy(uint32_t slot, int copy, const FlowAction& action, int64_t now_ns);
  void BeginService(int dep, uint32_t slot, uint32_t gen, int copy, int64_t until_ns,
                    bool until_is_deadline, bool caller_waiting, int64_t now_ns, int replica = -1);
  void OnAttemptEnd(uint32_t slot, uint32_t gen, uint32_t packed, int64_t now_ns);
  void OnHedgeTimer(uint32_t slot, uint32_t gen, int64_t now_ns);
  // Stops waiting for the copies the flow cancelled (its call was decided without them).
  void SyncCopies(uint32_t slot, const FlowAction& next);
  void OnServiceDone(int dep, int64_t now_ns, int replica = -1);
  // Replicas: the server of `replica` of `dep` (the dependency's own with replica < 0), its
  // capacity and fault model.
  Server& ServerOf(int dep, int replica);
  const FaultModel& FaultsOf(int dep, int replica) const;
  // Replicas: tells the pool how copy `copy` of the slot's call ended (no-op without replicas).
  void EndAtReplica(uint32_t slot, int dep, int copy, const Outcome& outcome, int64_t now_ns);
  void Finish(uint32_t slot, int64_t now_ns);
  void FinishWithoutFlow(uint32_t slot, OrderStatus status, FailReason reason, int64_t now_ns);
  void Account(OrderStatus status, FailReason reason, bool degraded, int64_t arrival_ns,
               int64_t end_ns, bool admitted);
  void SetInSystem(int64_t now_ns, int delta);
  void SetBusy(int64_t now_ns, int delta);
  void Sample(int64_t now_ns, bool final);
  void InitTimeSeries();
  RandomStream& FlowRng(uint32_t slot);
  // intake.limit: rejects an order at arrival (reason limited or queue_full).
  void RejectAtIntake(int64_t now_ns, int64_t record, int client, FailReason reason);
  // intake.rate_limit: an order that waited for its permit goes on through intake.limit and
  // the queue.
  void OnIntakeReady(uint32_t slot, uint32_t gen, int64_t now_ns);
  // Service graphs (model/service_graph.h).
  void CallService(uint32_t slot, int copy, const FlowAction& action, int64_t now_ns);
  void OnServiceCall(uint32_t index, int64_t now_ns);
  void DispatchTier(int tier, int64_t now_ns);
  void FinishChild(uint32_t slot, OrderStatus status, FailReason reason, int64_t now_ns,
                   bool dropped = false);
  bool CallerWaiting(const Active& child) const;
  // A worker of the slot's tier is free again (after the request ended or parked in a backoff).
  void ReleaseTierWorker(int tier, int64_t now_ns);
  // A child that waited for its service's intake.rate_limit permit goes on through its
  // intake.limit and its queue (as OnIntakeReady at the root).
  void OnServiceReady(uint32_t slot, uint32_t gen, int64_t now_ns);

  const ScenarioConfig& config_;
  const SimOptions options_;
  Rng rng_;
  RandomStream arrival_rng_;
  ArrivalProcess arrivals_;
  RandomStream key_rng_;
  RandomStream think_rng_;
  std::vector<RandomStream> fault_rngs_;
  std::vector<RandomStream> policy_rngs_;
  std::vector<DependencyRuntime> deps_;
  // Dependencies with replicas: one server per replica (empty otherwise), and the balancer's
  // draws (a stream of their own: adding replicas shifts no other draw).
  std::vector<std::vector<Server>> replica_servers_;
  std::vector<RandomStream> replica_rngs_;
  std::vector<FlowStats> stats_;
  std::vector<Server> servers_;
  std::unique_ptr<ConcurrencyLimiter> intake_limiter_;  // intake.limit
  std::unique_ptr<RateGate> intake_rate_;               // intake.rate_limit
  RandomStream intake_rng_;                             // its draws
  EventQueue events_;
  int64_t now_ns_ = 0;

  std::vector<Active> active_;
  std::vector<uint32_t> free_slots_;
  std::deque<uint32_t> job_queue_;
  std::deque<uint32_t> ready_;  // orders woken from a backoff, waiting for a worker
  int idle_workers_ = 0;
  bool dispatching_ = false;
  int in_system_ = 0;
  int64_t last_in_system_change_ns_ = 0;
  double in_system_integral_ns_ = 0.0;
  double sojourn_sum_ns_ = 0.0;
  int busy_ = 0;
  int64_t last_busy_change_ns_ = 0;

  // Time series (model/series_row.h): the columns' layout, the row writer (it keeps the
  // counters of the previous row) and the services' state at the previous row (per tier, root
  // (unused) first).
  SeriesLayout series_layout_;
  SeriesRow series_{0};
  std::vector<ServiceSample> last_services_;
  int64_t last_sample_ns_ = 0;
  SimResult result_;
  // intake.shedding: the shedder and the draws of each arrival's class and tenant.
  std::unique_ptr<LoadShedder> shedder_;
  RandomStream origin_rng_;
  // The job queue's discipline (intake.discipline); FIFO takes the plain path.
  QueueDiscipline intake_discipline_{config_.intake.discipline};
  // Service graphs: every tier's dependencies (deps_, stats_, servers_... are indexed the
  // same way), the tier each dependency calls (0: a leaf), the non-root tiers (tiers_[t - 1]
  // is tier t), and the calls on their way.
  std::vector<FlatDependency> flat_deps_;
  std::vector<int> dep_target_;
  std::vector<Tier> tiers_;
  std::vector<PendingCall> calls_;
  std::vector<uint32_t> free_calls_;
  // An order's key (its draw only when something reads it: keys_used_).
  int32_t DrawKey();
  bool keys_used_ = true;
  // The flat path (sim/flat_run.h) runs the events of a flat-shaped scenario on this engine's
  // queue, counters and result.
  friend class FlatRun;
  void OnSampleTick(int64_t now_ns);
  absl::Status NoProgressError(int64_t events_at_instant) const;
  absl::Status TooManyEventsError() const;
};

}  // namespace rlab

#endif  // RLAB_SIM_SIM_ENGINE_H_
