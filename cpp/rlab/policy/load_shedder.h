#ifndef RLAB_POLICY_LOAD_SHEDDER_H_
#define RLAB_POLICY_LOAD_SHEDDER_H_

// Criticality-aware load shedding at a service's intake, with per-tenant fairness.
//
// Every order carries a criticality class and a tenant. The classes follow the criticality
// levels of Google's RPC stack ("Site Reliability Engineering", O'Reilly 2016, ch. 21 "Handling
// Overload": CRITICAL_PLUS, CRITICAL, SHEDDABLE_PLUS, SHEDDABLE), folded into three: kCritical
// (their CRITICAL_PLUS), kDefault (their CRITICAL, the default of production traffic) and
// kSheddable (their two SHEDDABLE levels). As there, the lowest class is shed first:
//
//   occupancy: class c is refused while the job queue already holds max_occupancy[c] x capacity
//              orders (e.g. sheddable at 50%, default at 80%); 1.0 means "only when the queue is
//              full", which the queue itself enforces (reason queue_full, not shed).
//   delay:     class c is refused while the recent queueing delay exceeds its target. The recent
//              delay is the smallest delay of the orders that left the queue during the last
//              completed `delay_interval` (CoDel's standing-queue estimate: Nichols and Jacobson,
//              "Controlling Queue Delay", ACM Queue 2012): a burst that drains within an
//              interval does not count, a standing queue does.
//   fairness:  while the queue holds at least fair_share_above x capacity orders (congested),
//              tenant t may hold at most its weighted share of the queue among the tenants that
//              have orders queued (t included): capacity x w_t / sum(w_active), and at least one
//              order. One tenant's burst then fills only its own share (weighted max-min
//              fairness, as in fair queueing: Demers, Keshav and Shenker, SIGCOMM 1989).
//              Below that cap a tenant also may not grow while it holds more of the queue,
//              weighted, than every other tenant with orders queued (Longest Queue Drop without
//              push-out), so that a tenant pinned at its cap cannot out-hold bursty ones.
//
// Pure: time comes in as an argument, nothing sleeps; the engines call Admit at intake and
// OnDequeue when a queued order leaves the queue (to a worker, or cancelled). Thread-safe (the
// live engine calls it from submitting threads and workers); never blocks on anything else.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "rlab/core/mutex.h"
#include "rlab/core/rng.h"
#include "rlab/core/schema.h"

namespace rlab {

enum class Criticality : uint8_t { kCritical = 0, kDefault = 1, kSheddable = 2 };
inline constexpr int kNumCriticalities = 3;
// The most tenants a scenario may declare: tenant indices fit 6 bits of an order record, and
// per-tenant metric labels stay bounded.
inline constexpr int kMaxTenants = 64;

// "critical", "default", "sheddable".
std::string_view CriticalityName(Criticality c);

// One class's share of the arrivals and its shedding thresholds.
struct ShedClassConfig {
  double traffic = 1.0;            // relative weight of this class among arrivals, >= 0
  double max_occupancy = 1.0;      // in (0, 1]; see above
  int64_t max_queue_delay_ns = 0;  // 0: never shed by queueing delay
};

// A named source of orders with its fair share of the queue.
struct TenantConfig {
  std::string name;
  double weight = 1.0;   // fair share of a congested queue, relative, > 0
  double traffic = 1.0;  // relative weight of this tenant among arrivals, >= 0
};

struct SheddingConfig {
  // Indexed by Criticality. Defaults: every order is `default`; sheddable refused above 50%,
  // default above 80%, critical only when the queue is full.
  std::array<ShedClassConfig, kNumCriticalities> classes = {
      ShedClassConfig{0.0, 1.0, 0}, ShedClassConfig{1.0, 0.8, 0}, ShedClassConfig{0.0, 0.5, 0}};
  int64_t delay_interval_ns = 100'000'000;  // 100 ms, CoDel's interval
  double fair_share_above = 0.5;      // congestion threshold for tenant fairness; < 0: no fairness
  std::vector<TenantConfig> tenants;  // empty: one anonymous tenant
};

// Checks every field, naming them under `path` as the Python API does
// ("intake.shedding.sheddable.max_occupancy must be ...", "intake.shedding.tenants[1].weight").
absl::Status Validate(const SheddingConfig& config, std::string_view path = "intake.shedding");
// The field table of one class (Python: rl.ShedClass; max_queue_delay None held as 0).
const ConfigSchema<ShedClassConfig>& ShedClassSchema();
// The field tables of TenantConfig and SheddingConfig (Python: rl.Tenant, rl.Shedding; the
// classes as `critical`, `default` and `sheddable`, fair_share_above None held as -1) and the
// rules between their fields (a tenant's name; unique names; some traffic).
const ConfigSchema<TenantConfig>& TenantSchema();
const ConfigSchema<SheddingConfig>& SheddingSchema();
absl::Status ValidateTenantRules(const TenantConfig& t);
absl::Status ValidateSheddingRules(const SheddingConfig& c);

// Why an order was refused (kAdmit: it was not).
enum class ShedCause : uint8_t { kAdmit = 0, kOccupancy, kDelay, kFairness };
inline constexpr int kNumShedCauses = 4;
// "admit", "occupancy", "delay", "fairness".
std::string_view ShedCauseName(ShedCause c);

// Draws an arriving order's class and tenant from the configured traffic weights. Not
// thread-safe: each caller owns its stream.
struct OrderOrigin {
  Criticality criticality = Criticality::kDefault;
  int tenant = 0;
};
OrderOrigin DrawOrigin(const SheddingConfig& config, RandomStream& rng);

class LoadShedder {
 public:
  // `config` must be valid; `queue_capacity` is the job queue's (>= 0).
  LoadShedder(const SheddingConfig& config, int64_t queue_capacity);
  LoadShedder(const LoadShedder&) = delete;
  LoadShedder& operator=(const LoadShedder&) = delete;

  // Decides on an arriving order at `now_ns`. On kAdmit the order counts as queued (for its
  // class and tenant) until OnDequeue; a caller whose queue then refuses it calls OnDequeue
  // with no delay sample.
  ShedCause Admit(int64_t now_ns, Criticality c, int tenant);
  // A queued order left the queue at `now_ns` after `queue_delay_ns` (< 0: no sample, e.g. the
  // push failed or a shutdown cancelled it).
  void OnDequeue(int64_t now_ns, int tenant, int64_t queue_delay_ns);

  // Observers (for tests and gauges).
  int64_t queued() const;
  int64_t queued(int tenant) const;
  int64_t recent_delay_ns(int64_t now_ns);
  const SheddingConfig& config() const { return config_; }

 private:
  void RollLocked(int64_t now_ns) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SheddingConfig config_;
  const int64_t capacity_;
  std::vector<double> weights_;  // per tenant (one anonymous tenant when none are declared)
  mutable Mutex mu_;
  int64_t queued_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<int64_t> tenant_queued_ ABSL_GUARDED_BY(mu_);
  double active_weight_ ABSL_GUARDED_BY(mu_) = 0.0;  // sum of weights of tenants with queued > 0
  int64_t window_start_ns_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t window_min_ns_ ABSL_GUARDED_BY(mu_) = -1;  // -1: no sample in this window yet
  int64_t recent_delay_ns_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rlab

#endif  // RLAB_POLICY_LOAD_SHEDDER_H_
