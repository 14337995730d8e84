// The Python Scenario dict into the C++ ScenarioConfig, and back (for tests). See the header.
#include "scenario_from_py.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common.h"
#include "config_codec.h"
#include "rlab/core/clock.h"
#include "rlab/core/outcome.h"
#include "rlab/core/validate.h"
#include "rlab/model/faults.h"
#include "rlab/policy/aws_retry.h"
#include "rlab/policy/backoff.h"
#include "rlab/policy/bulkhead.h"
#include "rlab/policy/circuit_breaker.h"
#include "rlab/policy/retry.h"
#include "rlab/policy/retry_budget.h"
#include "rlab/policy/throttle.h"
#include "rlab/model/service_graph.h"
#include "rlab/sim/flat_run.h"

namespace rlab::bindings {
namespace {

constexpr int64_t kSchemaVersion = 1;

[[noreturn]] void Fail(const std::string& message) { throw py::value_error(message); }

// One dict of the schema: every key must be read exactly once, and Finish() rejects the rest.
class Obj {
 public:
  Obj(py::handle h, std::string path) : path_(std::move(path)) {
    if (!PyDict_Check(h.ptr())) {
      Fail(absl::StrFormat("%s must be a dict, got %s", path_.empty() ? "scenario" : path_,
                           Repr(h)));
    }
    dict_ = py::reinterpret_borrow<py::dict>(h);
  }

  const std::string& path() const { return path_; }
  std::string At(std::string_view key) const { return JoinPath(path_, key); }

  py::handle Get(const char* key) {
    PyObject* v = PyDict_GetItemString(dict_.ptr(), key);
    if (v == nullptr) {
      Fail(absl::StrFormat("%s: missing key '%s'", path_.empty() ? "scenario" : path_, key));
    }
    seen_.insert(key);
    return v;
  }
  bool IsNone(const char* key) { return Get(key).is_none(); }
  bool Has(const char* key) const { return PyDict_GetItemString(dict_.ptr(), key) != nullptr; }

  double Number(const char* key) { return ToDouble(Get(key), At(key)); }
  // Seconds in [0, 1e6], as nanoseconds.
  int64_t Seconds(const char* key) {
    const double s = Number(key);
    ThrowIfError(CheckDuration(At(key), s, /*allow_zero=*/true));
    return SecondsToNs(s);
  }
  int64_t Int(const char* key, int64_t lo, int64_t hi) { return ToInt(Get(key), At(key), lo, hi); }
  int Int32(const char* key) {
    return static_cast<int>(
        Int(key, std::numeric_limits<int>::min(), std::numeric_limits<int>::max()));
  }
  bool Bool(const char* key) {
    py::handle v = Get(key);
    if (!PyBool_Check(v.ptr())) {
      Fail(absl::StrFormat("%s must be True or False, got %s", At(key), Repr(v)));
    }
    return v.ptr() == Py_True;
  }
  std::string Str(const char* key) {
    py::handle v = Get(key);
    if (!PyUnicode_Check(v.ptr())) {
      Fail(absl::StrFormat("%s must be a string, got %s", At(key), Repr(v)));
    }
    return v.cast<std::string>();
  }
  // A list (or tuple) value.
  py::sequence List(const char* key) {
    py::handle v = Get(key);
    if (!PyList_Check(v.ptr()) && !PyTuple_Check(v.ptr())) {
      Fail(absl::StrFormat("%s must be a list, got %s", At(key), Repr(v)));
    }
    return py::reinterpret_borrow<py::sequence>(v);
  }
  // The "type" tag of a union-valued object.
  std::string Tag() {
    py::handle v = Get("type");
    if (!PyUnicode_Check(v.ptr())) {
      Fail(absl::StrFormat("%s must be a string, got %s", At("type"), Repr(v)));
    }
    return v.cast<std::string>();
  }

  // Rejects keys nobody read.
  void Finish() const {
    for (auto item : dict_) {
      const std::string key = py::str(item.first).cast<std::string>();
      if (!seen_.contains(key)) {
        Fail(absl::StrFormat("%s is not a field of the scenario schema", At(key)));
      }
    }
  }

