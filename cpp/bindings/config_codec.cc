// The generic config codec and the schema export. See the header.
#include "config_codec.h"

#include <pybind11/stl.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common.h"
#include "rlab/core/validate.h"
#include "rlab/model/faults.h"
#include "rlab/model/limits.h"
#include "rlab/model/scenario.h"
#include "rlab/model/service_graph.h"
#include "rlab/policy/backoff.h"
#include "rlab/policy/circuit_breaker.h"
#include "rlab/policy/queue_discipline.h"
#include "rlab/policy/retry.h"
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
    Fail(absl::StrFormat("%s must be a finite number in %s, got %s", path, Interval(f), Repr(v)));
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
    default:
      break;
  }
  Fail(absl::StrFormat("%s is not an integer-like field", path));
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

void BadTag(const std::string& path, std::string_view tag, std::string_view allowed) {
  Fail(absl::StrFormat("%s must be one of %s, got '%s'", JoinPath(path, "type"), allowed, tag));
}

std::string TagOf(py::handle h, const std::string& path) {
  PyObject* v = PyDict_GetItemString(h.ptr(), "type");
  if (v == nullptr) MissingKey(path, "type");
  if (!PyUnicode_Check(v)) {
    Fail(absl::StrFormat("%s must be a string, got %s", JoinPath(path, "type"),
                         Repr(py::handle(v))));
  }
  return py::handle(v).cast<std::string>();
}

namespace {

// The Python form of a scalar field's value (None for an optional field's sentinel).
py::object ScalarToPy(AnySchema schema, size_t i, const void* config) {
  const FieldInfo& f = schema.ops->info(schema.schema, i);
  if (f.kind == FieldKind::kReal) {
    const double v = schema.ops->get_real(schema.schema, i, config);
    return IsNoneReal(f, v) ? py::object(py::none()) : py::object(py::float_(v));
  }
  if (f.kind == FieldKind::kString) {
    const std::string_view v = schema.ops->get_str(schema.schema, i, config);
    if (f.optional && v.empty()) return py::none();  // an optional string: None is empty
    return py::str(v.data(), v.size());
  }
  if (f.kind == FieldKind::kStrings) {
    return py::cast(schema.ops->get_strs(schema.schema, i, config));
  }
  const int64_t v = schema.ops->get_int(schema.schema, i, config);
  return IsNoneInt(f, v) ? py::object(py::none()) : IntLikeToPy(f, v);
}

// A nested field's value (config, list or union) in its Python or native form.
py::object NestedToPy(AnySchema schema, size_t i, const void* config, bool nanoseconds) {
  const void* s = schema.schema;
  const SchemaOps& ops = *schema.ops;
  const FieldInfo& f = ops.info(s, i);
  const size_t n = ops.count(s, i, config);
  if (f.kind == FieldKind::kList || f.kind == FieldKind::kUnionList ||
      f.kind == FieldKind::kRealList || f.kind == FieldKind::kSecondsList) {
    py::list out;
    for (size_t k = 0; k < n; ++k) {
      if (f.kind == FieldKind::kList) {
        out.append(WriteAny(ops.inner(s, i), ops.item(s, i, config, k), nanoseconds, true));
      } else if (f.kind == FieldKind::kUnionList) {
        out.append(WriteUnion(ops.members(s, i), ops.item(s, i, config, k), nanoseconds));
      } else if (f.kind == FieldKind::kRealList) {
        out.append(*static_cast<const double*>(ops.item(s, i, config, k)));
      } else {
        const int64_t ns = *static_cast<const int64_t*>(ops.item(s, i, config, k));
        out.append(nanoseconds ? py::object(py::int_(ns))
                               : py::object(py::float_(NsToSeconds(ns))));
      }
    }
    return out;
  }
  if (n == 0) return py::none();
  if (f.kind == FieldKind::kConfig) {
    return WriteAny(ops.inner(s, i), ops.item(s, i, config, 0), nanoseconds, true);
  }
  return WriteUnion(ops.members(s, i), ops.item(s, i, config, 0), nanoseconds);
}

bool IsNested(FieldKind kind) {
  return kind == FieldKind::kConfig || kind == FieldKind::kList || kind == FieldKind::kUnion ||
         kind >= FieldKind::kRealList;
}

// A list field's value as a Python sequence (a list or a tuple), else a ValueError.
py::sequence ListAt(py::handle v, const std::string& at) {
  if (!PyList_Check(v.ptr()) && !PyTuple_Check(v.ptr())) {
    Fail(absl::StrFormat("%s must be a list, got %s", at, Repr(v)));
  }
  return py::reinterpret_borrow<py::sequence>(v);
}

}  // namespace

