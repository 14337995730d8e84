// Adaptive client-side throttling (Google SRE book): the throttle and its outcome classifier.
#include <pybind11/pybind11.h>

#include <limits>
#include <memory>
#include <string>

#include "common.h"
#include "config_codec.h"
#include "rlab/core/clock.h"
#include "rlab/core/outcome.h"
#include "rlab/core/validate.h"
#include "rlab/policy/throttle.h"

namespace rlab::bindings {
namespace {

// `now` in seconds on the caller's clock, as nanoseconds; any finite value is a valid instant.
int64_t NowArgNs(double now) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  ThrowIfError(CheckRange("now", now, -kInf, kInf));
  return SecondsToNs(now);
}

// An outcome from its kind name ("timeout", "http_status", ...) and, for statuses, the status.
Outcome OutcomeArg(const std::string& kind, int http_status) {
  const OutcomeKind k = ValueOrThrow(ParseOutcomeKind(kind));
  if (k == OutcomeKind::kHttpStatus || (k == OutcomeKind::kSuccess && http_status != 0)) {
    ThrowIfError(CheckIntRange("http_status", http_status, 100, 599));
    return Outcome::Http(http_status);
  }
  return Outcome::Of(k);
}

}  // namespace

void RegisterThrottle(py::module_& m) {
  py::class_<ThrottleSnapshot>(m, "ThrottleSnapshot",
                               "Window counts and rejection probability at one instant.")
      .def_readonly("requests", &ThrottleSnapshot::requests)
      .def_readonly("accepts", &ThrottleSnapshot::accepts)
      .def_readonly("reject_probability", &ThrottleSnapshot::reject_probability)
      .def_readonly("local_rejections", &ThrottleSnapshot::local_rejections);

  py::class_<AdaptiveThrottle, std::shared_ptr<AdaptiveThrottle>>(
      m, "AdaptiveThrottle",
      "Rejects locally with p = max(0, (requests - k * accepts) / (requests + 1)).")
      .def(py::init([](const py::dict& config) {
             return std::make_shared<AdaptiveThrottle>(ReadValid(config, "", ThrottleSchema()));
           }),
           py::arg("config"))
      .def(
          "allow",
          [](AdaptiveThrottle& t, double now, double u) {
            ThrowIfError(CheckRange("u", u, 0.0, 1.0, Bound::kClosed, Bound::kOpen));
            return t.Allow(NowArgNs(now), u);
          },
          py::arg("now"), py::arg("u"),
          "Counts a request at `now` and admits it unless u < p; `u` is uniform in [0, 1).")
      .def(
          "record_accepted",
          [](AdaptiveThrottle& t, double now) { t.RecordAccepted(NowArgNs(now)); }, py::arg("now"),
          "The backend accepted a request.")
      .def(
          "record_outcome",
          [](AdaptiveThrottle& t, double now, const std::string& kind, int http_status) {
            t.RecordOutcome(NowArgNs(now), OutcomeArg(kind, http_status));
          },
          py::arg("now"), py::arg("kind"), py::arg("http_status") = 0,
          "Counts an accept if the outcome shows the backend accepted the request.")
      .def(
          "reject_probability",
          [](AdaptiveThrottle& t, double now) { return t.RejectProbability(NowArgNs(now)); },
          py::arg("now"), "The probability that a request at `now` is rejected.")
      .def(
          "snapshot", [](AdaptiveThrottle& t, double now) { return t.Snapshot(NowArgNs(now)); },
          py::arg("now"), "Window counts as of `now`.")
      .def_property_readonly("k", [](const AdaptiveThrottle& t) { return t.config().k; })
      .def_property_readonly(
          "window", [](const AdaptiveThrottle& t) { return NsToSeconds(t.config().window_ns); })
      .def_property_readonly("buckets",
                             [](const AdaptiveThrottle& t) { return t.config().num_buckets; })
      .def_static("probability", &AdaptiveThrottle::Probability, py::arg("k"), py::arg("requests"),
                  py::arg("accepts"), "The SRE formula on raw counts.");

  m.def(
      "is_accepted_by_backend",
      [](const std::string& kind, int http_status) {
        return IsAcceptedByBackend(OutcomeArg(kind, http_status));
      },
      py::arg("kind"), py::arg("http_status") = 0,
      "Whether an outcome counts as accepted for the adaptive throttle (overload refusals and "
      "timeouts do not).");
}

}  // namespace rlab::bindings
