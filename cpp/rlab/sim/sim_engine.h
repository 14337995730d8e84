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
#include "rlab/model/faults.h"
#include "rlab/model/order_flow.h"
#include "rlab/model/scenario.h"
#include "rlab/sim/event_queue.h"

namespace rlab {

// How to run and what to keep.
struct SimOptions {
  int64_t sample_every_ns = kNsPerSecond;  // time-series interval; 0 keeps no time series
  bool record_orders = true;               // one OrderRecord per order (32 bytes each)
  bool record_events = true;               // breaker transitions and phase edges
  int64_t until_ns = -1;  // stop at this virtual time, leaving orders in flight; -1: drain
  int64_t max_events = 4'000'000'000;  // a run that needs more stops with an error
};

// One order's life, as kept in the per-order records.
struct OrderRecord {
  int64_t arrival_ns = 0;
  int64_t start_ns = -1;  // when a worker took it; -1 if never
  int64_t end_ns = -1;    // when it became terminal; -1 if still in flight
  uint16_t attempts = 0;
  uint8_t status = 0;  // OrderStatus
  uint8_t reason = 0;  // FailReason
  uint8_t degraded = 0;
  uint8_t charges = 0;  // committed charges
  uint8_t applied = 0;  // charges the ledger applied (> 1 is a double charge)
  uint8_t client = 0;   // unused padding kept explicit
};
static_assert(sizeof(OrderRecord) == 32);

// Per-order records in fixed-size chunks: growth never copies what is already recorded (no 2x
// peak of a growing vector), and a consumer can convert and free them chunk by chunk.
class OrderRecords {
 public:
  static constexpr size_t kChunk = size_t{1} << 16;

  // Appends a default record and returns it.
  OrderRecord& emplace_back() {
    if (size_ % kChunk == 0) {
      chunks_.emplace_back();
      chunks_.back().reserve(kChunk);
    }
    ++size_;
    return chunks_.back().emplace_back();
  }
  // Grows to `n` records (new ones default); never shrinks.
  void resize(size_t n) {
    while (size_ < n) emplace_back();
  }
  OrderRecord& operator[](size_t i) { return chunks_[i / kChunk][i % kChunk]; }
  const OrderRecord& operator[](size_t i) const { return chunks_[i / kChunk][i % kChunk]; }
  OrderRecord& back() { return chunks_.back().back(); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t num_chunks() const { return chunks_.size(); }
  const std::vector<OrderRecord>& chunk(size_t i) const { return chunks_[i]; }
  // Frees chunk `i` (its records must no longer be needed; indexing into it is then invalid).
  void ReleaseChunk(size_t i) { std::vector<OrderRecord>().swap(chunks_[i]); }

  // Read-only iteration in order.
  class const_iterator {
   public:
    const_iterator(const OrderRecords* r, size_t i) : r_(r), i_(i) {}
    const OrderRecord& operator*() const { return (*r_)[i_]; }
    const_iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator!=(const const_iterator& o) const { return i_ != o.i_; }

   private:
    const OrderRecords* r_;
    size_t i_;
  };
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, size_}; }

 private:
  std::vector<std::vector<OrderRecord>> chunks_;
  size_t size_ = 0;
};

// A state change worth plotting: a breaker transition or a fault phase edge.
struct SimTransition {
  enum class Kind : uint8_t { kBreaker = 0, kPhaseStart = 1, kPhaseEnd = 2 };
  int64_t t_ns = 0;
  int dep = 0;
  Kind kind = Kind::kBreaker;
  BreakerState from = BreakerState::kClosed;
  BreakerState to = BreakerState::kClosed;
  int phase = -1;  // index into the dependency's phases for phase edges
};

// Per-dependency totals at the end of a run.
struct DependencyTotals {
  FlowStats flow;
  std::optional<BreakerSnapshot> breaker;
  int64_t trips = 0;                 // transitions into open
  double budget_tokens = -1.0;       // token bucket level at the end (-1: no bucket)
  int64_t wasted_service = 0;        // calls served after their caller gave up
  int64_t rejected_by_capacity = 0;  // calls refused at once because the server line was full
  int64_t max_load = 0;              // most calls in service or waiting at once
  // Server time of hedge / fan-out copies cancelled while in service (the server finishes them
  // anyway): the price of hedging. Copies cancelled while still waiting in a capacity line are
  // counted in wasted_service if the server later serves them.
  int64_t wasted_attempt_ns = 0;
  double hedge_tokens = -1.0;  // hedge budget level at the end (-1: no hedging or no budget)
};

