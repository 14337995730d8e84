// The hedging policy's shared state (rlab/policy/hedge.h: the latency window and the hedge
// budget), bound for the standalone Python facade reliability_lab.hedging.Hedging, which owns the
// copies, the executor and the clock. Every method releases the GIL: the Hedger takes its own
// mutex (and DelayNs may select a quantile over the window under it), and a thread holding the
// GIL must never wait on that mutex.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>

#include "common.h"
#include "config_codec.h"
#include "rlab/core/validate.h"
#include "rlab/policy/hedge.h"

namespace rlab::bindings {

void RegisterHedge(py::module_& m) {
  py::class_<Hedger, std::shared_ptr<Hedger>>(
      m, "Hedger", "When to hedge (fixed delay or latency quantile) and the hedge budget.")
      .def(py::init([](const py::object& config) {
             return std::make_shared<Hedger>(ReadValid(config, "", HedgeSchema()));
           }),
           py::arg("config"), "From the dict of an rl.Hedge (its field table).")
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
