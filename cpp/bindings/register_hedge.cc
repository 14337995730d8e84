// The hedging policy's shared state (rlab/policy/hedge.h: the latency window and the hedge
// budget), bound for the standalone Python facade reliability_lab.hedging.Hedging, which owns the
// copies, the executor and the clock. Every method releases the GIL: the Hedger takes its own
// mutex (and DelayNs may select a quantile over the window under it), and a thread holding the
// GIL must never wait on that mutex.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <memory>
#include <optional>

#include "common.h"
#include "rlab/core/validate.h"
#include "rlab/policy/hedge.h"

namespace rlab::bindings {

void RegisterHedge(py::module_& m) {
  py::class_<Hedger, std::shared_ptr<Hedger>>(
      m, "Hedger", "When to hedge (fixed delay or latency quantile) and the hedge budget.")
      .def(py::init([](int64_t max_hedges, double delay, std::optional<double> quantile,
                       int64_t window, std::optional<double> budget_ratio, double budget_burst) {
             HedgeConfig c;
             ThrowIfError(CheckIntRange("max_hedges", max_hedges, 1, kMaxCopies - 1));
             ThrowIfError(CheckIntRange("window", window, 1, 100'000));
             c.max_hedges = static_cast<int>(max_hedges);
             c.delay_ns = DurationArgNs("delay", delay, /*allow_zero=*/false);
             c.quantile = quantile.value_or(0.0);
             if (quantile.has_value() && *quantile == 0.0) c.quantile = std::nan("");
             c.window = static_cast<int>(window);
             c.budget_ratio = budget_ratio.value_or(-1.0);
             if (budget_ratio.has_value() && *budget_ratio < 0.0) c.budget_ratio = std::nan("");
             c.budget_burst = budget_burst;
             ThrowIfError(Validate(c));
             return std::make_shared<Hedger>(c);
           }),
           py::kw_only(), py::arg("max_hedges"), py::arg("delay"), py::arg("quantile"),
           py::arg("window"), py::arg("budget_ratio"), py::arg("budget_burst"))
      .def(
          "delay_ns",
          [](Hedger& h) {
            py::gil_scoped_release release;
            return h.DelayNs();
          },
          "Nanoseconds from a copy's start before the next copy is sent.")
      .def(
          "record_latency",
          [](Hedger& h, int64_t latency_ns) {
            py::gil_scoped_release release;
            h.RecordLatency(latency_ns < 0 ? 0 : latency_ns);
          },
          py::arg("latency_ns"), "Records the latency of a successful copy.")
      .def(
          "on_call",
          [](Hedger& h) {
            py::gil_scoped_release release;
            h.OnCall();
          },
          "A call starts: deposits budget_ratio tokens.")
      .def(
          "try_hedge",
          [](Hedger& h) {
            py::gil_scoped_release release;
            return h.TryHedge();
          },
          "Takes a budget token for one hedge; False when the budget is spent.")
      .def_property_readonly(
          "tokens",
          [](Hedger& h) {
            py::gil_scoped_release release;
            return h.tokens();
          },
          "Budget tokens left (the burst when there is no budget).");
}

}  // namespace rlab::bindings
