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

template <typename Enum, size_t N>
Enum ParseChoice(const std::string& path, const std::string& value,
                 const std::pair<std::string_view, Enum> (&choices)[N]) {
  std::vector<std::string> names;
  for (const auto& [name, e] : choices) {
    if (value == name) return e;
    names.push_back(absl::StrFormat("'%s'", name));
  }
  Fail(absl::StrFormat("%s must be one of %s, got '%s'", path, absl::StrJoin(names, ", "), value));
}

// ---------------------------------------------------------------------------------------------
// Latency, faults

FaultsConfig ReadFaults(py::handle h, const std::string& path) {
  return ReadConfig(h, path, FaultsSchema());
}

FallbackConfig ReadFallback(py::handle h, const std::string& path) {
  return ReadConfig(h, path, FallbackSchema());
}

// ---------------------------------------------------------------------------------------------
// Policies

// Re-raises a policy's own error (which names only its field) under `prefix`.
void ThrowPrefixed(const std::string& prefix, const absl::Status& status) {
  if (status.ok()) return;
  ThrowIfError(absl::Status(status.code(), absl::StrFormat("%s.%s", prefix, status.message())));
}

BackoffConfig ReadBackoff(py::handle h, const std::string& path) {
  Obj o(h, path);
  BackoffConfig b;
  b.initial_ns = o.Seconds("initial");
  b.multiplier = o.Number("multiplier");
  b.max_ns = o.Seconds("max_delay");
  absl::StatusOr<Jitter> jitter = ParseJitter(o.Str("jitter"));
  ThrowPrefixed(path, jitter.status());
  b.jitter = *jitter;
  b.jitter_factor = o.Number("jitter_factor");
  o.Finish();
  // Validated here: the retry's own validation would name these "retry.<field>", not
  // "retry.backoff.<field>" as the Python API spells them.
  ThrowPrefixed(path, Validate(b));
  return b;
}

RetryConfig ReadRetry(py::handle h, const std::string& path) {
  Obj o(h, path);
  RetryConfig r;
  r.max_attempts = o.Int32("max_attempts");
  r.backoff = ReadBackoff(o.Get("backoff"), o.At("backoff"));
  const py::sequence retry_on = o.List("retry_on");
  std::vector<std::string> names;
  for (size_t i = 0; i < retry_on.size(); ++i) {
    py::object item = retry_on[i];
    if (!PyUnicode_Check(item.ptr())) {
      Fail(absl::StrFormat("%s[%d] must be an outcome name, got %s", o.At("retry_on"), i,
                           Repr(item)));
    }
    names.push_back(item.cast<std::string>());
  }
  r.retryable = ValueOrThrow(OutcomeSet::Parse(o.At("retry_on"), names));
  r.max_retry_after_ns = o.Seconds("max_retry_after");
  o.Finish();
  return r;
}

BreakerConfig ReadBreaker(py::handle h, const std::string& path) {
  return ReadConfig(h, path, BreakerSchema());
}

void ReadBudget(py::handle h, const std::string& path, DependencyConfig& dep) {
  const std::string tag = Obj(h, path).Tag();
  if (tag == "token_bucket") {
    dep.token_bucket = ReadConfig(h, path, TokenBucketSchema());
  } else if (tag == "ratio") {
    dep.ratio_budget = ReadConfig(h, path, RatioBudgetSchema());
  } else {
    BadTag(path, tag, "'token_bucket', 'ratio'");
  }
}

BulkheadConfig ReadBulkhead(py::handle h, const std::string& path) {
  return ReadConfig(h, path, BulkheadSchema());
}

ThrottleConfig ReadThrottle(py::handle h, const std::string& path) {
  return ReadConfig(h, path, ThrottleSchema());
}

HedgeConfig ReadHedge(py::handle h, const std::string& path) {
  return ReadConfig(h, path, HedgeSchema());
}

FanOutConfig ReadFanout(py::handle h, const std::string& path) {
  return ReadConfig(h, path, FanoutSchema());
}

ReplicasConfig ReadReplicas(py::handle h, const std::string& path) {
  return ReadConfig(h, path, ReplicasSchema());
}

// An AWS SDK retry mode (python/reliability_lab/scenario/aws_retry_config.py).
AwsRetryConfig ReadAwsRetry(py::handle h, const std::string& path) {
  return ReadConfig(h, path, AwsRetrySchema());
}

// ---------------------------------------------------------------------------------------------
// Dependencies, arrivals, the scenario

IntakeConfig ReadIntake(py::handle h, const std::string& path) {
  return ReadConfig(h, path, IntakeSchema());
}

