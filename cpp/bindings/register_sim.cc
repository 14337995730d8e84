// The simulated engine, bound for Python: one call runs a scenario with the GIL released and
// returns plain arrays and dicts, which reliability_lab.sim turns into pandas objects.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common.h"
#include "result_dict.h"
#include "rlab/core/clock.h"
#include "rlab/model/order_flow.h"
#include "rlab/model/scenario.h"
#include "rlab/sim/sim_engine.h"
#include "scenario_from_py.h"

namespace rlab::bindings {
namespace {}  // namespace

void RegisterSim(py::module_& m) {
  m.def(
      "simulate",
      [](const py::object& scenario, double sample_every, bool record_orders, bool record_events,
         double until, int64_t max_events, const std::vector<double>& latency_bounds,
         std::optional<uint64_t> seed) {
        std::shared_ptr<const ScenarioConfig> config;
        ScenarioArg(scenario, &config);  // a CompiledScenario: read and validated already
        if (seed.has_value() && *seed != config->seed) {
          // A sweep's runs differ from their point only by the seed: a copy of the compiled
          // config, not a re-read of the whole scenario.
          auto reseeded = std::make_shared<ScenarioConfig>(*config);
          reseeded->seed = *seed;
          config = std::move(reseeded);
        }
        SimOptions opt;
        opt.sample_every_ns =
            sample_every > 0 ? DurationArgNs("sample_every", sample_every, false) : 0;
        opt.record_orders = record_orders;
        opt.record_events = record_events;
        opt.until_ns = until < 0 ? -1 : DurationArgNs("until", until, true);
        if (max_events < 1) throw py::value_error("max_events must be >= 1");
        opt.max_events = max_events;
        auto engine = std::make_unique<SimEngine>(*config, opt);
        absl::Status status;
        {
          py::gil_scoped_release release;
          status = engine->Run();
        }
        ThrowIfError(status);
        return ResultDict(*config, engine->result(), latency_bounds, record_orders,
                          &engine->result().orders);
      },
      py::arg("scenario"), py::arg("sample_every") = 1.0, py::arg("record_orders") = true,
      py::arg("record_events") = true, py::arg("until") = -1.0,
      py::arg("max_events") = int64_t{4'000'000'000}, py::arg("latency_bounds"),
      py::arg("seed") = std::nullopt,
      "Runs a scenario (a CompiledScenario, or a Scenario.to_dict() dict) in virtual time, with "
      "`seed` in place of the scenario's if given; returns raw arrays and counters.");
}

}  // namespace rlab::bindings