void ReadUnion(py::handle h, const std::string& path, AnyUnion u, void* value) {
  if (!PyDict_Check(h.ptr())) Fail(absl::StrFormat("%s must be a dict, got %s", path, Repr(h)));
  const std::string tag = TagOf(h, path);
  std::vector<std::string> allowed;
  for (size_t k = 0; k < u.ops->size(u.u); ++k) {
    const AnySchema m = u.ops->member(u.u, k);
    if (m.ops->tag(m.schema) == tag) {
      u.ops->assign(u.u, k, value);
      ReadAny(h, path, m, u.ops->slot(u.u, k, value));
      return;
    }
    allowed.push_back(absl::StrFormat("'%s'", m.ops->tag(m.schema)));
  }
  BadTag(path, tag, absl::StrJoin(allowed, ", "));
}

py::dict WriteUnion(AnyUnion u, const void* value, bool nanoseconds) {
  const size_t k = u.ops->which(u.u, value);
  if (k >= u.ops->size(u.u)) Fail("a union value of no known kind");
  const AnySchema m = u.ops->member(u.u, k);
  py::dict d = WriteAny(m, u.ops->view(u.u, k, value), nanoseconds, /*tagged=*/true);
  if (nanoseconds) d["type"] = std::string(m.ops->tag(m.schema));  // the dump shows it too
  return d;
}

