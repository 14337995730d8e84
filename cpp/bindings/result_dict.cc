#include "result_dict.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_format.h"
#include "rlab/core/clock.h"
#include "rlab/model/order_flow.h"
#include "rlab/model/service_graph.h"

namespace rlab::bindings {
namespace {

// Converts the per-order records into NumPy columns (narrow dtypes). With `consume` (the same
// records, owned by the caller) each chunk is freed as soon as it is copied, so that the records
// and the columns are never both whole in memory. The arrays are allocated under the GIL and
// filled without it.
py::dict OrderColumns(const OrderRecords& o, OrderRecords* consume) {
  const auto n = static_cast<py::ssize_t>(o.size());
  py::array_t<double> arrival(n), start(n), end(n);
  py::array_t<uint16_t> attempts(n);
  py::array_t<int8_t> status(n), reason(n);
  py::array_t<bool> degraded(n);
  py::array_t<uint8_t> charges(n), applied(n);
  py::array_t<int8_t> criticality(n), tenant(n);  // intake.shedding: the order's origin
  int8_t* pk = criticality.mutable_data();
  int8_t* pn = tenant.mutable_data();
  double* pa = arrival.mutable_data();
  double* ps = start.mutable_data();
  double* pe = end.mutable_data();
  uint16_t* pt = attempts.mutable_data();
  int8_t* pst = status.mutable_data();
  int8_t* pr = reason.mutable_data();
  bool* pd = degraded.mutable_data();
  uint8_t* pc = charges.mutable_data();
  uint8_t* pp = applied.mutable_data();
  const double nan = std::nan("");
  size_t i = 0;
  {
    py::gil_scoped_release release;
    for (size_t c = 0; c < o.num_chunks(); ++c) {
      for (const OrderRecord& x : o.chunk(c)) {
        pa[i] = NsToSeconds(x.arrival_ns);
        ps[i] = x.start_ns < 0 ? nan : NsToSeconds(x.start_ns);
        pe[i] = x.end_ns < 0 ? nan : NsToSeconds(x.end_ns);
        pt[i] = x.attempts;
        pst[i] = static_cast<int8_t>(x.status);
        pr[i] = static_cast<int8_t>(x.reason);
        pd[i] = x.degraded != 0;
        pc[i] = x.charges;
        pp[i] = x.applied;
        const OrderOrigin origin = UnpackOrigin(x.origin);
        pk[i] = static_cast<int8_t>(origin.criticality);
        pn[i] = static_cast<int8_t>(origin.tenant);
        ++i;
      }
      if (consume != nullptr) consume->ReleaseChunk(c);
    }
  }
  py::dict d;
  d["arrival"] = arrival;
  d["start"] = start;
  d["end"] = end;
  d["attempts"] = attempts;
  d["status"] = status;
  d["reason"] = reason;
  d["degraded"] = degraded;
  d["charges"] = charges;
  d["applied_charges"] = applied;
  d["criticality"] = criticality;
  d["tenant"] = tenant;
  return d;
}

py::dict HistogramDict(const LogHistogram& h) {
  py::dict d;
  d["count"] = h.count();
  d["mean"] = NsToSeconds(static_cast<int64_t>(h.mean()));
  d["p50"] = NsToSeconds(h.Quantile(0.50));
  d["p95"] = NsToSeconds(h.Quantile(0.95));
  d["p99"] = NsToSeconds(h.Quantile(0.99));
  d["max"] = NsToSeconds(h.max());
  return d;
}

// Cumulative counts at fixed bounds (seconds), for a Prometheus histogram.
std::vector<int64_t> Buckets(const LogHistogram& h, const std::vector<double>& bounds_s) {
  std::vector<int64_t> out;
  out.reserve(bounds_s.size());
  for (double b : bounds_s) out.push_back(h.CountAtOrBelow(SecondsToNs(b)));
  return out;
}

}  // namespace

py::dict ResultDict(const ScenarioConfig& sc, const SimResult& r,
                    const std::vector<double>& bounds_s, bool with_orders, OrderRecords* consume) {
  py::dict out;
  py::dict counts;
  counts["arrived"] = r.arrived;
  for (int s = 0; s < kNumOrderStatuses; ++s) {
    counts[py::str(std::string(OrderStatusName(static_cast<OrderStatus>(s))))] = r.by_status[s];
  }
  py::dict reasons;
  for (int s = 1; s < kNumFailReasons; ++s) {
    reasons[py::str(std::string(FailReasonName(static_cast<FailReason>(s))))] = r.by_reason[s];
  }
  out["counts"] = counts;
  std::vector<std::string> status_names, reason_names;
  for (int s = 0; s < kNumOrderStatuses; ++s) {
    status_names.emplace_back(OrderStatusName(static_cast<OrderStatus>(s)));
  }
  for (int s = 0; s < kNumFailReasons; ++s) {
    reason_names.emplace_back(FailReasonName(static_cast<FailReason>(s)));
  }
  out["status_names"] = status_names;
  out["reason_names"] = reason_names;
  out["reasons"] = reasons;
  out["degraded"] = r.degraded;
  out["in_flight"] = r.in_flight;
  out["latency_completed"] = HistogramDict(r.latency_completed);
  out["latency_terminal"] = HistogramDict(r.latency_terminal);
  out["queue_wait"] = HistogramDict(r.queue_wait);
  out["latency_bounds"] = bounds_s;
  out["latency_buckets"] = Buckets(r.latency_terminal, bounds_s);
  out["latency_sum"] = NsToSeconds(static_cast<int64_t>(
      r.latency_terminal.mean() * static_cast<double>(r.latency_terminal.count())));
  out["sojourn_sum"] = r.sojourn_sum_s;
  out["in_system_integral"] = r.in_system_integral_s;
  out["busy_integral"] = NsToSeconds(r.busy_integral_ns);
  out["end"] = NsToSeconds(r.end_ns);
  out["charges"] = r.charges;
  out["applied_charges"] = r.applied_charges;
  out["double_charged_orders"] = r.double_charged_orders;
  out["events_processed"] = r.events;

  // Service graphs: every tier's dependencies, root first; a service's are named
  // "<service>.<dependency>" and carry their service's name (the root's: "").
  const std::vector<FlatDependency> flat = FlatDependencies(sc);
  py::list deps;
  for (size_t i = 0; i < r.deps.size(); ++i) {
    const DependencyTotals& t = r.deps[i];
    const DependencyConfig& dc = *flat[i].config;
    py::dict d;
    d["name"] = flat[i].label;
    if (flat[i].tier > 0) d["service"] = sc.services[flat[i].tier - 1].name;
    d["calls"] = t.flow.calls;
    d["retries"] = t.flow.retries;
    d["failures"] = t.flow.failures;
    d["rejected_breaker"] = t.flow.rejected_breaker;
    d["rejected_bulkhead"] = t.flow.rejected_bulkhead;
    d["rejected_throttle"] = t.flow.rejected_throttle;
    d["fallbacks"] = t.flow.fallbacks;
    py::dict ends;
    for (int e = 0; e < kNumRetryEndReasons; ++e) {
      ends[py::str(std::string(RetryEndReasonName(static_cast<RetryEndReason>(e))))] =
          t.flow.retry_ends[e];
    }
    d["retry_ends"] = ends;
    d["trips"] = t.trips;
    d["breaker_state"] = t.breaker
                             ? py::object(py::str(std::string(BreakerStateName(t.breaker->state))))
                             : py::object(py::none());
    d["budget_tokens"] = t.budget_tokens;
    d["wasted_service"] = t.wasted_service;
    d["rejected_by_capacity"] = t.rejected_by_capacity;
    d["dropped_by_queue"] = t.dropped_by_queue;
    d["max_load"] = t.max_load;
    d["successes"] = t.flow.successes;
    d["cancelled"] = t.flow.cancelled;
    if (dc.hedge || dc.fanout) {
      // Request-pattern totals, only where the scenario uses them (the summary follows).
      d["hedges"] = t.flow.hedges;
      d["hedges_won"] = t.flow.hedges_won;
      d["hedges_denied"] = t.flow.hedges_denied;
      d["wasted_attempt_seconds"] = NsToSeconds(t.wasted_attempt_ns);
      d["hedge_tokens"] = t.hedge_tokens;
    }
    if (dc.replicas) {
      // Per-replica figures, columns of result.replicas.
      py::dict rd;
      std::vector<int64_t> calls, failures, abandoned, ejections, outstanding;
      std::vector<double> mean_latency;
      for (const ReplicaTotals& x : t.replicas) {
        calls.push_back(x.calls);
        failures.push_back(x.failures);
        abandoned.push_back(x.abandoned);
        ejections.push_back(x.ejections);
        outstanding.push_back(x.outstanding);
        const int64_t answered = x.calls - x.abandoned - x.outstanding;
        mean_latency.push_back(answered > 0
                                   ? NsToSeconds(x.latency_sum_ns) / static_cast<double>(answered)
                                   : std::nan(""));
      }
      rd["calls"] = calls;
      rd["failures"] = failures;
      rd["abandoned"] = abandoned;
      rd["ejections"] = ejections;
      rd["outstanding"] = outstanding;
      rd["mean_latency"] = mean_latency;
      // Seconds spent at each level of outstanding attempts (rows: replicas).
      std::vector<std::vector<double>> load_time;
      for (const ReplicaTotals& x : t.replicas) {
        std::vector<double> row;
        for (int64_t ns : x.time_at_ns) row.push_back(NsToSeconds(ns));
        load_time.push_back(std::move(row));
      }
      rd["load_time"] = load_time;
      if (dc.replicas->breaker) {
        // Per-replica breakers: each one's state at the end and how often it opened.
        std::vector<std::string> breaker_state;
        std::vector<int64_t> breaker_opened, breaker_probes;
        for (const ReplicaTotals& x : t.replicas) {
          breaker_state.emplace_back(BreakerStateName(x.breaker_state));
          breaker_opened.push_back(x.breaker_opened);
          breaker_probes.push_back(x.breaker_probes);
        }
        rd["breaker_state"] = breaker_state;
        rd["breaker_opened"] = breaker_opened;
        rd["breaker_probes"] = breaker_probes;
      }
      d["replicas"] = rd;
      d["panic_picks"] = t.panic_picks;
    }
    if (dc.limit) d["rejected_limit"] = t.flow.rejected_limit;
    if (dc.rate_limit) {
      d["rejected_rate_limit"] = t.flow.rejected_rate_limit;
      d["rate_limit_waits"] = t.flow.rate_limit_waits;
    }
    py::list phases;
    for (const FaultPhase& p : dc.faults.phases) {
      phases.append(py::make_tuple(p.name, NsToSeconds(p.start_ns), NsToSeconds(p.end_ns)));
    }
    d["phases"] = phases;
    deps.append(d);
  }
  out["dependencies"] = deps;
  if (!r.services.empty()) {
    // Service graphs: one entry per tier, the root first (its figures are the orders').
    py::list services;
    for (size_t t = 0; t < r.services.size(); ++t) {
      const ServiceTotals& x = r.services[t];
      py::dict d;
      d["name"] = t == 0 ? std::string("root") : sc.services[t - 1].name;
      const bool root = t == 0;
      d["arrived"] = root ? r.arrived : x.arrived;
      py::dict st, rs;
      for (int i = 0; i < kNumOrderStatuses; ++i) {
        st[py::str(std::string(OrderStatusName(static_cast<OrderStatus>(i))))] =
            root ? r.by_status[i] : x.by_status[i];
      }
      for (int i = 1; i < kNumFailReasons; ++i) {
        rs[py::str(std::string(FailReasonName(static_cast<FailReason>(i))))] =
            root ? r.by_reason[i] : x.by_reason[i];
      }
      d["statuses"] = st;
      d["reasons"] = rs;
      d["in_flight"] = root ? r.in_flight : x.in_flight;
      const LogHistogram& lat = root ? r.latency_completed : x.latency;
      d["latency"] = HistogramDict(lat);
      // rlab_service_latency_seconds: the cumulative buckets at the shared bounds, and the sum.
      d["latency_buckets"] = Buckets(lat, bounds_s);
      d["latency_sum"] =
          NsToSeconds(static_cast<int64_t>(lat.mean() * static_cast<double>(lat.count())));
      d["sojourn_sum"] = root ? r.sojourn_sum_s : x.sojourn_sum_s;
      d["wasted"] = x.wasted;
      d["wasted_seconds"] = NsToSeconds(x.wasted_ns);
      d["dropped_unstarted"] = x.dropped_unstarted;
      d["overran"] = x.overran;
      services.append(d);
    }
    out["services"] = services;
  }

  if (with_orders) {
    out["orders"] = OrderColumns(r.orders, consume);
    if (consume != nullptr) *consume = OrderRecords();  // the columns own the data now
  } else {
    out["orders"] = py::none();
  }

  py::dict ts;
  for (size_t c = 0; c < r.ts_columns.size(); ++c) {
    ts[py::str(r.ts_columns[c])] =
        py::array_t<double>(static_cast<py::ssize_t>(r.ts[c].size()), r.ts[c].data());
  }
  out["timeseries"] = ts;

  py::list events;
  // Ejections and returns merge into the (time-ordered) transitions.
  size_t next_ejection = 0;
  auto flush_ejections = [&](int64_t until_ns) {
    static constexpr const char* kReasons[] = {"consecutive_errors", "success_rate"};
    for (; next_ejection < r.ejections.size() && r.ejections[next_ejection].event.t_ns <= until_ns;
         ++next_ejection) {
      const ReplicaEjection& x = r.ejections[next_ejection];
      if (x.event.breaker) {
        // A per-replica breaker's transition: from "replica <i>", to its new state.
        events.append(py::make_tuple(NsToSeconds(x.event.t_ns), flat[x.dep].label,
                                     "replica_breaker",
                                     absl::StrFormat("replica %d", x.event.replica),
                                     std::string(BreakerStateName(x.event.breaker_to))));
        continue;
      }
      events.append(py::make_tuple(NsToSeconds(x.event.t_ns), flat[x.dep].label,
                                   x.event.ejected ? "ejection" : "return",
                                   absl::StrFormat("replica %d", x.event.replica),
                                   kReasons[static_cast<int>(x.event.reason)]));
    }
  };
  for (const SimTransition& t : r.transitions) {
    flush_ejections(t.t_ns - 1);
    const std::string& dep = flat[t.dep].label;
    if (t.kind == SimTransition::Kind::kBreaker) {
      events.append(py::make_tuple(NsToSeconds(t.t_ns), dep, "breaker",
                                   std::string(BreakerStateName(t.from)),
                                   std::string(BreakerStateName(t.to))));
    } else if (t.kind == SimTransition::Kind::kHedgeDry ||
               t.kind == SimTransition::Kind::kHedgeRefill) {
      const bool dry = t.kind == SimTransition::Kind::kHedgeDry;
      events.append(py::make_tuple(NsToSeconds(t.t_ns), dep,
                                   dry ? "hedge_budget_dry" : "hedge_budget_refill",
                                   dry ? "allowed" : "denied", dry ? "denied" : "allowed"));
    } else {
      const std::string& phase = flat[t.dep].config->faults.phases[t.phase].name;
      events.append(py::make_tuple(
          NsToSeconds(t.t_ns), dep,
          t.kind == SimTransition::Kind::kPhaseStart ? "phase_start" : "phase_end", phase, phase));
    }
  }
  flush_ejections(std::numeric_limits<int64_t>::max());
  out["events"] = events;

  if (r.origins.enabled() && sc.intake.shedding) {
    // intake.shedding: per class and per tenant.
    auto totals = [](const OriginTotals& t, const std::string& name) {
      py::dict d;
      d["name"] = name;
      d["arrived"] = t.arrived;
      d["admitted"] = t.admitted;
      d["shed"] = t.shed;
      d["queue_full"] = t.queue_full;
      d["completed"] = t.completed;
      d["other_end"] = t.other_end;
      d["latency"] = HistogramDict(t.latency_completed);
      return d;
    };
    py::list classes, tenants;
    for (int i = 0; i < kNumCriticalities; ++i) {
      classes.append(
          totals(r.origins.classes[i], std::string(CriticalityName(static_cast<Criticality>(i)))));
    }
    const auto& declared = sc.intake.shedding->tenants;
    for (size_t i = 0; i < r.origins.tenants.size(); ++i) {
      tenants.append(totals(r.origins.tenants[i], i < declared.size() ? declared[i].name : ""));
    }
    py::dict causes;
    for (int i = 1; i < kNumShedCauses; ++i) {
      causes[py::str(std::string(ShedCauseName(static_cast<ShedCause>(i))))] =
          r.origins.shed_by_cause[i];
    }
    out["classes"] = classes;
    out["tenants"] = tenants;
    out["shed_by_cause"] = causes;
  }
  return out;
}

}  // namespace rlab::bindings
