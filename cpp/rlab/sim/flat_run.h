#ifndef RLAB_SIM_FLAT_RUN_H_
#define RLAB_SIM_FLAT_RUN_H_

// The simulated engine's flat path (issue #11). A scenario of the flat shape — open-loop
// arrivals, one dependency with at most a retry loop, an attempt timeout, an order deadline and a
// charge ledger, and none of the policies, intake controls, request patterns, replicas or
// services that need OrderFlow's generality — runs here: the same events on the engine's own
// queue, the same random streams drawn in the same order, the same counters, histograms,
// integrals and records, so a run is bit-identical to the general loop (SimEngine::Run), only
// without OrderFlow and the hand-off chain around it. The retry loop (policy/retry.h), the fault
// model (model/faults.h) and the engine's accounting are the same code both paths call.
//
// The general loop stays the reference: SimOptions::flat_path = false, or the environment
// variable RLAB_SIM_FLAT=0, forces it, and tests/cpp/flat_run_test.cc and tests/test_sim_flat.py
// compare the two on many drawn scenarios.

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "rlab/core/outcome.h"
#include "rlab/model/order_flow.h"
#include "rlab/model/scenario.h"
#include "rlab/policy/retry.h"

namespace rlab {

class SimEngine;

// Whether `config` has the flat shape (see the file comment; the list is in flat_run.cc).
bool IsFlatScenario(const ScenarioConfig& config);

// False when the environment sets RLAB_SIM_FLAT=0 (every run then takes the general loop).
bool FlatPathEnabled();

// One run's flat loop, over the engine's state. Construct after the engine scheduled its first
// events (arrival, sample tick); Run processes events until the queue is empty or the next one
// lies past SimOptions::until_ns, and leaves the rest (the end of the run) to SimEngine::Run.
class FlatRun {
 public:
  explicit FlatRun(SimEngine& engine);
  FlatRun(const FlatRun&) = delete;
  FlatRun& operator=(const FlatRun&) = delete;

  // Sets `*last_activity_ns` to the time of the last event other than a sample tick.
  absl::Status Run(int64_t* last_activity_ns);

 private:
  // An admitted order that is not terminal yet: what SimEngine::Active and OrderFlow keep for
  // this shape.
  struct Order {
    explicit Order(const RetryConfig& retry) : loop(retry, nullptr) {}
    int64_t arrival_ns = 0;
    int64_t deadline_ns = 0;
    int64_t record = -1;          // index into result.orders, or -1
    int64_t retry_after_ns = -1;  // of the pending answer
    RetryLoop loop;
    uint32_t gen = 0;  // bumped whenever the order starts waiting: older events are stale
    int attempts = 0;
    int charges = 0;
    int applied = 0;
    bool committed = false;  // the dependency's effect happened once already
    bool in_attempt = false;
    bool holds_worker = false;
    bool live = false;
  };

  void NewOrder(int64_t now_ns);
  void DispatchWork(int64_t now_ns);
  void Start(uint32_t slot, int64_t now_ns);
  // OrderFlow::StartAttempt, then the engine's launch of the call.
  void Attempt(uint32_t slot, int64_t now_ns);
  void BeginService(uint32_t slot, uint32_t gen, int64_t until_ns, bool until_is_deadline,
                    bool caller_waiting, int64_t now_ns);
  void OnAttemptEnd(uint32_t slot, uint32_t gen, uint32_t packed, int64_t now_ns);
  void OnSleepEnd(uint32_t slot, uint32_t gen, int64_t now_ns);
  void OnServiceDone(int64_t now_ns);
  // The order is terminal: SimEngine::Finish and FinishWithoutFlow.
  void End(uint32_t slot, OrderStatus status, FailReason reason, int64_t now_ns);

  SimEngine& e_;
  const DependencyConfig& dep_;
  const RetryConfig& retry_;
  std::vector<Order> orders_;
  std::vector<uint32_t> free_slots_;
  // With sampling on, each admitted order's arrival time is also written to the engine's slot
  // of the same index (SimEngine::Active): SimEngine::Sample reads the oldest queued order's
  // arrival there (the standing queue delay).
  bool mirror_arrivals_ = false;
};

}  // namespace rlab

#endif  // RLAB_SIM_FLAT_RUN_H_
