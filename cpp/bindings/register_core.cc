// Clocks, seeded random streams and outcome names.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <memory>
#include <thread>

#include "common.h"
#include "rlab/core/clock.h"
#include "rlab/core/outcome.h"
#include "rlab/core/rng.h"
#include "rlab/core/validate.h"

namespace rlab::bindings {
namespace {

// Sleeps `seconds` on `clock`: a ManualClock is advanced at once; a real clock sleeps with the GIL
// released, in slices, so that Ctrl-C (KeyboardInterrupt) still interrupts a long backoff.
void ClockSleep(Clock& clock, double seconds) {
  ThrowIfError(CheckRange("seconds", seconds, 0.0, kMaxDurationS));
  const int64_t delta_ns = SecondsToNs(seconds);
  if (auto* manual = dynamic_cast<ManualClock*>(&clock)) {
    manual->AdvanceNs(delta_ns);
    return;
  }
  const int64_t end_ns = clock.NowNs() + delta_ns;
  constexpr int64_t kSliceNs = 50'000'000;
  for (;;) {
    const int64_t left_ns = end_ns - clock.NowNs();
    if (left_ns <= 0) return;
    {
      py::gil_scoped_release release;
      std::this_thread::sleep_for(std::chrono::nanoseconds(std::min(left_ns, kSliceNs)));
    }
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  }
}

}  // namespace

void RegisterCore(py::module_& m) {
  py::class_<Clock, std::shared_ptr<Clock>>(m, "Clock",
                                            "A source of monotonic time in seconds.")
      .def("now", [](const Clock& c) { return NsToSeconds(c.NowNs()); },
           "The current time in seconds since this clock's epoch.")
      .def("now_ns", &Clock::NowNs, "The current time in integer nanoseconds.")
      .def("sleep", &ClockSleep, py::arg("seconds"),
           "Waits `seconds`: advances a ManualClock at once, or sleeps with the GIL released.");

  py::class_<SteadyClock, Clock, std::shared_ptr<SteadyClock>>(
      m, "SteadyClock", "The process's monotonic clock (std::chrono::steady_clock).")
      .def(py::init<>());

  py::class_<ManualClock, Clock, std::shared_ptr<ManualClock>>(
      m, "ManualClock", "A virtual clock that moves only when advanced: tests need no sleeps.")
      .def(py::init([](double start) {
             ThrowIfError(CheckRange("start", start, 0.0, kMaxDurationS));
             return std::make_shared<ManualClock>(SecondsToNs(start));
           }),
           py::arg("start") = 0.0)
      .def(
          "advance",
          [](ManualClock& c, double seconds) {
            ThrowIfError(CheckRange("seconds", seconds, 0.0, kMaxDurationS));
            return NsToSeconds(c.AdvanceNs(SecondsToNs(seconds)));
          },
          py::arg("seconds"), "Moves the clock forward; returns the new time in seconds.")
      .def(
          "advance_to",
          [](ManualClock& c, double t) {
            ThrowIfError(CheckRange("t", t, 0.0, kMaxDurationS));
            return NsToSeconds(c.AdvanceToNs(SecondsToNs(t)));
          },
          py::arg("t"), "Moves the clock to `t` if later than now; returns the new time.");

  py::class_<RandomStream>(m, "RandomStream", "One seeded stream of random draws.")
      .def(py::init<uint64_t>(), py::arg("seed"))
      .def("next_u64", &RandomStream::NextU64)
      .def("uniform01", &RandomStream::Uniform01)
      .def("uniform", &RandomStream::Uniform, py::arg("lo"), py::arg("hi"))
      .def("exponential", &RandomStream::Exponential, py::arg("mean"))
      .def("normal", &RandomStream::Normal)
      .def("lognormal", &RandomStream::LogNormal, py::arg("mu"), py::arg("sigma"))
      .def("uniform_index", &RandomStream::UniformIndex, py::arg("n"));

  py::class_<Rng>(m, "Rng", "A root seed from which independent named streams are derived.")
      .def(py::init<uint64_t>(), py::arg("seed"))
      .def_property_readonly("seed", &Rng::seed)
      .def("stream", py::overload_cast<std::string_view>(&Rng::Stream, py::const_),
           py::arg("name"))
      .def("stream_indexed",
           py::overload_cast<std::string_view, uint64_t>(&Rng::Stream, py::const_),
           py::arg("name"), py::arg("index"))
      .def_static("derive_seed", &Rng::DeriveSeed, py::arg("seed"), py::arg("name"));

  m.def(
      "outcome_kinds",
      []() {
        std::vector<std::string> names;
        for (int i = 0; i < kNumOutcomeKinds; ++i) {
          names.emplace_back(OutcomeKindName(static_cast<OutcomeKind>(i)));
        }
        return names;
      },
      "The names of every outcome kind, in enum order.");
  m.def(
      "default_retryable",
      []() { return OutcomeSet::DefaultRetryable().Names(); },
      "The names in the default retryable set.");
  m.def(
      "parse_outcome_set",
      [](const std::vector<std::string>& names) {
        return ValueOrThrow(OutcomeSet::Parse("retry_on", names)).Names();
      },
      py::arg("names"), "Validates and normalises a list of outcome names.");
}

}  // namespace rlab::bindings
