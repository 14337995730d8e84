// Client-side load balancers over N replicas (round robin, random, least outstanding, P2C,
// Peak EWMA), optionally with an outlier detector.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <limits>
#include <memory>
#include <string>

#include "common.h"
#include "config_codec.h"
#include "rlab/core/clock.h"
#include "rlab/core/validate.h"
#include "rlab/policy/load_balancer.h"
#include "rlab/policy/outlier_detector.h"

namespace rlab::bindings {
namespace {

int64_t NowNs(double now) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  ThrowIfError(CheckRange("now", now, -kInf, kInf));
  return SecondsToNs(now);
}

int ReplicaArg(const LoadBalancer& lb, int64_t replica) {
  ThrowIfError(CheckIntRange("replica", replica, 0, lb.config().replicas - 1));
  return static_cast<int>(replica);
}

double DrawArg(const char* name, double u) {
  ThrowIfError(CheckRange(name, u, 0.0, 1.0, Bound::kClosed, Bound::kOpen));
  return u;
}

}  // namespace

void RegisterLoadBalancer(py::module_& m) {
  py::class_<ReplicaLoad>(m, "ReplicaLoad", "One replica's counters in a load balancer.")
      .def_readonly("outstanding", &ReplicaLoad::outstanding)
      .def_readonly("picks", &ReplicaLoad::picks)
      .def_readonly("starts", &ReplicaLoad::starts)
      .def_readonly("ends", &ReplicaLoad::ends)
      .def_readonly("errors", &ReplicaLoad::errors)
      .def_property_readonly("ewma_latency",
                             [](const ReplicaLoad& l) { return l.ewma_latency_ns * 1e-9; });

  py::class_<LoadBalancer, std::shared_ptr<LoadBalancer>>(
      m, "LoadBalancer", "Chooses a replica for each call; pure: time and draws come in.")
      .def(py::init([](py::handle config, std::shared_ptr<OutlierDetector> outlier) {
             const auto c = ReadConfig(config, "load_balancer", LoadBalancerSchema());
             return std::shared_ptr<LoadBalancer>(
                 ValueOrThrow(LoadBalancer::Create(c, std::move(outlier))));
           }),
           py::arg("config"), py::arg("outlier") = nullptr,
           "From {kind, replicas, decay, panic_threshold}, read by its field table.")
      .def(
          "pick",
          [](LoadBalancer& lb, double now, double u1, double u2) {
            return lb.Pick(NowNs(now), DrawArg("u1", u1), DrawArg("u2", u2));
          },
          py::arg("now"), py::arg("u1"), py::arg("u2"),
          "A replica index for a call at `now` (u1, u2 uniform in [0, 1)); -1 if none is "
          "available.")
      .def(
          "on_start",
          [](LoadBalancer& lb, int64_t replica) { lb.OnStart(ReplicaArg(lb, replica)); },
          py::arg("replica"), "A call to `replica` starts.")
      .def(
          "on_end",
          [](LoadBalancer& lb, int64_t replica, double now, double latency, bool ok) {
            const int r = ReplicaArg(lb, replica);
            const int64_t latency_ns = DurationArgNs("latency", latency, true);
            lb.OnEnd(r, NowNs(now), latency_ns, ok);
          },
          py::arg("replica"), py::arg("now"), py::arg("latency"), py::arg("ok"),
          "A call to `replica` ended at `now` after `latency` seconds.")
      .def(
          "set_ejected",
          [](LoadBalancer& lb, int64_t replica, bool ejected) {
            lb.SetEjected(ReplicaArg(lb, replica), ejected);
          },
          py::arg("replica"), py::arg("ejected"))
      .def("in_panic", &LoadBalancer::InPanic)
      .def(
          "cost",
          [](const LoadBalancer& lb, int64_t replica, double now) {
            const double cost = lb.Cost(ReplicaArg(lb, replica), NowNs(now));
            // Peak EWMA's cost is in nanoseconds natively; Python speaks seconds.
            return lb.config().kind == LbKind::kPeakEwma ? cost * 1e-9 : cost;
          },
          py::arg("replica"), py::arg("now"),
          "Peak EWMA: latency estimate (s) x (outstanding + 1); other kinds: outstanding + 1.")
      .def(
          "load",
          [](const LoadBalancer& lb, int64_t replica) { return lb.Load(ReplicaArg(lb, replica)); },
          py::arg("replica"))
      .def_property_readonly("panic_picks", &LoadBalancer::panic_picks)
      .def_property_readonly("outlier", &LoadBalancer::outlier)
      .def_property_readonly(
          "kind", [](const LoadBalancer& lb) { return std::string(LbKindName(lb.config().kind)); })
      .def_property_readonly("replicas",
                             [](const LoadBalancer& lb) { return lb.config().replicas; })
      .def_property_readonly(
          "decay", [](const LoadBalancer& lb) { return NsToSeconds(lb.config().decay_ns); })
      .def_property_readonly("panic_threshold", [](const LoadBalancer& lb) {
        return lb.config().panic_threshold_percent;
      });
}

}  // namespace rlab::bindings