py::dict IntakeToDict(const IntakeConfig& c) { return WriteConfig(IntakeSchema(), c, true); }

py::dict LimitToDict(const LimitConfig& c) { return WriteConfig(LimitSchema(), c, true); }

py::dict RateLimitToDict(const RateLimitConfig& c) {
  return WriteConfig(RateLimitSchema(), c, true);
}

LimitConfig ReadLimit(py::handle h, const std::string& path) {
  return ReadConfig(h, path, LimitSchema());
}

RateLimitConfig ReadRateLimit(py::handle h, const std::string& path) {
  return ReadConfig(h, path, RateLimitSchema());
}

// `parent`: "" for the scenario's own dependencies (named by name), "services[<name>]" for a
// service's (named "services[<name>].dependencies[<dep>]").
DependencyConfig ReadDependency(py::handle h, size_t index, const std::string& parent = "") {
  static constexpr std::pair<std::string_view, Composition> kCompositions[] = {
      {"retry_outside_breaker", Composition::kRetryOutsideBreaker},
      {"breaker_outside_retry", Composition::kBreakerOutsideRetry},
  };
  const std::string fallback_path = JoinPath(parent, absl::StrFormat("dependencies[%d]", index));
  DependencyConfig d;
  {
    Obj named(h, fallback_path);
    d.name = named.Str("name");
  }
  // Addressed by name, as in the Python API, once the name is usable in a path.
  bool usable = !d.name.empty();
  for (char c : d.name) {
    usable = usable && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || c == '_');
  }
  Obj o(h, !usable          ? fallback_path
           : parent.empty() ? d.name
                            : JoinPath(parent, absl::StrFormat("dependencies[%s]", d.name)));
  o.Str("name");
  d.faults = ReadFaults(o.Get("faults"), o.At("faults"));
  if (!o.IsNone("retry")) d.retry = ReadRetry(o.Get("retry"), o.At("retry"));
  if (!o.IsNone("breaker")) d.breaker = ReadBreaker(o.Get("breaker"), o.At("breaker"));
  if (!o.IsNone("budget")) ReadBudget(o.Get("budget"), o.At("budget"), d);
  if (!o.IsNone("bulkhead")) d.bulkhead = ReadBulkhead(o.Get("bulkhead"), o.At("bulkhead"));
  if (!o.IsNone("throttle")) d.throttle = ReadThrottle(o.Get("throttle"), o.At("throttle"));
  d.attempt_timeout_ns = o.Seconds("attempt_timeout");
  d.composition = ParseChoice(o.At("composition"), o.Str("composition"), kCompositions);
  d.fallback = ReadFallback(o.Get("fallback"), o.At("fallback"));
  d.idempotency_keys = o.Bool("idempotency_keys");
  d.charges = o.Bool("charges");
  // Request patterns; a dict written before they existed has no such keys.
  if (o.Has("hedge") && !o.IsNone("hedge")) d.hedge = ReadHedge(o.Get("hedge"), o.At("hedge"));
  if (o.Has("fanout") && !o.IsNone("fanout")) {
    d.fanout = ReadFanout(o.Get("fanout"), o.At("fanout"));
  }
  if (o.Has("replicas") && !o.IsNone("replicas")) {
    d.replicas = ReadReplicas(o.Get("replicas"), o.At("replicas"));
  }
  if (o.Has("aws_retry") && !o.IsNone("aws_retry")) {
    d.aws_retry = ReadAwsRetry(o.Get("aws_retry"), o.At("aws_retry"));
  }
  if (o.Has("limit") && !o.IsNone("limit")) d.limit = ReadLimit(o.Get("limit"), o.At("limit"));
  if (o.Has("rate_limit") && !o.IsNone("rate_limit")) {
    d.rate_limit = ReadRateLimit(o.Get("rate_limit"), o.At("rate_limit"));
  }
  if (o.Has("service") && !o.IsNone("service")) d.service = o.Str("service");
  o.Finish();
  return d;
}

