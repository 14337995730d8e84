// Bulkheads: the pure admission state machine (BulkheadState, for simulations and tests) and the
// blocking bulkhead of the live engine, whose waits run with the GIL released.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string_view>

#include "common.h"
#include "config_codec.h"
#include "rlab/core/clock.h"
#include "rlab/live/blocking_bulkhead.h"
#include "rlab/policy/bulkhead.h"

namespace rlab::bindings {
namespace {

// The ident of Python's main thread: only there can a signal (Ctrl-C) be delivered.
unsigned long main_thread_ident = 0;

// The config from the dict of an rl.BulkheadConfig, read and checked by its field table.
BulkheadConfig ConfigArg(py::handle config) {
  const BulkheadConfig c = ReadConfig(config, "", BulkheadSchema());
  ThrowIfError(ValidateAt("", BulkheadSchema(), c));
  return c;
}

std::optional<double> MaxWaitSeconds(const BulkheadConfig& config) {
  if (config.max_wait_ns < 0) return std::nullopt;
  return NsToSeconds(config.max_wait_ns);
}

// Blocks with the GIL released. On the main thread the wait polls for signals, so Ctrl-C
// interrupts it (KeyboardInterrupt); a slot handed over in the meantime goes straight back.
std::string_view AcquireReleasingGil(BlockingBulkhead& b, int64_t max_wait_ns) {
  const bool on_main_thread = PyThread_get_thread_ident() == main_thread_ident;
  bool interrupted = false;
  AcquireResult result;
  {
    py::gil_scoped_release release;
    std::function<bool()> should_abort;
    if (on_main_thread) {
      // Runs without the bulkhead's lock held (BlockingBulkhead guarantees it), so taking the
      // GIL here cannot deadlock with a thread that holds the GIL and waits for that lock.
      should_abort = [&interrupted] {
        py::gil_scoped_acquire acquire;
        interrupted = PyErr_CheckSignals() != 0;
        return interrupted;
      };
    }
    result = b.Acquire(max_wait_ns, should_abort);
    if (interrupted && result == AcquireResult::kAdmitted) b.Release().IgnoreError();
  }
  if (interrupted) throw py::error_already_set();
  return AcquireResultName(result);
}

}  // namespace

void RegisterBulkhead(py::module_& m) {
  main_thread_ident =
      py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();

  py::class_<BulkheadStats>(m, "BulkheadStats", "Gauges and lifetime counters of a bulkhead.")
      .def_readonly("active", &BulkheadStats::active)
      .def_readonly("waiting", &BulkheadStats::waiting)
      .def_readonly("admitted", &BulkheadStats::admitted)
      .def_readonly("rejected", &BulkheadStats::rejected)
      .def_readonly("timed_out", &BulkheadStats::timed_out)
      .def_readonly("abandoned", &BulkheadStats::abandoned);

  py::class_<Bulkhead, std::shared_ptr<Bulkhead>>(
      m, "BulkheadState",
      "Bulkhead admission as a pure state machine: decides and counts, never blocks.")
      .def(
          py::init([](py::handle config) { return std::make_shared<Bulkhead>(ConfigArg(config)); }),
          py::arg("config"), "From the dict of an rl.BulkheadConfig (its field table).")
      .def(
          "try_acquire", [](Bulkhead& b) { return BulkheadDecisionName(b.TryAcquire()); },
          "'admitted', 'must_wait' (a waiting place is reserved) or 'rejected'.")
      .def(
          "release", [](Bulkhead& b) { return BulkheadReleaseName(b.Release()); },
          "'freed', 'handed_off' (the oldest waiter now holds the slot) or 'not_held'.")
      .def("cancel_wait", &Bulkhead::CancelWait, py::arg("timed_out") = true,
           "A waiter gives up its place; False if nobody was waiting.")
      .def("stats", &Bulkhead::Stats, "A consistent snapshot of gauges and counters.")
      .def_property_readonly("max_concurrent",
                             [](const Bulkhead& b) { return b.config().max_concurrent; })
      .def_property_readonly("max_waiting",
                             [](const Bulkhead& b) { return b.config().max_waiting; })
      .def_property_readonly("max_wait",
                             [](const Bulkhead& b) { return MaxWaitSeconds(b.config()); });

  py::class_<BlockingBulkhead, std::shared_ptr<BlockingBulkhead>>(
      m, "BlockingBulkhead",
      "A bulkhead on which threads wait (GIL released, FIFO hand-off) for at most max_wait.")
      .def(py::init([](py::handle config) {
             return std::make_shared<BlockingBulkhead>(ConfigArg(config));
           }),
           py::arg("config"), "From the dict of an rl.BulkheadConfig (its field table).")
      .def(
          "acquire",
          [](BlockingBulkhead& b) { return AcquireReleasingGil(b, b.config().max_wait_ns); },
          "Waits up to the configured max_wait: 'admitted', 'rejected_full', "
          "'rejected_timeout' or 'closed'.")
      .def(
          "acquire_for",
          [](BlockingBulkhead& b, std::optional<double> max_wait) {
            const int64_t ns =
                max_wait.has_value() ? DurationArgNs("max_wait", *max_wait, true) : int64_t{-1};
            return AcquireReleasingGil(b, ns);
          },
          py::arg("max_wait"), "As acquire, waiting at most `max_wait` seconds (None: no limit).")
      .def(
          "release",
          [](BlockingBulkhead& b) {
            absl::Status status;
            {
              py::gil_scoped_release release;
              status = b.Release();
            }
            ThrowIfError(status);
          },
          "Gives the slot back (to the oldest waiter, if any); RuntimeError if none is held.")
      .def(
          "close",
          [](BlockingBulkhead& b) {
            py::gil_scoped_release release;
            b.Close();
          },
          "Releases every waiter ('closed') and makes every later acquire return 'closed'; "
          "idempotent.")
      .def_property_readonly("closed", &BlockingBulkhead::closed)
      .def("stats", &BlockingBulkhead::Stats, "A consistent snapshot of gauges and counters.")
      .def_property_readonly("max_concurrent",
                             [](const BlockingBulkhead& b) { return b.config().max_concurrent; })
      .def_property_readonly("max_waiting",
                             [](const BlockingBulkhead& b) { return b.config().max_waiting; })
      .def_property_readonly("max_wait",
                             [](const BlockingBulkhead& b) { return MaxWaitSeconds(b.config()); });
}

}  // namespace rlab::bindings
