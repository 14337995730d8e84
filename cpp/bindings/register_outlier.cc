// Outlier ejection (Envoy's outlier detection) over a pool of replicas.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <limits>
#include <memory>
#include <vector>

#include "common.h"
#include "config_codec.h"
#include "rlab/core/clock.h"
#include "rlab/core/validate.h"
#include "rlab/policy/outlier_detector.h"

namespace rlab::bindings {
namespace {

// `now` in seconds on the caller's clock, as nanoseconds; any finite value is a valid instant.
int64_t NowNs(double now) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  ThrowIfError(CheckRange("now", now, -kInf, kInf));
  return SecondsToNs(now);
}

int ReplicaArg(const OutlierDetector& d, int64_t replica) {
  ThrowIfError(CheckIntRange("replica", replica, 0, d.replicas() - 1));
  return static_cast<int>(replica);
}

}  // namespace

void RegisterOutlier(py::module_& m) {
  py::class_<ReplicaOutlierState>(m, "ReplicaOutlierState", "One replica's ejection state.")
      .def_readonly("ejected", &ReplicaOutlierState::ejected)
      .def_readonly("times_ejected", &ReplicaOutlierState::times_ejected)
      .def_readonly("backoff", &ReplicaOutlierState::backoff)
      .def_readonly("consecutive_errors", &ReplicaOutlierState::consecutive_errors)
      .def_property_readonly("ejected_until", [](const ReplicaOutlierState& s) {
        return NsToSeconds(s.ejected_until_ns);
      });

  py::class_<EjectionEvent>(m, "EjectionEvent", "An ejection or a return.")
      .def_property_readonly("time", [](const EjectionEvent& e) { return NsToSeconds(e.time_ns); })
      .def_readonly("replica", &EjectionEvent::replica)
      .def_readonly("ejected", &EjectionEvent::ejected)
      .def_property_readonly("reason", [](const EjectionEvent& e) {
        return e.reason == EjectionReason::kSuccessRate ? "success_rate" : "consecutive_errors";
      });

  py::class_<OutlierDetector, std::shared_ptr<OutlierDetector>>(
      m, "OutlierDetector", "Ejects replicas on consecutive errors or low success rate (Envoy).")
      .def(py::init([](const py::object& config, int64_t replicas, double start) {
             ThrowIfError(CheckIntRange("outlier.replicas", replicas, 1, 100000));
             OutlierDetectionConfig c = ReadValid(config, "outlier", OutlierSchema());
             c.replicas = static_cast<int>(replicas);  // the rules do not read it
             return std::make_shared<OutlierDetector>(c, NowNs(start));
           }),
           py::arg("config"), py::arg("replicas"), py::arg("start") = 0.0,
           "From the dict of an rl.OutlierDetection (its field table), over `replicas` replicas; "
           "ticks fall every interval from `start`.")
      .def(
          "record_result",
          [](OutlierDetector& d, int64_t replica, double now, bool ok) {
            return d.RecordResult(ReplicaArg(d, replica), NowNs(now), ok);
          },
          py::arg("replica"), py::arg("now"), py::arg("ok"),
          "Runs due ticks, then records a result; True when it ejected the replica.")
      .def(
          "advance_to", [](OutlierDetector& d, double now) { d.AdvanceTo(NowNs(now)); },
          py::arg("now"), "Runs the interval ticks due up to `now`.")
      .def(
          "is_ejected",
          [](const OutlierDetector& d, int64_t replica) {
            return d.IsEjected(ReplicaArg(d, replica));
          },
          py::arg("replica"))
      .def("ejected_mask", &OutlierDetector::EjectedMask)
      .def_property_readonly("ejected_count", &OutlierDetector::EjectedCount)
      .def(
          "state",
          [](const OutlierDetector& d, int64_t replica) { return d.State(ReplicaArg(d, replica)); },
          py::arg("replica"))
      .def("events", &OutlierDetector::Events)
      .def_property_readonly("overflow_count", &OutlierDetector::overflow_count)
      .def_property_readonly("replicas", &OutlierDetector::replicas)
      .def_property_readonly("consecutive_errors",
                             [](const OutlierDetector& d) { return d.config().consecutive_errors; })
      .def_property_readonly(
          "interval", [](const OutlierDetector& d) { return NsToSeconds(d.config().interval_ns); })
      .def_property_readonly(
          "base_ejection_time",
          [](const OutlierDetector& d) { return NsToSeconds(d.config().base_ejection_ns); })
      .def_property_readonly(
          "max_ejection_time",
          [](const OutlierDetector& d) { return NsToSeconds(d.config().max_ejection_ns); })
      .def_property_readonly(
          "max_ejection_percent",
          [](const OutlierDetector& d) { return d.config().max_ejection_percent; })
      .def_property_readonly("success_rate",
                             [](const OutlierDetector& d) { return d.config().success_rate; })
      .def_property_readonly(
          "success_rate_minimum_hosts",
          [](const OutlierDetector& d) { return d.config().success_rate_minimum_hosts; })
      .def_property_readonly(
          "success_rate_request_volume",
          [](const OutlierDetector& d) { return d.config().success_rate_request_volume; })
      .def_property_readonly("success_rate_stdev_factor", [](const OutlierDetector& d) {
        return d.config().success_rate_stdev_factor;
      });
}

}  // namespace rlab::bindings