 private:
  std::string path_;
  py::dict dict_;
  absl::flat_hash_set<std::string> seen_;
};

// ---------------------------------------------------------------------------------------------
// Dependencies, arrivals, the scenario

IntakeConfig ReadIntake(py::handle h, const std::string& path) {
  return ReadConfig(h, path, IntakeSchema());
}

py::dict IntakeToDict(const IntakeConfig& c) { return WriteConfig(IntakeSchema(), c, true); }

// `parent`: "" for the scenario's own dependencies (named by name), "services[<name>]" for a
// service's (named "services[<name>].dependencies[<dep>]").
DependencyConfig ReadDependency(py::handle h, size_t index, const std::string& parent = "") {
  // Addressed by name, as in the Python API, once the name is usable in a path.
  PyObject* n = PyDict_Check(h.ptr()) ? PyDict_GetItemString(h.ptr(), "name") : nullptr;
  const std::string name = n != nullptr && PyUnicode_Check(n) ? py::handle(n).cast<std::string>()
                                                              : std::string();
  bool usable = !name.empty();
  for (char c : name) {
    usable = usable && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || c == '_');
  }
  const std::string path =
      !usable          ? JoinPath(parent, absl::StrFormat("dependencies[%d]", index))
      : parent.empty() ? name
                       : JoinPath(parent, absl::StrFormat("dependencies[%s]", name));
  return ReadConfig(h, path, DependencySchema());
}

// A tier of a service graph (model/service_graph.h), named by name once it is usable in a path.
ServiceConfig ReadService(py::handle h, size_t index) {
  PyObject* n = PyDict_Check(h.ptr()) ? PyDict_GetItemString(h.ptr(), "name") : nullptr;
  std::string name = n != nullptr && PyUnicode_Check(n) ? py::handle(n).cast<std::string>() : "";
  bool usable = !name.empty();
  for (char c : name) {
    usable = usable && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || c == '_');
  }
  if (!usable) name = absl::StrFormat("%d", index);
  return ReadConfig(h, absl::StrFormat("services[%s]", name), ServiceSchema());
}

// ---------------------------------------------------------------------------------------------
// Read-back

py::dict DependencyToDict(const DependencyConfig& dep) {
  return WriteConfig(DependencySchema(), dep, true);
}

}  // namespace

ScenarioConfig ScenarioFromDict(const py::dict& d, ScenarioRunOptions* options) {
  Obj o(d, "");
  const int64_t version = o.Int("version", 0, std::numeric_limits<int64_t>::max());
  if (version != kSchemaVersion) {
    Fail(absl::StrFormat("version must be %d, got %d", kSchemaVersion, version));
  }
  ScenarioConfig c;
  ReadUnion(o.Get("arrivals"), "arrivals", AnyOf(ArrivalsUnion()), &c.arrivals);
  c.workers = o.Int32("workers");
  c.queue_capacity = o.Int32("queue_capacity");
  c.duration_ns = o.Seconds("duration");
  {
    py::handle seed = o.Get("seed");
    if (!PyLong_Check(seed.ptr()) || PyBool_Check(seed.ptr())) {
      Fail(absl::StrFormat("seed must be an integer in [0, 2**64 - 1], got %s", Repr(seed)));
    }
    const unsigned long long v = PyLong_AsUnsignedLongLong(seed.ptr());
    if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
      PyErr_Clear();
      Fail(absl::StrFormat("seed must be an integer in [0, 2**64 - 1], got %s", Repr(seed)));
    }
    c.seed = v;
  }
  const py::sequence deps = o.List("dependencies");
  for (size_t i = 0; i < deps.size(); ++i) c.dependencies.push_back(ReadDependency(deps[i], i));
  c.order_deadline_ns = o.Seconds("order_deadline");
  c.release_worker_during_backoff = o.Bool("release_worker_during_backoff");
  c.num_keys = o.Int32("num_keys");
  c.intake = ReadIntake(o.Get("intake"), "intake");
  if (o.Has("services")) {  // a dict written before service graphs has none
    const py::sequence services = o.List("services");
    for (size_t i = 0; i < services.size(); ++i) c.services.push_back(ReadService(services[i], i));
  }
  ScenarioRunOptions run;
  run.sample_every_ns = o.Seconds("sample_every");
  run.record_orders = o.Bool("record_orders");
  run.record_events = o.Bool("record_events");
  o.Finish();
  if (options != nullptr) *options = run;
  return c;
}

ScenarioConfig ValidatedScenarioFromDict(const py::dict& d, ScenarioRunOptions* options) {
  ScenarioConfig config = ScenarioFromDict(d, options);
  ThrowIfError(ValidateScenario(config));
  return config;
}

py::dict ScenarioConfigToDict(const ScenarioConfig& c) {
  py::dict d;
  d["arrivals"] = WriteUnion(AnyOf(ArrivalsUnion()), &c.arrivals, /*nanoseconds=*/true);
  d["workers"] = c.workers;
  d["queue_capacity"] = c.queue_capacity;
  d["duration_ns"] = c.duration_ns;
  d["seed"] = c.seed;
  d["order_deadline_ns"] = c.order_deadline_ns;
  d["release_worker_during_backoff"] = c.release_worker_during_backoff;
  d["num_keys"] = c.num_keys;
  py::list deps;
  for (const DependencyConfig& dep : c.dependencies) deps.append(DependencyToDict(dep));
  d["dependencies"] = deps;
  d["intake"] = IntakeToDict(c.intake);
  py::list services;
  for (const ServiceConfig& s : c.services) services.append(WriteConfig(ServiceSchema(), s, true));
  d["services"] = services;
  return d;
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
        py::dict out = ScenarioConfigToDict(ScenarioFromDict(d, &options));
        out["sample_every_ns"] = options.sample_every_ns;
        out["record_orders"] = options.record_orders;
        out["record_events"] = options.record_events;
        return out;
      },
      py::arg("scenario"),
      "The config the engines would run for a Scenario.to_dict() dict (C++ field names, "
      "nanoseconds), without validating it. For tests and debugging.");
}

}  // namespace rlab::bindings
