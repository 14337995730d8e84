// Adaptive concurrency limits (AIMD, Vegas, Gradient2, Envoy's gradient controller).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common.h"
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

// One parameter of an algorithm: its name and where it goes. Integers must be Python ints,
// durations are seconds, other reals any number.
enum class Kind { kInt, kReal, kDuration };
struct Param {
  const char* name;
  Kind kind;
  int64_t* i = nullptr;
  double* d = nullptr;
};

std::vector<Param> ParamsOf(ConcurrencyLimitConfig& c) {
  switch (c.kind) {
    case LimitAlgorithmKind::kAimd:
      return {{"initial_limit", Kind::kInt, &c.aimd.initial_limit},
              {"min_limit", Kind::kInt, &c.aimd.min_limit},
              {"max_limit", Kind::kInt, &c.aimd.max_limit},
              {"backoff_ratio", Kind::kReal, nullptr, &c.aimd.backoff_ratio},
              {"timeout", Kind::kDuration, &c.aimd.timeout_ns}};
    case LimitAlgorithmKind::kVegas:
      return {{"initial_limit", Kind::kInt, &c.vegas.initial_limit},
              {"max_limit", Kind::kInt, &c.vegas.max_limit},
              {"smoothing", Kind::kReal, nullptr, &c.vegas.smoothing},
              {"alpha_factor", Kind::kInt, &c.vegas.alpha_factor},
              {"beta_factor", Kind::kInt, &c.vegas.beta_factor},
              {"threshold_factor", Kind::kInt, &c.vegas.threshold_factor},
              {"probe_multiplier", Kind::kInt, &c.vegas.probe_multiplier}};
    case LimitAlgorithmKind::kGradient2:
      return {{"initial_limit", Kind::kInt, &c.gradient2.initial_limit},
              {"min_limit", Kind::kInt, &c.gradient2.min_limit},
              {"max_limit", Kind::kInt, &c.gradient2.max_limit},
              {"smoothing", Kind::kReal, nullptr, &c.gradient2.smoothing},
              {"queue_size", Kind::kInt, &c.gradient2.queue_size},
              {"long_window", Kind::kInt, &c.gradient2.long_window},
              {"rtt_tolerance", Kind::kReal, nullptr, &c.gradient2.rtt_tolerance}};
    case LimitAlgorithmKind::kEnvoy:
      return {{"sample_interval", Kind::kDuration, &c.envoy.sample_interval_ns},
              {"min_rtt_interval", Kind::kDuration, &c.envoy.min_rtt_interval_ns},
              {"jitter", Kind::kReal, nullptr, &c.envoy.jitter},
              {"request_count", Kind::kInt, &c.envoy.request_count},
              {"min_concurrency", Kind::kInt, &c.envoy.min_concurrency},
              {"buffer", Kind::kReal, nullptr, &c.envoy.buffer},
              {"max_limit", Kind::kInt, &c.envoy.max_limit},
              {"percentile", Kind::kReal, nullptr, &c.envoy.percentile},
              {"max_samples", Kind::kInt, &c.envoy.max_samples}};
  }
  return {};
}

[[noreturn]] void Invalid(const std::string& message) { throw py::value_error(message); }

std::vector<Param> WindowParams(SampleWindowConfig& w) {
  return {{"min_time", Kind::kDuration, &w.min_time_ns},
          {"max_time", Kind::kDuration, &w.max_time_ns},
          {"size", Kind::kInt, &w.size},
          {"min_rtt_threshold", Kind::kDuration, &w.min_rtt_threshold_ns}};
}

void Apply(const std::string& prefix, std::vector<Param>& table, const py::dict& params);

// The config for `algorithm` with `params` (keyword name -> value) and the optional sample
// window applied, validated.
ConcurrencyLimitConfig ConfigFrom(const std::string& algorithm,
                                  const std::optional<py::dict>& window, const py::dict& params) {
  ConcurrencyLimitConfig c;
  c.kind = ValueOrThrow(ParseLimitAlgorithm(algorithm));
  std::vector<Param> table = ParamsOf(c);
  Apply(std::string(LimitAlgorithmName(c.kind)), table, params);
  if (window.has_value()) {
    c.window.enabled = true;
    std::vector<Param> wtable = WindowParams(c.window);
    Apply("window", wtable, *window);
  }
  ThrowIfError(Validate(c));
  return c;
}

// Sets the fields of `table` named by `params`, checking names and types.
void Apply(const std::string& prefix, std::vector<Param>& table, const py::dict& params) {
  for (const auto& [key_obj, value] : params) {
    const std::string key = py::str(key_obj);
    const std::string path = prefix + "." + key;
    Param* p = nullptr;
    for (Param& q : table) {
      if (key == q.name) p = &q;
    }
    if (p == nullptr) {
      std::vector<std::string> names;
      for (const Param& q : table) names.emplace_back(q.name);
      Invalid(absl::StrFormat("%s is not a parameter of %s (known: %s)", path, prefix,
                              absl::StrJoin(names, ", ")));
    }
    const bool is_bool = py::isinstance<py::bool_>(value);
    if (p->kind == Kind::kInt) {
      if (is_bool || !py::isinstance<py::int_>(value)) {
        Invalid(
            absl::StrFormat("%s must be an integer, got %s", path, std::string(py::repr(value))));
      }
      // Beyond int64 it cannot be in any allowed range; name the field rather than overflow.
      const auto big = py::reinterpret_borrow<py::int_>(value);
      const double approx = py::float_(big);
      if (std::fabs(approx) > 9e18) {
        Invalid(absl::StrFormat("%s is out of range, got %s", path, std::string(py::repr(value))));
      }
      *p->i = big.cast<int64_t>();
      continue;
    }
    if (is_bool || !(py::isinstance<py::int_>(value) || py::isinstance<py::float_>(value))) {
      Invalid(absl::StrFormat("%s must be a number, got %s", path, std::string(py::repr(value))));
    }
    const double x = value.cast<double>();
    if (p->kind == Kind::kReal) {
      *p->d = x;
    } else {
      // A window's RTT threshold may be 0; every other duration must be positive.
      *p->i = DurationArgNs(path, x, key == "min_rtt_threshold");
    }
  }
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
      .def(py::init([](const std::string& algorithm, const std::optional<py::dict>& window,
                       const py::kwargs& params) {
             return std::make_shared<ConcurrencyLimiter>(ConfigFrom(algorithm, window, params));
           }),
           py::arg("algorithm"), py::arg("window") = py::none())
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
