// Adaptive concurrency limits (AIMD, Vegas, Gradient2, Envoy's gradient controller).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "common.h"
#include "config_codec.h"
#include "rlab/core/clock.h"
#include "rlab/core/validate.h"
#include "rlab/policy/concurrency_limit.h"

namespace rlab::bindings {
namespace {

int64_t NowArgNs(double now) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  ThrowIfError(CheckRange("now", now, -kInf, kInf));
  return SecondsToNs(now);
}

double DrawArg(double u) {
  ThrowIfError(CheckRange("u", u, 0.0, 1.0, Bound::kClosed, Bound::kOpen));
  return u;
}

// The config of `algorithm` from the dict of its Python class (rl.Aimd, ...), read by that
// algorithm's field table and checked by its rules, named under the algorithm ("aimd.timeout").
ConcurrencyLimitConfig ConfigFrom(const std::string& algorithm, const py::handle& config) {
  ConcurrencyLimitConfig c;
  c.kind = ValueOrThrow(ParseLimitAlgorithm(algorithm));
  switch (c.kind) {
    case LimitAlgorithmKind::kAimd:
      c.aimd = ReadConfig(config, algorithm, AimdSchema());
      break;
    case LimitAlgorithmKind::kVegas:
      c.vegas = ReadConfig(config, algorithm, VegasSchema());
      break;
    case LimitAlgorithmKind::kGradient2:
      c.gradient2 = ReadConfig(config, algorithm, Gradient2Schema());
      break;
    case LimitAlgorithmKind::kEnvoy:
      c.envoy = ReadConfig(config, algorithm, EnvoyGradientSchema());
      break;
  }
  ThrowIfError(Validate(c));
  return c;
}

}  // namespace

void RegisterConcurrencyLimit(py::module_& m) {
  py::class_<LimitToken>(m, "LimitToken", "One admitted request; hand it back exactly once.")
      .def_property_readonly("start", [](const LimitToken& t) { return NsToSeconds(t.start_ns); })
      .def_readonly("inflight", &LimitToken::inflight);

  py::class_<LimiterSnapshot>(m, "LimiterSnapshot", "Gauges and lifetime counters of a limiter.")
      .def_readonly("limit", &LimiterSnapshot::limit)
      .def_readonly("estimate", &LimiterSnapshot::estimate)
      .def_readonly("inflight", &LimiterSnapshot::inflight)
      .def_readonly("acquired", &LimiterSnapshot::acquired)
      .def_readonly("rejected", &LimiterSnapshot::rejected)
      .def_readonly("succeeded", &LimiterSnapshot::succeeded)
      .def_readonly("dropped", &LimiterSnapshot::dropped)
      .def_readonly("ignored", &LimiterSnapshot::ignored);

  using Release = py::call_guard<py::gil_scoped_release>;
  py::class_<ConcurrencyLimiter, std::shared_ptr<ConcurrencyLimiter>>(
      m, "ConcurrencyLimiter", "Admission against an adaptive concurrency limit.")
      .def(py::init([](const std::string& algorithm, const py::object& config) {
             return std::make_shared<ConcurrencyLimiter>(ConfigFrom(algorithm, config));
           }),
           py::arg("algorithm"), py::arg("config"),
           "From the dict of an rl.Aimd, rl.Vegas, rl.Gradient2 or rl.EnvoyGradient (its table).")
      .def(
          "try_acquire",
          [](ConcurrencyLimiter& l, double now) {
            const int64_t now_ns = NowArgNs(now);
            py::gil_scoped_release release;
            return l.TryAcquire(now_ns);
          },
          py::arg("now"), "A token while in flight < limit, else None.")
      .def(
          "on_success",
          [](ConcurrencyLimiter& l, const LimitToken& token, double now, double u) {
            const int64_t now_ns = NowArgNs(now);
            DrawArg(u);
            py::gil_scoped_release release;
            l.OnSuccess(token, now_ns, u);
          },
          py::arg("token"), py::arg("now"), py::arg("u"),
          "Releases the request and samples its RTT (now - start).")
      .def(
          "on_dropped",
          [](ConcurrencyLimiter& l, const LimitToken& token, double now, double u) {
            const int64_t now_ns = NowArgNs(now);
            DrawArg(u);
            py::gil_scoped_release release;
            l.OnDropped(token, now_ns, u);
          },
          py::arg("token"), py::arg("now"), py::arg("u"),
          "Releases the request and samples a drop.")
      .def("on_ignore", &ConcurrencyLimiter::OnIgnore, py::arg("token"), Release(),
           "Releases the request without a sample.")
      .def(
          "on_sample",
          [](ConcurrencyLimiter& l, double now, double rtt, int64_t inflight, bool dropped,
             double u, std::optional<double> start) {
            LimitSample s;
            s.rtt_ns = DurationArgNs("rtt", rtt, false);
            ThrowIfError(CheckIntRange("inflight", inflight, 0, int64_t{1} << 40));
            s.inflight = inflight;
            s.dropped = dropped;
            s.u = DrawArg(u);
            const int64_t now_ns = NowArgNs(now);
            s.start_ns = start.has_value() ? NowArgNs(*start) : now_ns - s.rtt_ns;
            py::gil_scoped_release release;
            l.OnSample(now_ns, s);
          },
          py::arg("now"), py::arg("rtt"), py::arg("inflight"), py::arg("dropped") = false,
          py::arg("u") = 0.5, py::arg("start") = py::none(),
          "Feeds one sample to the algorithm, without admission.")
      .def(
          "limit",
          [](ConcurrencyLimiter& l, double now) {
            const int64_t now_ns = NowArgNs(now);
            py::gil_scoped_release release;
            return l.Limit(now_ns);
          },
          py::arg("now"), "The limit at `now`.")
      .def(
          "snapshot",
          [](ConcurrencyLimiter& l, double now) {
            const int64_t now_ns = NowArgNs(now);
            py::gil_scoped_release release;
            return l.Snapshot(now_ns);
          },
          py::arg("now"), "Gauges and counters at `now`.")
      .def_property_readonly("algorithm", [](const ConcurrencyLimiter& l) {
        return std::string(LimitAlgorithmName(l.config().kind));
      });
}

}  // namespace rlab::bindings
