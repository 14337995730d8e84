#ifndef RLAB_MODEL_ORIGIN_STATS_H_
#define RLAB_MODEL_ORIGIN_STATS_H_

// Per-class and per-tenant accounting of the orders of a scenario with intake.shedding: what
// arrived, was admitted, shed, refused by a full queue, completed, and how long completed orders
// took. Both engines fill it at the same points of an order's life (the live engine under its
// own lock), so that conservation holds per class and per tenant:
//   arrived == admitted + shed + queue_full;  admitted == completed + other_end + in flight.

#include <array>
#include <cstdint>
#include <vector>

#include "rlab/core/histogram.h"
#include "rlab/model/order_flow.h"
#include "rlab/policy/load_shedder.h"

namespace rlab {

// An order's class and tenant in one byte of its record.
inline uint8_t PackOrigin(OrderOrigin o) {
  return static_cast<uint8_t>(static_cast<unsigned>(o.criticality) |
                              (static_cast<unsigned>(o.tenant) << 2));
}
inline OrderOrigin UnpackOrigin(uint8_t b) {
  return {static_cast<Criticality>(b & 3u), static_cast<int>(b >> 2)};
}

struct OriginTotals {
  int64_t arrived = 0;
  int64_t admitted = 0;
  int64_t shed = 0;
  int64_t queue_full = 0;
  int64_t completed = 0;
  int64_t other_end = 0;  // admitted orders that ended otherwise (failed, expired, cancelled)
  LogHistogram latency_completed;
};

struct OriginStats {
  std::vector<OriginTotals> classes;  // kNumCriticalities entries once Init ran
  std::vector<OriginTotals> tenants;  // one per declared tenant (one without any)
  std::array<int64_t, kNumShedCauses> shed_by_cause{};

  bool enabled() const { return !classes.empty(); }
  void Init(const SheddingConfig& c) {
    classes.assign(kNumCriticalities, {});
    tenants.assign(c.tenants.empty() ? 1 : c.tenants.size(), {});
  }
  template <typename F>
  void Both(OrderOrigin o, F f) {
    f(classes[static_cast<size_t>(o.criticality)]);
    f(tenants[static_cast<size_t>(o.tenant)]);
  }
  // An order arrived and was admitted (true) or refused at intake with `cause` (kAdmit and
  // admitted false: the full queue refused it).
  void OnArrival(OrderOrigin o, bool admitted, ShedCause cause) {
    if (!enabled()) return;
    if (cause != ShedCause::kAdmit) ++shed_by_cause[static_cast<size_t>(cause)];
    Both(o, [&](OriginTotals& t) {
      ++t.arrived;
      if (admitted) {
        ++t.admitted;
      } else if (cause != ShedCause::kAdmit) {
        ++t.shed;
      } else {
        ++t.queue_full;
      }
    });
  }
  // An admitted order became terminal after `latency_ns`.
  void OnEnd(OrderOrigin o, OrderStatus status, int64_t latency_ns) {
    if (!enabled()) return;
    Both(o, [&](OriginTotals& t) {
      if (status == OrderStatus::kCompleted) {
        ++t.completed;
        t.latency_completed.Add(latency_ns);
      } else {
        ++t.other_end;
      }
    });
  }
};

}  // namespace rlab

#endif  // RLAB_MODEL_ORIGIN_STATS_H_
