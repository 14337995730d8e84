// The generic config codec and the schema export. See the header.
#include "config_codec.h"

#include <pybind11/stl.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common.h"
#include "rlab/core/validate.h"
#include "rlab/model/faults.h"
#include "rlab/model/limits.h"
#include "rlab/model/scenario.h"
#include "rlab/policy/circuit_breaker.h"
#include "rlab/policy/queue_discipline.h"
#include "rlab/policy/retry_budget.h"
#include "rlab/policy/throttle.h"

namespace rlab::bindings {

[[noreturn]] static void Fail(const std::string& message) { throw py::value_error(message); }

std::string Repr(py::handle h) {
  try {
    std::string r = py::repr(h).cast<std::string>();
    if (r.size() > 80) r = r.substr(0, 77) + "...";
    return r;
  } catch (const py::error_already_set&) {
    return "<unprintable>";
  }
}

std::string JoinPath(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return absl::StrFormat("%s.%s", path, key);
}

double ToDouble(py::handle h, const std::string& path) {
  PyObject* o = h.ptr();
  if (PyFloat_Check(o)) return PyFloat_AS_DOUBLE(o);
  if (PyLong_Check(o) && !PyBool_Check(o)) {
    const double v = PyLong_AsDouble(o);
    if (v == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      Fail(absl::StrFormat("%s must be a finite number, got %s", path, Repr(h)));
    }
    return v;
  }
  Fail(absl::StrFormat("%s must be a number, got %s", path, Repr(h)));
}

int64_t ToInt(py::handle h, const std::string& path, int64_t lo, int64_t hi) {
  PyObject* o = h.ptr();
  if (!PyLong_Check(o) || PyBool_Check(o)) {
    Fail(absl::StrFormat("%s must be an integer in [%d, %d], got %s", path, lo, hi, Repr(h)));
  }
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (overflow != 0 || (v == -1 && PyErr_Occurred()) || v < lo || v > hi) {
    PyErr_Clear();
    Fail(absl::StrFormat("%s must be an integer in [%d, %d], got %s", path, lo, hi, Repr(h)));
  }
  return v;
}

namespace {

std::string Interval(const FieldInfo& f) {
  auto bound = [](double v) {
    if (std::isinf(v)) return std::string(v > 0 ? "inf" : "-inf");
    return absl::StrFormat("%g", v);
  };
  return absl::StrFormat("%c%s, %s%c", f.lo_bound == Bound::kOpen ? '(' : '[', bound(f.lo),
                         bound(f.hi), f.hi_bound == Bound::kOpen ? ')' : ']');
}

std::string ChoiceList(const FieldInfo& f) {
  std::vector<std::string> names;
  for (std::string_view n : f.choices) names.push_back(absl::StrFormat("'%s'", n));
  return absl::StrJoin(names, ", ");
}

// A real number in the field's interval; the message of CheckRange, naming `path`.
double CheckedReal(py::handle v, const FieldInfo& f, const std::string& path) {
  PyObject* o = v.ptr();
  double x = 0.0;
  bool ok = false;
  if (PyFloat_Check(o)) {
    x = PyFloat_AS_DOUBLE(o);
    ok = true;
  } else if (PyLong_Check(o) && !PyBool_Check(o)) {
    x = PyLong_AsDouble(o);
    ok = !(x == -1.0 && PyErr_Occurred());
    PyErr_Clear();
  }
  if (!ok) {
    Fail(absl::StrFormat("%s must be a finite number in %s, got %s", path, Interval(f),
                         Repr(v)));
  }
  ThrowIfError(CheckRange(path, x, f.lo, f.hi, f.lo_bound, f.hi_bound));
  return x;
}

}  // namespace

double ReadReal(py::handle v, const FieldInfo& f, const std::string& path) {
  return CheckedReal(v, f, path);
}

int64_t ReadIntLike(py::handle v, const FieldInfo& f, const std::string& path) {
  switch (f.kind) {
    case FieldKind::kInt:
      return ToInt(v, path, f.int_lo, f.int_hi);
    case FieldKind::kSeconds: {
      const int64_t ns = SecondsToNs(CheckedReal(v, f, path));
      FieldInfo at = f;
      at.name = path;
      ThrowIfError(CheckNsField(at, ns));  // the bounds as the core compares them
      return ns;
    }
    case FieldKind::kBool:
      if (!PyBool_Check(v.ptr())) {
        Fail(absl::StrFormat("%s must be True or False, got %s", path, Repr(v)));
      }
      return v.ptr() == Py_True ? 1 : 0;
    case FieldKind::kChoice:
      if (PyUnicode_Check(v.ptr())) {
        const std::string s = v.cast<std::string>();
        for (size_t i = 0; i < f.choices.size(); ++i) {
          if (s == f.choices[i]) return static_cast<int64_t>(i);
        }
      }
      Fail(absl::StrFormat("%s must be one of %s, got %s", path, ChoiceList(f), Repr(v)));
    case FieldKind::kReal:
      break;
  }
  Fail(absl::StrFormat("%s is a real field", path));
}

py::object IntLikeToPy(const FieldInfo& f, int64_t v) {
  switch (f.kind) {
    case FieldKind::kSeconds:
      return py::float_(NsToSeconds(v));
    case FieldKind::kBool:
      return py::bool_(v != 0);
    case FieldKind::kChoice:
      if (v >= 0 && v < static_cast<int64_t>(f.choices.size())) {
        return py::str(f.choices[v].data(), f.choices[v].size());
      }
      return py::int_(v);
    default:
      return py::int_(v);
  }
}

void MissingKey(const std::string& path, std::string_view key) {
  Fail(absl::StrFormat("%s: missing key '%s'", path.empty() ? "config" : path, key));
}

void CheckKeys(py::handle h, const std::string& path, absl::Span<const std::string_view> names,
               absl::Span<const std::string_view> extra) {
  if (!PyDict_Check(h.ptr())) {
    Fail(absl::StrFormat("%s must be a dict, got %s", path.empty() ? "config" : path, Repr(h)));
  }
  absl::flat_hash_set<std::string_view> known(names.begin(), names.end());
  known.insert(extra.begin(), extra.end());
  for (std::string_view n : names) {
    if (PyDict_GetItemString(h.ptr(), std::string(n).c_str()) == nullptr) MissingKey(path, n);
  }
  for (auto item : py::reinterpret_borrow<py::dict>(h)) {
    const std::string key = py::str(item.first).cast<std::string>();
    if (!known.contains(key)) {
      Fail(absl::StrFormat("%s is not a field of the scenario schema", JoinPath(path, key)));
    }
  }
}

py::dict DescribeField(const FieldInfo& f, py::object default_value) {
  py::dict d;
  d["name"] = std::string(f.name);
  d["kind"] = std::string(FieldKindName(f.kind));
  d["unit"] = std::string(f.unit);
  d["default"] = std::move(default_value);
  if (f.kind == FieldKind::kInt) {
    d["lo"] = f.int_lo;
    d["hi"] = f.int_hi;
  } else {
    d["lo"] = f.lo;
    d["hi"] = f.hi;
  }
  d["lo_open"] = f.lo_bound == Bound::kOpen;
  d["hi_open"] = f.hi_bound == Bound::kOpen;
  py::list choices;
  for (std::string_view c : f.choices) choices.append(std::string(c));
  d["choices"] = choices;
  d["optional"] = f.optional;
  d["doc"] = std::string(f.doc);
  return d;
}

namespace {

// One exported table: its description, and a check of a dict against it and its rules.
struct Exported {
  std::function<py::list()> describe;
  std::function<py::dict(py::handle)> check;
};

template <typename C>
void Export(std::vector<std::pair<std::string, Exported>>& out, const ConfigSchema<C>& schema,
            absl::Status (*rules)(const C&)) {
  out.push_back({std::string(schema.class_name),
                 {[&schema] { return DescribeSchema(schema); },
                  [&schema, rules](py::handle d) {
                    const C config = ReadConfig(d, "", schema);
                    if (rules != nullptr) ThrowIfError(rules(config));
                    return WriteConfig(schema, config);
                  }}});
}

// Every config declared by a field table.
const std::vector<std::pair<std::string, Exported>>& Tables() {
  static const auto* tables = [] {
    auto* t = new std::vector<std::pair<std::string, Exported>>();
    Export(*t, BreakerSchema(), &ValidateBreakerRules);
    Export(*t, TokenBucketSchema(), &ValidateTokenBucketRules);
    Export(*t, RatioBudgetSchema(), &ValidateRatioBudgetRules);
    Export(*t, ThrottleSchema(), &ValidateThrottleRules);
    Export<QueueDisciplineConfig>(*t, QueueDisciplineSchema(), nullptr);
    Export(*t, LimitSchema(), &ValidateLimitRules);
    Export<FailureMix>(*t, FailureMixSchema(), nullptr);
    Export<FallbackConfig>(*t, FallbackSchema(), nullptr);
    Export<HedgeConfig>(*t, HedgeSchema(), nullptr);
    Export(*t, FanoutSchema(), &ValidateFanoutRules);
    Export(*t, OutlierSchema(), &ValidateOutlierRules);
    Export<BulkheadConfig>(*t, BulkheadSchema(), nullptr);
    Export<AwsRetryConfig>(*t, AwsRetrySchema(), nullptr);
    Export<ShedClassConfig>(*t, ShedClassSchema(), nullptr);
    Export<RateLimitConfig>(*t, RateLimitSchema(), nullptr);
    return t;
  }();
  return *tables;
}

}  // namespace

void RegisterConfigSchemas(py::module_& m) {
  m.def(
      "config_schema",
      [] {
        py::dict out;
        for (const auto& [name, e] : Tables()) out[py::str(name)] = e.describe();
        return out;
      },
      "Every config's field table: {class name: [{name, kind, unit, default, lo, hi, lo_open, "
      "hi_open, choices, optional, doc}, ...]}.");
  m.def(
      "check_config",
      [](const std::string& name, py::handle d) {
        for (const auto& [n, e] : Tables()) {
          if (n == name) return e.check(d);
        }
        throw py::key_error("no field table for " + name);
      },
      py::arg("name"), py::arg("fields"),
      "Checks a config's fields (a dict) against its table and rules (ValueError names the "
      "field, the allowed range and the value); returns them as read back from the native "
      "struct.");
}

}  // namespace rlab::bindings