void ReadAny(py::handle h, const std::string& path, AnySchema schema, void* config) {
  const void* s = schema.schema;
  const SchemaOps& ops = *schema.ops;
  if (!PyDict_Check(h.ptr())) {
    Fail(absl::StrFormat("%s must be a dict, got %s", path.empty() ? "config" : path, Repr(h)));
  }
  const std::string_view tag = ops.tag(s);
  absl::flat_hash_set<std::string_view> known;
  for (size_t i = 0; i < ops.size(s); ++i) known.insert(ops.info(s, i).name);
  if (!tag.empty()) known.insert("type");
  for (auto item : py::reinterpret_borrow<py::dict>(h)) {
    const std::string key = py::str(item.first).cast<std::string>();
    if (!known.contains(key)) {
      Fail(absl::StrFormat("%s is not a field of the scenario schema", JoinPath(path, key)));
    }
  }
  if (!tag.empty() && PyDict_GetItemString(h.ptr(), "type") != nullptr) {
    const std::string t = TagOf(h, path);
    if (t != tag) BadTag(path, t, absl::StrFormat("'%s'", tag));
  }
  for (size_t i = 0; i < ops.size(s); ++i) {
    const FieldInfo& f = ops.info(s, i);
    PyObject* v = PyDict_GetItemString(h.ptr(), std::string(f.name).c_str());
    const bool nested_optional =
        f.optional && (f.kind == FieldKind::kConfig || f.kind == FieldKind::kUnion);
    const bool optional_string = f.optional && f.kind == FieldKind::kString;
    if (v == nullptr && (nested_optional || optional_string)) {  // written before it existed
      if (optional_string) {
        ops.set_str(s, i, config, "");
      } else {
        ops.reset(s, i, config);
      }
      continue;
    }
    if (v == nullptr) MissingKey(path, f.name);
    const std::string at = JoinPath(path, f.name);
    if (f.optional && v == Py_None) {
      if (nested_optional) {
        ops.reset(s, i, config);
      } else if (optional_string) {
        ops.set_str(s, i, config, "");
      } else if (f.kind == FieldKind::kReal) {
        ops.set_real(s, i, config, f.none_real);
      } else {
        ops.set_int(s, i, config, f.none_int);
      }
      continue;
    }
    py::handle value(v);
    switch (f.kind) {
      case FieldKind::kReal:
        ops.set_real(s, i, config, ReadReal(value, f, at));
        break;
      case FieldKind::kString:
        if (!PyUnicode_Check(v)) {
          Fail(absl::StrFormat("%s must be a string, got %s", at, Repr(value)));
        }
        ops.set_str(s, i, config, value.cast<std::string>());
        break;
      case FieldKind::kConfig:
        ReadAny(value, at, ops.inner(s, i), ops.add(s, i, config));
        break;
      case FieldKind::kList: {
        const py::sequence items = ListAt(value, at);
        // Elements named as the validator names them (by a unique name, else by index).
        std::vector<std::string> names;
        for (size_t k = 0; k < items.size(); ++k) {
          py::object e = items[k];
          PyObject* n = PyDict_Check(e.ptr()) ? PyDict_GetItemString(e.ptr(), "name") : nullptr;
          names.push_back(n != nullptr && PyUnicode_Check(n) ? py::handle(n).cast<std::string>()
                                                             : std::string());
        }
        ops.reset(s, i, config);
        for (size_t k = 0; k < items.size(); ++k) {
          ReadAny(items[k], JoinPath(path, ElementLabel(f, names, k)), ops.inner(s, i),
                  ops.add(s, i, config));
        }
        break;
      }
      case FieldKind::kUnion:
        ReadUnion(value, at, ops.members(s, i), ops.add(s, i, config));
        break;
      case FieldKind::kStrings: {
        if (!PyList_Check(v) && !PyTuple_Check(v)) {
          Fail(absl::StrFormat("%s must be a list of strings, got %s", at, Repr(value)));
        }
        std::vector<std::string> names;
        const py::sequence items = py::reinterpret_borrow<py::sequence>(value);
        for (size_t k = 0; k < items.size(); ++k) {
          py::object e = items[k];
          if (!PyUnicode_Check(e.ptr())) {
            Fail(absl::StrFormat("%s[%d] must be a string, got %s", at, k, Repr(e)));
          }
          names.push_back(e.cast<std::string>());
        }
        ThrowIfError(ops.set_strs(s, i, config, names, at));
        break;
      }
      case FieldKind::kUnionList:
      case FieldKind::kRealList:
      case FieldKind::kSecondsList: {
        const py::sequence items = ListAt(value, at);
        FieldInfo element = f;
        element.kind = FieldKind::kSeconds;
        ops.reset(s, i, config);
        for (size_t k = 0; k < items.size(); ++k) {
          const std::string item_at = absl::StrFormat("%s[%d]", at, k);
          if (f.kind == FieldKind::kUnionList) {
            ReadUnion(items[k], item_at, ops.members(s, i), ops.add(s, i, config));
          } else if (f.kind == FieldKind::kRealList) {
            *static_cast<double*>(ops.add(s, i, config)) = ReadReal(items[k], f, item_at);
          } else {
            *static_cast<int64_t*>(ops.add(s, i, config)) = ReadIntLike(items[k], element, item_at);
          }
        }
        break;
      }
      default:
        ops.set_int(s, i, config, ReadIntLike(value, f, at));
    }
  }
}

py::dict WriteAny(AnySchema schema, const void* config, bool nanoseconds, bool tagged) {
  const void* s = schema.schema;
  const SchemaOps& ops = *schema.ops;
  py::dict d;
  const std::string_view tag = ops.tag(s);
  if (tagged && !nanoseconds && !tag.empty()) d["type"] = py::str(tag.data(), tag.size());
  for (size_t i = 0; i < ops.size(s); ++i) {
    const FieldInfo& f = ops.info(s, i);
    const std::string name(f.name);
    if (IsNested(f.kind)) {
      d[py::str(name)] = NestedToPy(schema, i, config, nanoseconds);
    } else if (nanoseconds && f.kind == FieldKind::kSeconds) {
      d[py::str(name + "_ns")] = ops.get_int(s, i, config);
    } else if (nanoseconds && f.kind == FieldKind::kReal && !std::isnan(f.none_real)) {
      d[py::str(name)] = ops.get_real(s, i, config);
    } else {
      d[py::str(name)] = ScalarToPy(schema, i, config);
    }
  }
  return d;
}

