// Rate limiters (smooth and bursty, single and per key).
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
#include "rlab/model/limits.h"
#include "rlab/policy/rate_limit.h"

namespace rlab::bindings {
namespace {

int64_t NowArgNs(double now) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  ThrowIfError(CheckRange("now", now, -kInf, kInf));
  return SecondsToNs(now);
}

// The policy's parameters from the dict of an rl.RateLimit (its field table: rate, burst, mode,
// max_wait, per_key, max_keys), converted as the engines convert a scenario's rate limit. The
// caller (rate_limit.py) handles max_wait and per_key.
RateLimiterParams ConfigArg(py::handle config) {
  return ToRateLimiterParams(ReadConfig(config, "", RateLimitSchema()));
}

// The wait in seconds, or None when refused.
std::optional<double> WaitSeconds(std::optional<int64_t> wait_ns) {
  if (!wait_ns.has_value()) return std::nullopt;
  return NsToSeconds(*wait_ns);
}

}  // namespace

void RegisterRateLimit(py::module_& m) {
  py::class_<RateLimitStats>(m, "RateLimitStats", "Counters of a rate limiter.")
      .def_readonly("granted", &RateLimitStats::granted)
      .def_readonly("reserved", &RateLimitStats::reserved)
      .def_readonly("rejected", &RateLimitStats::rejected)
      .def_readonly("keys", &RateLimitStats::keys)
      .def_readonly("evictions", &RateLimitStats::evictions);

  py::class_<RateLimiter, std::shared_ptr<RateLimiter>>(
      m, "RateLimiter", "Admission at a fixed rate (smooth or bursty).")
      .def(py::init([](const py::object& config) {
             return std::make_shared<RateLimiter>(ConfigArg(config));
           }),
           py::arg("config"), "From the dict of an rl.RateLimit (its field table).")
      .def(
          "try_acquire",
          [](RateLimiter& r, double now) {
            const int64_t now_ns = NowArgNs(now);
            py::gil_scoped_release release;
            return r.TryAcquire(now_ns);
          },
          py::arg("now"), "A permit now, if one is free.")
      .def(
          "reserve",
          [](RateLimiter& r, double now, double max_wait) {
            const int64_t now_ns = NowArgNs(now);
            const int64_t max_wait_ns = DurationArgNs("max_wait", max_wait, true);
            py::gil_scoped_release release;
            return WaitSeconds(r.Reserve(now_ns, max_wait_ns));
          },
          py::arg("now"), py::arg("max_wait"),
          "Reserves a permit: the wait in seconds (<= max_wait), or None (nothing reserved).")
      .def(
          "available", [](RateLimiter& r, double now) { return r.Available(NowArgNs(now)); },
          py::arg("now"), "Permits free at `now` without waiting.")
      .def("stats", &RateLimiter::Stats);

  py::class_<KeyedRateLimiter, std::shared_ptr<KeyedRateLimiter>>(
      m, "KeyedRateLimiter", "One rate per key, for at most max_keys keys (LRU eviction).")
      .def(py::init([](const py::object& config) {
             return std::make_shared<KeyedRateLimiter>(ConfigArg(config));
           }),
           py::arg("config"), "From the dict of an rl.RateLimit (its field table).")
      .def(
          "try_acquire",
          [](KeyedRateLimiter& r, const std::string& key, double now) {
            const int64_t now_ns = NowArgNs(now);
            py::gil_scoped_release release;
            return r.TryAcquire(key, now_ns);
          },
          py::arg("key"), py::arg("now"))
      .def(
          "reserve",
          [](KeyedRateLimiter& r, const std::string& key, double now, double max_wait) {
            const int64_t now_ns = NowArgNs(now);
            const int64_t max_wait_ns = DurationArgNs("max_wait", max_wait, true);
            py::gil_scoped_release release;
            return WaitSeconds(r.Reserve(key, now_ns, max_wait_ns));
          },
          py::arg("key"), py::arg("now"), py::arg("max_wait"))
      .def(
          "available",
          [](KeyedRateLimiter& r, const std::string& key, double now) {
            return r.Available(key, NowArgNs(now));
          },
          py::arg("key"), py::arg("now"))
      .def("stats", &KeyedRateLimiter::Stats);
}

}  // namespace rlab::bindings
