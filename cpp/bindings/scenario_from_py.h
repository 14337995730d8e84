#ifndef RLAB_BINDINGS_SCENARIO_FROM_PY_H_
#define RLAB_BINDINGS_SCENARIO_FROM_PY_H_

// The Python Scenario (reliability_lab.scenario) into the C++ ScenarioConfig. The bridge is the
// plain dict of Scenario.to_dict(): every key at every level is required and no other key is
// allowed, so that a schema change on one side fails loudly instead of being half-read. Seconds
// become nanoseconds (after a finiteness and range check), strings become enums, and anything
// malformed raises ValueError naming its dotted path as the Python API spells it
// ("payment.breaker.open_for", "payment.faults.phases[outage].start", "arrivals.rate").

#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>

#include "rlab/core/clock.h"
#include "rlab/model/scenario.h"

namespace rlab::bindings {

namespace py = pybind11;

// Reads a dict produced by Scenario.to_dict() through the scenario's table: every value's type
// and range is checked as it is read, the rules between fields are not (ValidateScenario, or
// ValidatedScenarioFromDict). Fills `options` when given.
ScenarioConfig ScenarioFromDict(const py::dict& d, ScenarioRunOptions* options = nullptr);

// ScenarioFromDict, then ValidateScenario; raises ValueError on the first problem.
ScenarioConfig ValidatedScenarioFromDict(const py::dict& d);

// A scenario read and validated once (Python: _core.CompiledScenario, built by
// compile_scenario(d)); a Scenario keeps one, so a run neither re-reads nor re-validates it.
struct CompiledScenario {
  std::shared_ptr<const ScenarioConfig> config;
};

// The config of `scenario`: a CompiledScenario as it is (`*holder` keeps it alive), or a
// Scenario.to_dict() dict read and validated now.
const ScenarioConfig& ScenarioArg(const py::object& scenario,
                                  std::shared_ptr<const ScenarioConfig>* holder);

// Binds CompiledScenario, compile_scenario(d), validate_scenario(d) -> None and
// scenario_config_dump(d) -> dict.
void RegisterScenario(py::module_& m);

}  // namespace rlab::bindings

#endif  // RLAB_BINDINGS_SCENARIO_FROM_PY_H_
