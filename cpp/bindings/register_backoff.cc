// Exponential backoff with jitter: the config, the pure delay function and a seeded delay
// iterator. Seconds at this boundary, nanoseconds inside.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common.h"
#include "config_codec.h"
#include "rlab/core/clock.h"
#include "rlab/core/rng.h"
#include "rlab/core/validate.h"
#include "rlab/policy/backoff.h"

namespace rlab::bindings {
namespace {

// A seeded, optionally finite sequence of backoff delays, as a Python iterator of seconds.
class BackoffDelays {
 public:
  BackoffDelays(const BackoffConfig& config, uint64_t seed, std::optional<int64_t> n)
      : backoff_(config), stream_(Rng(seed).Stream("backoff")), left_(n.value_or(-1)) {}

  // The next delay in seconds; StopIteration once `n` delays have been produced.
  double Next() {
    if (left_ == 0) throw py::stop_iteration();
    if (left_ > 0) --left_;
    return NsToSeconds(backoff_.NextDelayNs(stream_.Uniform01()));
  }

 private:
  Backoff backoff_;
  RandomStream stream_;
  int64_t left_;  // < 0: infinite
};

}  // namespace

void RegisterBackoff(py::module_& m) {
  py::class_<BackoffConfig>(m, "BackoffConfig",
                            "Exponential backoff with jitter (validated; seconds in, ns inside).")
      .def(py::init([](const py::dict& d) { return ReadValid(d, "", BackoffSchema()); }),
           py::arg("config"), "From its dict form (rl.Backoff's fields), read by the table.")
      .def_property_readonly("initial",
                             [](const BackoffConfig& c) { return NsToSeconds(c.initial_ns); })
      .def_property_readonly("initial_ns", [](const BackoffConfig& c) { return c.initial_ns; })
      .def_property_readonly("multiplier", [](const BackoffConfig& c) { return c.multiplier; })
      .def_property_readonly("max_delay",
                             [](const BackoffConfig& c) { return NsToSeconds(c.max_ns); })
      .def_property_readonly("max_ns", [](const BackoffConfig& c) { return c.max_ns; })
      .def_property_readonly(
          "jitter", [](const BackoffConfig& c) { return std::string(JitterName(c.jitter)); })
      .def_property_readonly("jitter_factor",
                             [](const BackoffConfig& c) { return c.jitter_factor; })
      .def("__repr__", [](const BackoffConfig& c) {
        return absl::StrFormat(
            "BackoffConfig(initial=%g, multiplier=%g, max_delay=%g, jitter='%s', "
            "jitter_factor=%g)",
            NsToSeconds(c.initial_ns), c.multiplier, NsToSeconds(c.max_ns),
            std::string(JitterName(c.jitter)), c.jitter_factor);
      });

  m.def(
      "jitter_modes",
      []() {
        std::vector<std::string> names;
        for (std::string_view name : JitterNames()) names.emplace_back(name);
        return names;
      },
      "The jitter mode names, in enum order.");

  m.def(
      "backoff_base_ns",
      [](const BackoffConfig& c, int64_t retry) {
        ThrowIfError(CheckIntRange("retry", retry, 1, std::numeric_limits<int64_t>::max()));
        return BackoffBaseNs(c, retry);
      },
      py::arg("config"), py::arg("retry"),
      "The un-jittered delay before retry `retry` (>= 1): min(max, initial * "
      "multiplier^(retry-1)).");

  m.def(
      "backoff_delay_ns",
      [](const BackoffConfig& c, int64_t retry, int64_t previous_ns, double u) {
        ThrowIfError(FirstError({
            CheckIntRange("retry", retry, 1, std::numeric_limits<int64_t>::max()),
            CheckRange("u", u, 0.0, 1.0, Bound::kClosed, Bound::kOpen),
        }));
        return BackoffDelayNs(c, retry, previous_ns, u);
      },
      py::arg("config"), py::arg("retry"), py::arg("previous_ns"), py::arg("u"),
      "The jittered delay in ns before retry `retry` (1 = before the 2nd attempt), from the "
      "previous delay (decorrelated only; below initial reads as initial) and a draw u in [0, 1).");

  py::class_<BackoffDelays>(
      m, "BackoffDelays", "A seeded iterator of backoff delays in seconds (infinite if n is None).")
      .def(py::init([](const BackoffConfig& c, uint64_t seed, std::optional<int64_t> n) {
             if (n.has_value()) {
               ThrowIfError(CheckIntRange("n", *n, 0, std::numeric_limits<int64_t>::max()));
             }
             return BackoffDelays(c, seed, n);
           }),
           py::arg("config"), py::arg("seed") = 0, py::arg("n") = py::none())
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", &BackoffDelays::Next);
}

}  // namespace rlab::bindings
