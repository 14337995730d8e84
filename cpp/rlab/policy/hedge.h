#ifndef RLAB_POLICY_HEDGE_H_
#define RLAB_POLICY_HEDGE_H_

// Hedged requests and fan-out with a quorum: the request patterns of "The Tail at Scale" (Dean
// and Barroso, CACM 2013) and gRPC's hedging policy (gRFC A6, "Client Retries"). A hedged call
// sends its first copy at once and another copy each time `delay` passes without an answer, up
// to `max_hedges` extra copies; the first success wins and the others are cancelled. A fan-out
// call sends `copies` copies at once and needs `quorum` successes.
//
// This file holds the two pieces of shared state: when to hedge (a fixed delay, or a quantile of
// the latencies of recent successful attempts, Dean and Barroso's "defer the secondary request
// until the first has been outstanding for more than the 95th-percentile expected latency") and
// the hedge budget, a token bucket that caps extra copies to a fraction of calls. The per-order
// round (which copies are outstanding, who won) lives in OrderFlow.

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "rlab/core/mutex.h"
#include "rlab/core/schema.h"

namespace rlab {

// The most copies one call may send (first copy + hedges, or fan-out copies).
inline constexpr int kMaxCopies = 32;

// Hedging of one dependency's calls.
struct HedgeConfig {
  int max_hedges = 1;  // extra copies per call, in [1, kMaxCopies - 1]
  // Time without an answer before the next copy is sent, in (0, 1e6] seconds. With a quantile,
  // the delay used until the latency window is full.
  int64_t delay_ns = 50'000'000;
  // 0: always `delay_ns`. In (0, 1): hedge after this quantile of the latencies of the last
  // `window` successful attempts (e.g. 0.95).
  double quantile = 0.0;
  int window = 100;  // latencies kept for the quantile, in [1, 100000]
  // The hedge budget, a token bucket: it starts full with `budget_burst` tokens, every call adds
  // `budget_ratio` tokens (up to the burst) and every hedge takes one, so that hedges never
  // exceed budget_burst + budget_ratio × calls. budget_ratio < 0: no budget.
  double budget_ratio = 0.05;  // in [0, kMaxCopies - 1], or < 0 for none
  double budget_burst = 10.0;  // in [1, 1e9]
};

// One call sends `copies` copies at once and succeeds once `quorum` of them succeeded.
struct FanOutConfig {
  int copies = 2;  // in [1, kMaxCopies]
  int quorum = 1;  // in [1, copies]
};

// Checks every field, naming the Python parameter (max_hedges, delay, ...).
absl::Status Validate(const HedgeConfig& config);
absl::Status Validate(const FanOutConfig& config);
// The field tables (Python: rl.Hedge, rl.FanOut), and FanOut's rule (quorum <= copies).
const ConfigSchema<HedgeConfig>& HedgeSchema();
const ConfigSchema<FanOutConfig>& FanoutSchema();
absl::Status ValidateFanoutRules(const FanOutConfig& config);

// The shared hedging state of one dependency: the latency window and the budget. Thread-safe.
class Hedger {
 public:
  explicit Hedger(const HedgeConfig& config);

  const HedgeConfig& config() const { return config_; }

  // How long to wait, from a copy's start, before sending the next one.
  int64_t DelayNs();
  // Records the latency of a successful attempt (every copy, hedged or not).
  void RecordLatency(int64_t latency_ns);
  // A call starts: deposits budget_ratio tokens.
  void OnCall() { OnCall(0); }
  // Takes a token for one hedge; false when the budget is spent (then no hedge is sent).
  bool TryHedge() { return TryHedge(0); }
  // The same at `now_ns`, which dates the budget's edges (BudgetEvents).
  void OnCall(int64_t now_ns);
  bool TryHedge(int64_t now_ns);
  // Tokens left (the burst when there is no budget).
  double tokens();

  // An edge of the budget: hedges started being denied (dry: the first denial since hedges were
  // last allowed) or the budget refilled to a whole token after that. Rare state changes, not
  // per hedge: at most two per time the budget runs dry.
  struct BudgetEvent {
    int64_t t_ns = 0;
    bool dry = false;
  };
  static constexpr size_t kMaxBudgetEvents = 4096;  // the oldest are kept
  std::vector<BudgetEvent> BudgetEvents();

 private:
  const HedgeConfig config_;
  Mutex mu_;
  std::vector<int64_t> ring_ ABSL_GUARDED_BY(mu_);  // the last `window` latencies
  std::vector<int64_t> scratch_ ABSL_GUARDED_BY(mu_);
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t since_compute_ ABSL_GUARDED_BY(mu_) = 0;  // latencies added since the last quantile
  int64_t quantile_ns_ ABSL_GUARDED_BY(mu_) = -1;   // -1: not computed yet
  double tokens_ ABSL_GUARDED_BY(mu_);
  bool dry_ ABSL_GUARDED_BY(mu_) = false;  // a hedge was denied since the budget last refilled
  std::vector<BudgetEvent> budget_events_ ABSL_GUARDED_BY(mu_);
  void AddBudgetEvent(int64_t now_ns, bool dry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
};

}  // namespace rlab

#endif  // RLAB_POLICY_HEDGE_H_
