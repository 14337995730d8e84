// The live engine, bound for Python: real worker threads that never touch the GIL. Every call
// that can block (waiting for orders, shutdown, joining load generators, batch submits) releases
// the GIL; the others hold engine locks only for a few instructions and never call into Python,
// so a Python thread holding the GIL can never deadlock with a worker.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common.h"
#include "rlab/core/clock.h"
#include "rlab/core/metrics.h"
#include "rlab/live/live_engine.h"
#include "rlab/model/order_flow.h"
#include "rlab/model/scenario.h"
#include "scenario_from_py.h"

namespace rlab::bindings {
namespace {

std::string Str(std::string_view s) { return std::string(s); }

// A timeout from Python: None or a negative number waits without limit.
int64_t TimeoutNs(std::optional<double> timeout_s, const char* name) {
  if (!timeout_s.has_value() || *timeout_s < 0) return -1;
  return DurationArgNs(name, *timeout_s, true);
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

// One column of the order records. The array is allocated under the GIL; filling it (a pass over
// up to millions of records) runs without it.
template <typename T, typename Records, typename F>
py::array_t<T> Column(const Records& orders, F field) {
  py::array_t<T> out(static_cast<py::ssize_t>(orders.size()));
  T* p = out.mutable_data();
  {
    py::gil_scoped_release release;
    for (size_t i = 0; i < orders.size(); ++i) p[i] = static_cast<T>(field(orders[i]));
  }
  return out;
}

// The run's result as the same raw dict simulate() returns, so that reliability_lab.sim builds
// the same Result (summary, orders, timeseries, events) from either engine.
py::dict ResultDict(const ScenarioConfig& sc, const SimResult& r, const std::vector<double>& bounds,
                    bool with_orders) {
  py::dict out;
  py::dict counts;
  counts["arrived"] = r.arrived;
  std::vector<std::string> status_names, reason_names;
  for (int s = 0; s < kNumOrderStatuses; ++s) {
    status_names.push_back(Str(OrderStatusName(static_cast<OrderStatus>(s))));
    counts[py::str(status_names.back())] = r.by_status[s];
  }
  py::dict reasons;
  for (int s = 0; s < kNumFailReasons; ++s) {
    reason_names.push_back(Str(FailReasonName(static_cast<FailReason>(s))));
    if (s > 0) reasons[py::str(reason_names.back())] = r.by_reason[s];
  }
  out["counts"] = counts;
  out["status_names"] = status_names;
  out["reason_names"] = reason_names;
  out["reasons"] = reasons;
  out["degraded"] = r.degraded;
  out["in_flight"] = r.in_flight;
  out["latency_completed"] = HistogramDict(r.latency_completed);
  out["latency_terminal"] = HistogramDict(r.latency_terminal);
  out["queue_wait"] = HistogramDict(r.queue_wait);
  std::vector<int64_t> buckets;
  for (double b : bounds) buckets.push_back(r.latency_terminal.CountAtOrBelow(SecondsToNs(b)));
  out["latency_bounds"] = bounds;
  out["latency_buckets"] = buckets;
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
  py::list deps;
  for (size_t i = 0; i < r.deps.size(); ++i) {
    const DependencyTotals& t = r.deps[i];
    py::dict d;
    d["name"] = sc.dependencies[i].name;
    d["calls"] = t.flow.calls;
    d["retries"] = t.flow.retries;
    d["failures"] = t.flow.failures;
    d["rejected_breaker"] = t.flow.rejected_breaker;
    d["rejected_bulkhead"] = t.flow.rejected_bulkhead;
    d["rejected_throttle"] = t.flow.rejected_throttle;
    d["fallbacks"] = t.flow.fallbacks;
    py::dict ends;
    for (int e = 0; e < kNumRetryEndReasons; ++e) {
      ends[py::str(Str(RetryEndReasonName(static_cast<RetryEndReason>(e))))] = t.flow.retry_ends[e];
    }
    d["retry_ends"] = ends;
    d["trips"] = t.trips;
    d["breaker_state"] = t.breaker ? py::object(py::str(Str(BreakerStateName(t.breaker->state))))
                                   : py::object(py::none());
    d["budget_tokens"] = t.budget_tokens;
    d["wasted_service"] = t.wasted_service;
    d["rejected_by_capacity"] = t.rejected_by_capacity;
    d["max_load"] = t.max_load;
    py::list phases;
    for (const FaultPhase& p : sc.dependencies[i].faults.phases) {
      phases.append(py::make_tuple(p.name, NsToSeconds(p.start_ns), NsToSeconds(p.end_ns)));
    }
    d["phases"] = phases;
    deps.append(d);
  }
  out["dependencies"] = deps;
  if (with_orders) {
    const auto& o = r.orders;
    py::dict orders;
    const double nan = std::nan("");
    orders["arrival"] =
        Column<double>(o, [](const OrderRecord& x) { return NsToSeconds(x.arrival_ns); });
    orders["start"] = Column<double>(
        o, [nan](const OrderRecord& x) { return x.start_ns < 0 ? nan : NsToSeconds(x.start_ns); });
    orders["end"] = Column<double>(
        o, [nan](const OrderRecord& x) { return x.end_ns < 0 ? nan : NsToSeconds(x.end_ns); });
    orders["attempts"] = Column<int32_t>(o, [](const OrderRecord& x) { return x.attempts; });
    orders["status"] = Column<int8_t>(o, [](const OrderRecord& x) { return x.status; });
    orders["reason"] = Column<int8_t>(o, [](const OrderRecord& x) { return x.reason; });
    orders["degraded"] = Column<bool>(o, [](const OrderRecord& x) { return x.degraded != 0; });
    orders["charges"] = Column<int32_t>(o, [](const OrderRecord& x) { return x.charges; });
    orders["applied_charges"] = Column<int32_t>(o, [](const OrderRecord& x) { return x.applied; });
    out["orders"] = orders;
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
  for (const SimTransition& t : r.transitions) {
    const std::string& dep = sc.dependencies[t.dep].name;
    if (t.kind == SimTransition::Kind::kBreaker) {
      events.append(py::make_tuple(NsToSeconds(t.t_ns), dep, "breaker",
                                   Str(BreakerStateName(t.from)), Str(BreakerStateName(t.to))));
    } else {
      const std::string& phase = sc.dependencies[t.dep].faults.phases[t.phase].name;
      events.append(py::make_tuple(
          NsToSeconds(t.t_ns), dep,
          t.kind == SimTransition::Kind::kPhaseStart ? "phase_start" : "phase_end", phase, phase));
    }
  }
  out["events"] = events;
  return out;
}

py::dict ViewDict(const LiveOrderView& v) {
  py::dict d;
  const double nan = std::nan("");
  d["status"] = Str(OrderStatusName(v.status));
  d["reason"] = Str(FailReasonName(v.reason));
  d["arrival"] = NsToSeconds(v.record.arrival_ns);
  d["start"] = v.record.start_ns < 0 ? nan : NsToSeconds(v.record.start_ns);
  d["end"] = v.record.end_ns < 0 ? nan : NsToSeconds(v.record.end_ns);
  d["attempts"] = static_cast<int>(v.record.attempts);
  d["degraded"] = v.record.degraded != 0;
  d["charges"] = static_cast<int>(v.record.charges);
  d["applied_charges"] = static_cast<int>(v.record.applied);
  return d;
}

py::list MetricsList(const std::vector<FamilySnapshot>& snap) {
  py::list out;
  for (const FamilySnapshot& f : snap) {
    py::dict d;
    d["name"] = f.name;
    d["help"] = f.help;
    d["type"] = f.type == MetricType::kCounter ? "counter"
                : f.type == MetricType::kGauge ? "gauge"
                                               : "histogram";
    d["labels"] = f.label_names;
    d["bounds"] = f.bounds;
    py::list series;
    for (const SeriesSnapshot& s : f.series) {
      series.append(py::make_tuple(s.label_values, s.value, s.cumulative, s.sum, s.count));
    }
    d["series"] = series;
    out.append(d);
  }
  return out;
}

}  // namespace

void RegisterLive(py::module_& m) {
  py::class_<LiveEngine>(m, "LiveEngine",
                         "The live engine: a scenario on real threads (see reliability_lab.live).")
      .def(py::init([](const py::dict& scenario, double sample_every, bool record_orders,
                       bool record_events, const std::vector<double>& latency_bounds,
                       const std::string& ledger_path, bool ledger_fsync, bool order_events) {
             const ScenarioConfig config = ValidatedScenarioFromDict(scenario);
             LiveOptions o;
             o.ledger_path = ledger_path;
             o.ledger_fsync = ledger_fsync;
             o.order_events = order_events;
             o.sample_every_ns =
                 sample_every > 0 ? DurationArgNs("sample_every", sample_every, false) : 0;
             o.record_orders = record_orders;
             o.record_events = record_events;
             o.latency_bounds_s = latency_bounds;
             return ValueOrThrow(LiveEngine::Create(config, o));
           }),
           py::arg("scenario"), py::arg("sample_every") = 1.0, py::arg("record_orders") = true,
           py::arg("record_events") = true, py::arg("latency_bounds"), py::arg("ledger_path") = "",
           py::arg("ledger_fsync") = false, py::arg("order_events") = false)
      .def("start",
           [](LiveEngine& e) {
             absl::Status s;
             {
               py::gil_scoped_release release;  // starts threads
               s = e.Start();
             }
             ThrowIfError(s);
           })
      .def(
          "submit",
          [](LiveEngine& e, int key, const std::string& idempotency_key) {
            return ValueOrThrow(e.Submit(key, idempotency_key));
          },
          py::arg("key") = -1, py::arg("idempotency_key") = "")
      .def(
          "set_faults",
          [](LiveEngine& e, const std::string& dependency, const py::dict& scenario) {
            // The scenario with the new faults in place: the converter and its dotted-path
            // validation are the scenario's own.
            const ScenarioConfig sc = ValidatedScenarioFromDict(scenario);
            for (const DependencyConfig& d : sc.dependencies) {
              if (d.name != dependency) continue;
              absl::Status s;
              {
                py::gil_scoped_release release;
                s = e.SetFaults(dependency, d.faults);
              }
              if (s.code() == absl::StatusCode::kNotFound)
                throw py::key_error(std::string(s.message()));
              ThrowIfError(s);
              return;
            }
            throw py::key_error("no dependency named '" + dependency + "'");
          },
          py::arg("dependency"), py::arg("scenario"))
      .def("take_order_events",
           [](LiveEngine& e) {
             std::vector<LiveOrderEvent> events;
             {
               py::gil_scoped_release release;
               events = e.TakeOrderEvents();
             }
             py::list out(events.size());
             for (size_t i = 0; i < events.size(); ++i) {
               const LiveOrderEvent& v = events[i];
               out[i] = py::make_tuple(v.id, Str(OrderStatusName(v.status)),
                                       Str(FailReasonName(v.reason)), NsToSeconds(v.t_ns),
                                       v.attempts, v.charges);
             }
             return out;
           })
      .def("internals",
           [](const LiveEngine& e) {
             LiveInternals in;
             {
               py::gil_scoped_release release;
               in = e.Internals();
             }
             py::dict d;
             d["running"] = in.running;
             d["queue_depth"] = in.queue_depth;
             d["queue_capacity"] = in.queue_capacity;
             d["workers"] = in.workers;
             d["busy_workers"] = in.busy_workers;
             d["in_flight"] = in.in_flight;
             d["arrived"] = in.arrived;
             py::dict deps;
             for (const LiveInternals::Dep& x : in.deps) {
               py::dict dd;
               dd["breaker_state"] = x.breaker
                                         ? py::object(py::str(Str(BreakerStateName(*x.breaker))))
                                         : py::object(py::none());
               dd["in_flight_calls"] = x.in_flight_calls;
               dd["faults_version"] = x.faults_version;
               deps[py::str(x.name)] = dd;
             }
             d["dependencies"] = deps;
             py::dict ledger;
             ledger["path"] = in.ledger_path.empty() ? py::object(py::none())
                                                     : py::object(py::str(in.ledger_path));
             ledger["entries"] = in.ledger_entries;
             ledger["double_charged"] = in.ledger_double_charged;
             ledger["write_errors"] = in.ledger_write_errors;
             d["ledger"] = ledger;
             d["order_events_pending"] = in.order_events_pending;
             return d;
           })
      .def(
          "submit_many",
          [](LiveEngine& e, int64_t n) {
            if (n < 0) throw py::value_error("n must be >= 0");
            std::vector<int64_t> ids;
            absl::Status error;
            {
              py::gil_scoped_release release;
              ids.reserve(static_cast<size_t>(n));
              for (int64_t i = 0; i < n; ++i) {
                absl::StatusOr<int64_t> id = e.Submit(-1);
                if (!id.ok()) {
                  error = id.status();
                  break;
                }
                ids.push_back(*id);
              }
            }
            // Orders already submitted exist whatever happens next: raise only if none did.
            if (ids.empty() && !error.ok()) ThrowIfError(error);
            return py::array_t<int64_t>(static_cast<py::ssize_t>(ids.size()), ids.data());
          },
          py::arg("n"))
      .def(
          "status",
          [](const LiveEngine& e, int64_t id) {
            const LiveOrderView v = ValueOrThrow(e.View(id));
            return py::make_tuple(Str(OrderStatusName(v.status)), Str(FailReasonName(v.reason)));
          },
          py::arg("id"))
      .def(
          "view",
          [](const LiveEngine& e, int64_t id) { return ViewDict(ValueOrThrow(e.View(id))); },
          py::arg("id"))
      .def(
          "wait",
          [](const LiveEngine& e, int64_t id, std::optional<double> timeout) {
            const int64_t ns = TimeoutNs(timeout, "timeout");
            py::gil_scoped_release release;
            return e.Wait(id, ns);
          },
          py::arg("id"), py::arg("timeout") = py::none())
      .def(
          "wait_idle",
          [](const LiveEngine& e, std::optional<double> timeout) {
            const int64_t ns = TimeoutNs(timeout, "timeout");
            py::gil_scoped_release release;
            return e.WaitIdle(ns);
          },
          py::arg("timeout") = py::none())
      .def("start_load",
           [](LiveEngine& e) {
             absl::Status s;
             {
               py::gil_scoped_release release;  // starts threads
               s = e.StartLoad();
             }
             ThrowIfError(s);
           })
      .def("stop_load", &LiveEngine::StopLoad, py::call_guard<py::gil_scoped_release>())
      .def("load_running", &LiveEngine::LoadRunning)
      .def(
          "shutdown",
          [](LiveEngine& e, std::optional<double> timeout) {
            const int64_t ns = TimeoutNs(timeout, "timeout");
            ShutdownReport r;
            {
              py::gil_scoped_release release;
              r = e.Shutdown(ns);
            }
            py::dict d;
            d["finished_in_time"] = r.finished_in_time;
            d["cancelled"] = r.cancelled;
            d["timed_out"] = r.timed_out;
            d["elapsed"] = NsToSeconds(r.elapsed_ns);
            return d;
          },
          py::arg("timeout") = py::none())
      .def_property_readonly("shut_down", &LiveEngine::shut_down)
      .def("metrics",
           [](LiveEngine& e) {
             std::vector<FamilySnapshot> snap;
             {
               // Takes breaker and registry locks: never with the GIL held.
               py::gil_scoped_release release;
               snap = e.MetricsSnapshot();
             }
             return MetricsList(snap);
           })
      .def("take_transitions",
           [](LiveEngine& e) {
             std::vector<SimTransition> taken;
             {
               py::gil_scoped_release release;
               taken = e.TakeTransitions();
             }
             py::list out;
             for (const SimTransition& t : taken) {
               out.append(py::make_tuple(NsToSeconds(t.t_ns), e.config().dependencies[t.dep].name,
                                         Str(BreakerStateName(t.from)),
                                         Str(BreakerStateName(t.to))));
             }
             return out;
           })
      .def(
          "result",
          [](const LiveEngine& e, const std::vector<double>& latency_bounds, bool with_orders) {
            const SimResult* r = ValueOrThrow(e.result());
            return ResultDict(e.config(), *r, latency_bounds, with_orders);
          },
          py::arg("latency_bounds"), py::arg("with_orders") = true)
      .def("now", [](const LiveEngine& e) { return NsToSeconds(e.NowNs()); })
      .def_property_readonly("arrived", &LiveEngine::arrived)
      .def_property_readonly("in_system", &LiveEngine::in_system);
}

}  // namespace rlab::bindings
