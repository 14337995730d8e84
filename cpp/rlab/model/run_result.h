#ifndef RLAB_MODEL_RUN_RESULT_H_
#define RLAB_MODEL_RUN_RESULT_H_

// What one run of the order pipeline produced, in the shape both engines fill: the simulated engine
// (sim/) and the live engine (live/) write the same SimResult, so everything built on simulate()
// reads a live run too. It lives in model/ so neither engine has to include the other (DESIGN §6).
// The names keep their Sim prefix so the bindings and tests that use them stay as they are.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "rlab/core/histogram.h"
#include "rlab/model/order_flow.h"
#include "rlab/model/replica_pool.h"
#include "rlab/model/origin_stats.h"
#include "rlab/policy/circuit_breaker.h"

namespace rlab {

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
  // The order's criticality (bits 0-1) and tenant index (bits 2-7), as PackOrigin
  // (model/origin_stats.h) packs them; the engines set it for every order.
  uint8_t origin = 0;
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
  // kHedgeDry / kHedgeRefill: the dependency's hedge budget started denying hedges / refilled.
  enum class Kind : uint8_t {
    kBreaker = 0,
    kPhaseStart = 1,
    kPhaseEnd = 2,
    kHedgeDry = 3,
    kHedgeRefill = 4
  };
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
  // Dependencies with replicas only: per-replica figures, and picks made in panic.
  std::vector<ReplicaTotals> replicas;
  int64_t panic_picks = 0;
  // Waiting calls the line's queue discipline failed (CoDel).
  int64_t dropped_by_queue = 0;
};

// An outlier ejection or return of one replica of dependency `dep`.
struct ReplicaEjection {
  int dep = 0;
  ReplicaEvent event;
};

// Everything a run produced.
// Service graphs: one tier's requests (model/service_graph.h). Entry 0 of SimResult::services is
// the root (its figures are the orders'); entry s + 1 is config.services[s].
struct ServiceTotals {
  int64_t arrived = 0;  // requests that reached the service (rejected at its queue included)
  std::array<int64_t, kNumOrderStatuses> by_status{};
  std::array<int64_t, kNumFailReasons> by_reason{};
  int64_t in_flight = 0;       // requests not yet ended when the run stopped
  LogHistogram latency;        // arrival to end, completed requests
  double sojourn_sum_s = 0.0;  // sum of (end - arrival) over ended requests
  int64_t wasted = 0;          // requests a worker started whose caller gave up before the end
  int64_t wasted_ns = 0;       // their worker time, start to end (the answer went to nobody)
  int64_t dropped_unstarted = 0;  // requests dropped at dequeue: their caller had given up
  // Calls a request sent after its deadline (the caller's remaining time, capped by the
  // service's), plus requests completed after it: work past the caller's time. Deadline
  // propagation makes this 0; a property test checks it.
  int64_t overran = 0;
};

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
  std::vector<ReplicaEjection> ejections;  // time order
  // Per criticality class and per tenant (intake.shedding only; empty otherwise).
  OriginStats origins;
  // Service graphs: per tier (empty for a single-service scenario); dependency entries (deps,
  // transitions, time series) run over every tier's dependencies, root first
  // (model/service_graph.h: FlatDependencies).
  std::vector<ServiceTotals> services;
};

}  // namespace rlab

#endif  // RLAB_MODEL_RUN_RESULT_H_