// Everything a run produced.
struct SimResult {
  int64_t arrived = 0;
  std::array<int64_t, kNumOrderStatuses> by_status{};
  std::array<int64_t, kNumFailReasons> by_reason{};
  int64_t degraded = 0;
  int64_t in_flight = 0;              // orders not yet terminal when the run stopped
  LogHistogram latency_completed;     // arrival to completion, completed orders
  LogHistogram latency_terminal;      // arrival to end, every terminal order that was admitted
  LogHistogram queue_wait;            // arrival to start, orders a worker took
  double sojourn_sum_s = 0.0;         // sum of (end - arrival) over terminal orders
  double in_system_integral_s = 0.0;  // integral of the number of admitted, unfinished orders
  int64_t busy_integral_ns = 0;       // integral of busy workers (utilisation)
  int64_t end_ns = 0;                 // virtual time when the run stopped
  int64_t charges = 0;
  int64_t applied_charges = 0;
  int64_t double_charged_orders = 0;
  int64_t events = 0;
  std::vector<DependencyTotals> deps;
  OrderRecords orders;
  std::vector<std::string> ts_columns;
  std::vector<std::vector<double>> ts;  // one vector per column
  std::vector<SimTransition> transitions;
};

// Runs one scenario once. Construct, Run, read result().
class SimEngine {
 public:
  // `config` must have passed ValidateScenario; it must outlive the engine.
  SimEngine(const ScenarioConfig& config, const SimOptions& options);
  SimEngine(const SimEngine&) = delete;
  SimEngine& operator=(const SimEngine&) = delete;

  // Runs to the end (drained, or until_ns). Fails with ResourceExhausted when max_events is hit.
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
    bool holds_worker = false;
    bool live = false;
  };

  // A call waiting in a dependency's server line.
  struct LineEntry {
    uint32_t slot;
    uint32_t gen;
    int64_t until_ns;
    bool until_is_deadline;
    uint8_t copy;
  };

  // One dependency's server (only used when it has limited capacity) and its load.
  struct Server {
    int in_service = 0;
    int in_flight = 0;  // attempts whose caller is waiting
    std::deque<LineEntry> line;
    std::deque<std::pair<uint32_t, uint32_t>> bulkhead_waiters;  // (slot, gen), FIFO
  };

  void Schedule(int64_t t_ns, EventType type, uint32_t a = 0, uint32_t b = 0, uint32_t c = 0);
  void NewOrder(int64_t now_ns, int client);
  void ScheduleNextArrival(int64_t now_ns);
  void ScheduleClient(int client, int64_t at_ns);
  uint32_t AllocSlot();
  void DispatchWork(int64_t now_ns);
  void Start(uint32_t slot, int64_t now_ns);
  void Apply(uint32_t slot, const FlowAction& action, int64_t now_ns);
  void Handle(uint32_t slot, const FlowAction& action, int64_t now_ns);
  void DoAttempt(uint32_t slot, const FlowAction& action, int64_t now_ns);
  void LaunchCopy(uint32_t slot, int copy, const FlowAction& action, int64_t now_ns);
  void BeginService(int dep, uint32_t slot, uint32_t gen, int copy, int64_t until_ns,
                    bool until_is_deadline, bool caller_waiting, int64_t now_ns);
  void OnAttemptEnd(uint32_t slot, uint32_t gen, uint32_t packed, int64_t now_ns);
  void OnHedgeTimer(uint32_t slot, uint32_t gen, int64_t now_ns);
  // Stops waiting for the copies the flow cancelled (its call was decided without them).
  void SyncCopies(uint32_t slot);
  void OnServiceDone(int dep, int64_t now_ns);
  void Finish(uint32_t slot, int64_t now_ns);
  void FinishWithoutFlow(uint32_t slot, OrderStatus status, FailReason reason, int64_t now_ns);
  void Account(OrderStatus status, FailReason reason, bool degraded, int64_t arrival_ns,
               int64_t end_ns, bool admitted);
  void SetInSystem(int64_t now_ns, int delta);
  void SetBusy(int64_t now_ns, int delta);
  void Sample(int64_t now_ns, bool final);
  void InitTimeSeries();
  RandomStream& FlowRng(uint32_t slot);

  const ScenarioConfig& config_;
  const SimOptions options_;
  Rng rng_;
  RandomStream arrival_rng_;
  RandomStream key_rng_;
  RandomStream think_rng_;
  std::vector<RandomStream> fault_rngs_;
  std::vector<RandomStream> policy_rngs_;
  std::vector<DependencyRuntime> deps_;
  std::vector<FlowStats> stats_;
  std::vector<Server> servers_;
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
  size_t trace_next_ = 0;
  double schedule_max_rate_ = 0.0;

  // Time series bookkeeping: counters at the previous sample.
  struct Counters {
    int64_t arrived = 0;
    std::array<int64_t, kNumOrderStatuses> by_status{};
    std::array<int64_t, kNumFailReasons> by_reason{};
    int64_t degraded = 0;
    std::vector<FlowStats> deps;
    std::vector<int64_t> wasted_attempt_ns;
  };
  Counters last_;
  int64_t last_sample_ns_ = 0;
  SimResult result_;
};

}  // namespace rlab

#endif  // RLAB_SIM_SIM_ENGINE_H_