// A tier of a service graph (model/service_graph.h).
ServiceConfig ReadService(py::handle h, size_t index) {
  std::string name;
  {
    Obj named(h, absl::StrFormat("services[%d]", index));
    name = named.Str("name");
  }
  bool usable = !name.empty();
  for (char c : name) {
    usable = usable && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || c == '_');
  }
  const std::string path =
      absl::StrFormat("services[%s]", usable ? name : absl::StrFormat("%d", index));
  Obj o(h, path);
  ServiceConfig s;
  s.name = o.Str("name");
  s.workers = o.Int32("workers");
  s.queue_capacity = o.Int32("queue_capacity");
  s.deadline_ns = o.Seconds("deadline");
  const py::sequence deps = o.List("dependencies");
  for (size_t i = 0; i < deps.size(); ++i) {
    s.dependencies.push_back(ReadDependency(deps[i], i, path));
  }
  // Its own intake (a dict written before the field existed has none).
  if (o.Has("intake")) s.intake = ReadIntake(o.Get("intake"), o.At("intake"));
  o.Finish();
  return s;
}

// ---------------------------------------------------------------------------------------------
// Read-back

template <typename T, typename F>
py::object OptionalToPy(const std::optional<T>& v, F f) {
  if (!v.has_value()) return py::none();
  return f(*v);
}

py::dict FaultsToDict(const FaultsConfig& f) { return WriteConfig(FaultsSchema(), f, true); }

py::dict BreakerToDict(const BreakerConfig& b) { return WriteConfig(BreakerSchema(), b, true); }

py::dict DependencyToDict(const DependencyConfig& dep) {
  py::dict d;
  d["name"] = dep.name;
  d["faults"] = FaultsToDict(dep.faults);
  d["retry"] = OptionalToPy(dep.retry, [](const RetryConfig& r) {
    py::dict rd;
    rd["max_attempts"] = r.max_attempts;
    rd["initial_ns"] = r.backoff.initial_ns;
    rd["multiplier"] = r.backoff.multiplier;
    rd["max_ns"] = r.backoff.max_ns;
    rd["jitter"] = std::string(JitterName(r.backoff.jitter));
    rd["jitter_factor"] = r.backoff.jitter_factor;
    rd["retryable"] = r.retryable.Names();
    rd["max_retry_after_ns"] = r.max_retry_after_ns;
    return rd;
  });
  d["breaker"] = OptionalToPy(dep.breaker, BreakerToDict);
  d["token_bucket"] = OptionalToPy(dep.token_bucket, [](const TokenBucketConfig& t) {
    return WriteConfig(TokenBucketSchema(), t, true);
  });
  d["ratio_budget"] = OptionalToPy(dep.ratio_budget, [](const RatioBudgetConfig& r) {
    return WriteConfig(RatioBudgetSchema(), r, true);
  });
  d["bulkhead"] = OptionalToPy(
      dep.bulkhead, [](const BulkheadConfig& b) { return WriteConfig(BulkheadSchema(), b, true); });
  d["throttle"] = OptionalToPy(
      dep.throttle, [](const ThrottleConfig& t) { return WriteConfig(ThrottleSchema(), t, true); });
  d["attempt_timeout_ns"] = dep.attempt_timeout_ns;
  d["composition"] = dep.composition == Composition::kRetryOutsideBreaker ? "retry_outside_breaker"
                                                                          : "breaker_outside_retry";
  d["fallback"] = WriteConfig(FallbackSchema(), dep.fallback, true);
  d["idempotency_keys"] = dep.idempotency_keys;
  d["charges"] = dep.charges;
  d["hedge"] = OptionalToPy(
      dep.hedge, [](const HedgeConfig& c) { return WriteConfig(HedgeSchema(), c, true); });
  d["fanout"] = OptionalToPy(
      dep.fanout, [](const FanOutConfig& c) { return WriteConfig(FanoutSchema(), c, true); });
  d["replicas"] = OptionalToPy(
      dep.replicas, [](const ReplicasConfig& c) { return WriteConfig(ReplicasSchema(), c, true); });
  d["aws_retry"] = OptionalToPy(dep.aws_retry, [](const AwsRetryConfig& c) {
    return WriteConfig(AwsRetrySchema(), c, true);
  });
  d["limit"] = OptionalToPy(dep.limit, LimitToDict);
  d["rate_limit"] = OptionalToPy(dep.rate_limit, RateLimitToDict);
  d["service"] = dep.service.empty() ? py::object(py::none()) : py::object(py::str(dep.service));
  return d;
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
  for (const ServiceConfig& s : c.services) {
    py::dict sd;
    sd["name"] = s.name;
    sd["workers"] = s.workers;
    sd["queue_capacity"] = s.queue_capacity;
    sd["deadline_ns"] = s.deadline_ns;
    py::list sdeps;
    for (const DependencyConfig& dep : s.dependencies) sdeps.append(DependencyToDict(dep));
    sd["dependencies"] = sdeps;
    sd["intake"] = IntakeToDict(s.intake);
    services.append(sd);
  }
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
