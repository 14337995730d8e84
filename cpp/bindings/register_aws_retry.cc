// The AWS SDK retry modes (botocore's "standard" and "adaptive"): the shared policy object and
// the outcome -> AWS error kind mapping. The Python facade (reliability_lab.aws_retry) owns the
// loop, the clock and the sleeps.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <tuple>

#include "common.h"
#include "config_codec.h"
#include "rlab/core/outcome.h"
#include "rlab/core/validate.h"
#include "rlab/policy/aws_retry.h"

namespace rlab::bindings {

void RegisterAwsRetry(py::module_& m) {
  m.def(
      "aws_error_kind",
      [](const std::string& kind, int status) {
        Outcome outcome = Outcome::Of(ValueOrThrow(ParseOutcomeKind(kind)));
        if (outcome.kind == OutcomeKind::kHttpStatus) {
          ThrowIfError(CheckIntRange("status", status, 100, 599));
          outcome = Outcome::Http(status);
        }
        return std::string(AwsErrorKindName(ClassifyAwsOutcome(outcome)));
      },
      py::arg("kind"), py::arg("status") = 0,
      "The AWS retry class of an outcome kind (and HTTP status): success, transient, timeout, "
      "throttling, permanent or gave_up.");

  py::class_<AwsRetrySnapshot>(m, "AwsRetrySnapshot", "The quota and send-rate state.")
      .def_readonly("quota_available", &AwsRetrySnapshot::quota_available)
      .def_readonly("quota_max", &AwsRetrySnapshot::quota_max)
      .def_readonly("limiter_enabled", &AwsRetrySnapshot::limiter_enabled)
      .def_readonly("fill_rate", &AwsRetrySnapshot::fill_rate)
      .def_readonly("tokens", &AwsRetrySnapshot::tokens)
      .def_readonly("measured_rate", &AwsRetrySnapshot::measured_rate);

  py::class_<AwsRetryPolicy, std::shared_ptr<AwsRetryPolicy>>(
      m, "AwsRetryPolicy", "botocore's standard/adaptive retry mode: quota and rate limiter.")
      .def(
          py::init([](py::handle config, int64_t now_ns) {
            const AwsRetryConfig c = ReadConfig(config, "aws_retry", AwsRetrySchema());
            return std::shared_ptr<AwsRetryPolicy>(ValueOrThrow(AwsRetryPolicy::Create(c, now_ns)));
          }),
          py::arg("config"), py::arg("now_ns"))
      .def(
          "before_attempt",
          [](AwsRetryPolicy& p, int64_t now_ns) -> std::optional<double> {
            std::optional<int64_t> wait;
            {
              py::gil_scoped_release release;
              wait = p.BeforeAttempt(now_ns);
            }
            if (!wait.has_value()) return std::nullopt;
            return static_cast<double>(*wait) / 1e9;
          },
          py::arg("now_ns"),
          "The wait in seconds before sending an attempt (0 unless the adaptive limiter is on), "
          "or None when it would exceed max_wait (then nothing is reserved).")
      .def(
          "on_attempt_end",
          [](AwsRetryPolicy& p, int64_t attempt, int64_t last_cost, const std::string& kind,
             int64_t now_ns, double draw) {
            ThrowIfError(CheckIntRange("attempt", attempt, 1, 1'000'000));
            ThrowIfError(CheckIntRange("last_cost", last_cost, 0, 1'000'000'000));
            ThrowIfError(CheckRange("draw", draw, 0.0, 1.0));
            const AwsErrorKind k = ValueOrThrow(ParseAwsErrorKind(kind));
            AwsRetryStep step;
            {
              py::gil_scoped_release release;
              step = p.OnAttemptEnd(static_cast<int>(attempt), last_cost, k, now_ns, draw);
            }
            return std::make_tuple(std::string(AwsRetryVerdictName(step.verdict)),
                                   static_cast<double>(step.delay_ns) / 1e9, step.cost);
          },
          py::arg("attempt"), py::arg("last_cost"), py::arg("kind"), py::arg("now_ns"),
          py::arg("draw"),
          "Attempt `attempt` ended with AWS error kind `kind`: (verdict, delay seconds, cost), "
          "verdict one of succeeded, retry, permanent, exhausted, quota.")
      .def("snapshot", &AwsRetryPolicy::Snapshot, "The quota and send-rate state now.");
}

}  // namespace rlab::bindings