py::list DescribeAny(AnySchema schema) {
  const void* s = schema.schema;
  const SchemaOps& ops = *schema.ops;
  std::unique_ptr<void, void (*)(void*)> defaults(ops.make(), ops.destroy);
  py::list out;
  for (size_t i = 0; i < ops.size(s); ++i) {
    const FieldInfo& f = ops.info(s, i);
    py::dict d;
    d["name"] = std::string(f.name);
    d["kind"] = std::string(FieldKindName(f.kind));
    d["unit"] = std::string(f.unit);
    d["default"] = IsNested(f.kind) ? NestedToPy(schema, i, defaults.get(), false)
                                    : ScalarToPy(schema, i, defaults.get());
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
    d["required"] = f.required;
    py::list types;
    if (f.kind == FieldKind::kUnion || f.kind == FieldKind::kUnionList) {
      const AnyUnion u = ops.members(s, i);
      for (size_t k = 0; k < u.ops->size(u.u); ++k) {
        const AnySchema m = u.ops->member(u.u, k);
        types.append(std::string(m.ops->class_name(m.schema)));
      }
    } else if (f.kind == FieldKind::kConfig || f.kind == FieldKind::kList) {
      types.append(std::string(f.type));
    }
    d["types"] = types;
    d["doc"] = std::string(f.doc);
    out.append(d);
  }
  return out;
}

namespace {

// One exported table: its description, its tag, and a check of a dict against it and its rules.
struct Exported {
  std::function<py::list()> describe;
  std::function<py::dict(py::handle)> check;
  std::string_view tag;
};

template <typename C>
void Export(std::vector<std::pair<std::string, Exported>>& out, const ConfigSchema<C>& schema) {
  out.push_back({std::string(schema.class_name),
                 {[&schema] { return DescribeAny(Any(schema)); },
                  [&schema](py::handle d) {
                    const C config = ReadConfig(d, "", schema);
                    ThrowIfError(ValidateAt("", schema, config));
                    return WriteConfig(schema, config);
                  },
                  schema.tag}});
}

// Every config declared by a field table.
const std::vector<std::pair<std::string, Exported>>& Tables() {
  static const auto* tables = [] {
    auto* t = new std::vector<std::pair<std::string, Exported>>();
    Export(*t, BreakerSchema());
    Export(*t, TokenBucketSchema());
    Export(*t, RatioBudgetSchema());
    Export(*t, ThrottleSchema());
    Export(*t, QueueDisciplineSchema());
    Export(*t, LimitSchema());
    Export(*t, FailureMixSchema());
    Export(*t, FallbackSchema());
    Export(*t, HedgeSchema());
    Export(*t, FanoutSchema());
    Export(*t, OutlierSchema());
    Export(*t, BulkheadSchema());
    Export(*t, AwsRetrySchema());
    Export(*t, ShedClassSchema());
    Export(*t, RateLimitSchema());
    Export(*t, CapacitySchema());
    Export(*t, PhaseSchema());
    Export(*t, FaultsSchema());
    Export(*t, TenantSchema());
    Export(*t, SheddingSchema());
    Export(*t, IntakeSchema());
    Export(*t, ReplicaOverrideSchema());
    Export(*t, ReplicasSchema());
    Export(*t, RateSegmentSchema());
    Export(*t, ScheduleSchema());
    Export(*t, PoissonSchema());
    Export(*t, ConstantRateSchema());
    Export(*t, ClosedLoopSchema());
    Export(*t, BackoffSchema());
    Export(*t, RetrySchema());
    Export(*t, DependencySchema());
    Export(*t, ServiceSchema());
    Export(*t, TraceSchema());
    for (const UnionMember<LatencyDist>& m : LatencyUnion().members) Export(*t, m.schema());
    Export(*t, SampleWindowSchema());
    Export(*t, AimdSchema());
    Export(*t, VegasSchema());
    Export(*t, Gradient2Schema());
    Export(*t, EnvoyGradientSchema());
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
      "hi_open, choices, optional, required, types, doc}, ...]}.");
  m.def(
      "config_tags",
      [] {
        py::dict out;
        for (const auto& [name, e] : Tables()) {
          if (!e.tag.empty()) out[py::str(name)] = std::string(e.tag);
        }
        return out;
      },
      "The \"type\" tag of each config class whose dict form carries one: {class name: tag}.");
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
