// The Python Scenario dict into the C++ ScenarioConfig, and back (for tests). See the header.
#include "scenario_from_py.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "common.h"
#include "config_codec.h"
#include "rlab/core/schema.h"
#include "rlab/core/validate.h"
#include "rlab/model/scenario.h"
#include "rlab/sim/flat_run.h"

namespace rlab::bindings {
namespace {

constexpr int64_t kSchemaVersion = 1;

[[noreturn]] void Fail(const std::string& message) { throw py::value_error(message); }

// `d[key]`, removed from `d`; a missing key is an error naming it.
py::object Take(py::dict& d, const char* key) {
  if (!d.contains(key)) MissingKey("", key);
  return d.attr("pop")(key);
}

}  // namespace

ScenarioConfig ScenarioFromDict(const py::dict& d, ScenarioRunOptions* options) {
  // The model's fields are read by the scenario's table; the version, the seed (a uint64, which
  // the tables do not hold) and the run options are taken out first.
  py::dict rest = py::reinterpret_steal<py::dict>(PyDict_Copy(d.ptr()));
  const int64_t version =
      ToInt(Take(rest, "version"), "version", 0, std::numeric_limits<int64_t>::max());
  if (version != kSchemaVersion) {
    Fail(absl::StrFormat("version must be %d, got %d", kSchemaVersion, version));
  }
  ScenarioConfig c;
  const py::object seed = Take(rest, "seed");
  bool ok = PyLong_Check(seed.ptr()) && !PyBool_Check(seed.ptr());
  const unsigned long long v = ok ? PyLong_AsUnsignedLongLong(seed.ptr()) : 0;
  if (!ok || (v == static_cast<unsigned long long>(-1) && PyErr_Occurred())) {
    PyErr_Clear();
    const std::string m =
        absl::StrFormat("seed must be an integer in [0, 2**64 - 1], got %s", Repr(seed));
    if (!ok) ThrowConfigType(m);
    Fail(m);
  }
  c.seed = v;
  py::dict run;
  for (const FieldSpec& f : RunOptionsSchema().fields) {
    const std::string key(f.info.name);
    run[py::str(key)] = Take(rest, key.c_str());
  }
  ScenarioRunOptions read = ReadConfig(run, "", RunOptionsSchema());
  if (!rest.contains("services")) rest["services"] = py::list();  // a dict written before them
  ReadAny(rest, "", ScenarioSchema(), &c);
  if (options != nullptr) *options = read;
  return c;
}

ScenarioConfig ValidatedScenarioFromDict(const py::dict& d) {
  ScenarioConfig config = ScenarioFromDict(d);
  ThrowIfError(ValidateScenario(config));
  return config;
}

const ScenarioConfig& ScenarioArg(const py::object& scenario,
                                  std::shared_ptr<const ScenarioConfig>* holder) {
  if (py::isinstance<CompiledScenario>(scenario)) {
    *holder = scenario.cast<const CompiledScenario&>().config;
  } else if (py::isinstance<py::dict>(scenario)) {
    *holder = std::make_shared<const ScenarioConfig>(
        ValidatedScenarioFromDict(scenario.cast<py::dict>()));
  } else {
    throw py::type_error("scenario must be a CompiledScenario or a Scenario.to_dict() dict, got " +
                         std::string(py::str(py::type::of(scenario).attr("__name__"))));
  }
  return **holder;
}

void RegisterScenario(py::module_& m) {
  py::class_<CompiledScenario>(
      m, "CompiledScenario",
      "A scenario read and validated once (compile_scenario); the engines run it as it is.")
      .def_property_readonly(
          "flat_shape", [](const CompiledScenario& c) { return IsFlatScenario(*c.config); },
          "Whether the simulated engine runs it on its flat loop (sim/flat_run.h), unless "
          "RLAB_SIM_FLAT=0.");
  m.def(
      "compile_scenario",
      [](const py::dict& d) {
        return CompiledScenario{
            std::make_shared<const ScenarioConfig>(ValidatedScenarioFromDict(d))};
      },
      py::arg("scenario"),
      "Converts a Scenario.to_dict() dict to the engines' config and validates it, once; raises "
      "ValueError naming the dotted path of the first problem.");
  m.def(
      "validate_scenario", [](const py::dict& d) { ValidatedScenarioFromDict(d); },
      py::arg("scenario"),
      "Converts a Scenario.to_dict() dict to the engines' config and validates it; raises "
      "ValueError naming the dotted path of the first problem.");
  m.def(
      "scenario_config_dump",
      [](const py::dict& d) {
        ScenarioRunOptions options;
        const ScenarioConfig c = ScenarioFromDict(d, &options);
        py::dict out = WriteAny(ScenarioSchema(), &c, /*nanoseconds=*/true);
        out["seed"] = c.seed;
        out.attr("update")(WriteAny(RunOptionsSchema(), &options, /*nanoseconds=*/true));
        return out;
      },
      py::arg("scenario"),
      "The config the engines would run for a Scenario.to_dict() dict (C++ field names, "
      "nanoseconds), without validating it. For tests and debugging.");
}

}  // namespace rlab::bindings
