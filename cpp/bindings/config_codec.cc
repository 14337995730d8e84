// The generic config codec and the schema export. See the header.
#include "config_codec.h"

#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common.h"
#include "rlab/core/clock.h"
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
  const bool is_int = PyLong_Check(o) && !PyBool_Check(o);
  int overflow = 0;
  const long long v = is_int ? PyLong_AsLongLongAndOverflow(o, &overflow) : 0;
  if (!is_int || overflow != 0 || (v == -1 && PyErr_Occurred()) || v < lo || v > hi) {
    PyErr_Clear();
    Fail(absl::StrFormat("%s must be an integer in [%d, %d], got %s", path, lo, hi, Repr(h)));
  }
  return v;
}

void MissingKey(const std::string& path, std::string_view key) {
  Fail(absl::StrFormat("%s: missing key '%s'", path.empty() ? "config" : path, key));
}

namespace {

// A real number of the field (or of a list field's elements) in its interval, named `path`.
double ReadReal(py::handle v, const FieldInfo& f, const std::string& path) {
  PyObject* o = v.ptr();
  const bool number = PyFloat_Check(o) || (PyLong_Check(o) && !PyBool_Check(o));
  const double x = number ? PyFloat_AsDouble(o) : 0.0;
  if (!number || (x == -1.0 && PyErr_Occurred())) {
    PyErr_Clear();
    ThrowIfError(RangeError(path, Repr(v), f.lo, f.hi, f.lo_bound, f.hi_bound));
  }
  ThrowIfError(CheckRealField(f, path, x));
  return x;
}

// An integer-like field's value (int, seconds as nanoseconds, bool, choice index), checked.
int64_t ReadIntLike(py::handle v, const FieldInfo& f, const std::string& path) {
  if (f.kind == FieldKind::kInt) return ToInt(v, path, f.int_lo, f.int_hi);
  if (f.kind == FieldKind::kBool) {
    if (!PyBool_Check(v.ptr())) {
      Fail(absl::StrFormat("%s must be True or False, got %s", path, Repr(v)));
    }
    return v.ptr() == Py_True ? 1 : 0;
  }
  if (f.kind == FieldKind::kChoice) {
    if (PyUnicode_Check(v.ptr())) {
      const auto it = std::find(f.choices.begin(), f.choices.end(), v.cast<std::string>());
      if (it != f.choices.end()) return it - f.choices.begin();
    }
    ThrowIfError(ChoiceError(f, path, Repr(v)));
  }
  const int64_t ns = SecondsToNs(ReadReal(v, f, path));  // seconds, or a list's element
  ThrowIfError(CheckIntField(f, path, ns));              // the bounds as the core compares them
  return ns;
}

std::string ReadString(py::handle v, const std::string& path) {
  if (!PyUnicode_Check(v.ptr())) {
    Fail(absl::StrFormat("%s must be a string, got %s", path, Repr(v)));
  }
  return v.cast<std::string>();
}

// A list field's value as a Python sequence (a list or a tuple), else a ValueError.
py::sequence ListAt(py::handle v, const std::string& at, std::string_view of = "") {
  if (!PyList_Check(v.ptr()) && !PyTuple_Check(v.ptr())) {
    Fail(absl::StrFormat("%s must be a list%s, got %s", at, of, Repr(v)));
  }
  return py::reinterpret_borrow<py::sequence>(v);
}

// The string value of the dict `h`'s "type" key (which must be there).
std::string TagOf(py::handle h, const std::string& path) {
  PyObject* v = PyDict_GetItemString(h.ptr(), "type");
  if (v == nullptr) MissingKey(path, "type");
  return ReadString(v, JoinPath(path, "type"));
}

// A union's "type" tag that is none of `allowed`.
[[noreturn]] void BadTag(const std::string& path, std::string_view tag, std::string_view allowed) {
  Fail(absl::StrFormat("%s must be one of %s, got '%s'", JoinPath(path, "type"), allowed, tag));
}

// Field i's value set to None: an optional config or union emptied, an optional string empty,
// a number its sentinel.
void SetNone(AnySchema schema, size_t i, void* config) {
  const FieldInfo& f = schema.ops->info(schema.schema, i);
  if (IsNested(f.kind)) {
    schema.ops->reset(schema.schema, i, config);
  } else if (f.kind == FieldKind::kString) {
    schema.ops->set_str(schema.schema, i, config, "");
  } else if (f.kind == FieldKind::kReal) {
    schema.ops->set_real(schema.schema, i, config, f.none_real);
  } else {
    schema.ops->set_int(schema.schema, i, config, f.none_int);
  }
}

// Field i's nested value (a config, a union, or a list of them or of numbers) from `v`; each
// element named as the validator names it (a list's by a unique name, else by index).
void ReadNested(py::handle v, const std::string& path, AnySchema schema, size_t i, void* config) {
  const void* s = schema.schema;
  const SchemaOps& ops = *schema.ops;
  const FieldInfo& f = ops.info(s, i);
  const py::sequence items =
      IsList(f.kind) ? ListAt(v, JoinPath(path, f.name)) : py::sequence(py::make_tuple(v));
  std::vector<std::string> names;
  for (py::handle e : items) {
    PyObject* n = PyDict_Check(e.ptr()) ? PyDict_GetItemString(e.ptr(), "name") : nullptr;
    names.push_back(n != nullptr && PyUnicode_Check(n) ? py::handle(n).cast<std::string>() : "");
  }
  ops.reset(s, i, config);
  for (size_t k = 0; k < names.size(); ++k) {
    const std::string at = JoinPath(path, ElementLabel(f, names, k));
    if (f.kind == FieldKind::kConfig || f.kind == FieldKind::kList) {
      ReadAny(items[k], at, ops.inner(s, i), ops.add(s, i, config));
    } else if (f.kind == FieldKind::kUnion || f.kind == FieldKind::kUnionList) {
      ReadUnion(items[k], at, ops.members(s, i), ops.add(s, i, config));
    } else if (f.kind == FieldKind::kRealList) {
      *static_cast<double*>(ops.add(s, i, config)) = ReadReal(items[k], f, at);
    } else {
      *static_cast<int64_t*>(ops.add(s, i, config)) = ReadIntLike(items[k], f, at);
    }
  }
}

// Field i's value in its Python form (None for an optional field's sentinel), or with
// `nanoseconds` in the native dump's (seconds as nanoseconds, a number's sentinel as it is).
py::object FieldToPy(AnySchema schema, size_t i, const void* config, bool nanoseconds) {
  const void* s = schema.schema;
  const SchemaOps& ops = *schema.ops;
  const FieldInfo& f = ops.info(s, i);
  if (IsNested(f.kind)) {
    py::list out;
    for (size_t k = 0; k < ops.count(s, i, config); ++k) {
      const void* item = ops.item(s, i, config, k);
      if (f.kind == FieldKind::kConfig || f.kind == FieldKind::kList) {
        out.append(WriteAny(ops.inner(s, i), item, nanoseconds, /*tagged=*/true));
      } else if (f.kind == FieldKind::kUnion || f.kind == FieldKind::kUnionList) {
        out.append(WriteUnion(ops.members(s, i), item, nanoseconds));
      } else if (f.kind == FieldKind::kRealList) {
        out.append(*static_cast<const double*>(item));
      } else {
        const int64_t ns = *static_cast<const int64_t*>(item);
        out.append(nanoseconds ? py::object(py::int_(ns))
                               : py::object(py::float_(NsToSeconds(ns))));
      }
    }
    if (IsList(f.kind)) return out;
    if (out.empty()) return py::none();
    return out[0];
  }
  if (f.kind == FieldKind::kString) {
    const std::string_view v = ops.get_str(s, i, config);
    if (f.optional && v.empty()) return py::none();  // an optional string: None is empty
    return py::str(v.data(), v.size());
  }
  if (f.kind == FieldKind::kStrings) return py::cast(ops.get_strs(s, i, config));
  if (f.kind == FieldKind::kReal) {
    const double v = ops.get_real(s, i, config);
    if (IsNoneReal(f, v) && !(nanoseconds && !std::isnan(f.none_real))) return py::none();
    return py::float_(v);
  }
  const int64_t v = ops.get_int(s, i, config);
  if (f.kind == FieldKind::kSeconds) {
    if (nanoseconds) return py::int_(v);
    return IsNoneInt(f, v) ? py::none() : py::object(py::float_(NsToSeconds(v)));
  }
  if (IsNoneInt(f, v)) return py::none();
  if (f.kind == FieldKind::kBool) return py::bool_(v != 0);
  if (f.kind == FieldKind::kChoice && v >= 0 && v < static_cast<int64_t>(f.choices.size())) {
    return py::str(f.choices[v].data(), f.choices[v].size());
  }
  return py::int_(v);
}

}  // namespace

void ReadUnion(py::handle h, const std::string& path, AnyUnion u, void* value) {
  if (!PyDict_Check(h.ptr())) Fail(absl::StrFormat("%s must be a dict, got %s", path, Repr(h)));
  const std::string tag = TagOf(h, path);
  std::vector<std::string> allowed;
  for (size_t k = 0; k < u.ops->size(u.u); ++k) {
    const AnySchema m = u.ops->member(u.u, k);
    if (m.tag == tag) {
      u.ops->assign(u.u, k, value);
      ReadAny(h, path, m, u.ops->slot(u.u, k, value));
      return;
    }
    allowed.push_back(absl::StrFormat("'%s'", m.tag));
  }
  BadTag(path, tag, absl::StrJoin(allowed, ", "));
}

py::dict WriteUnion(AnyUnion u, const void* value, bool nanoseconds) {
  const size_t k = u.ops->which(u.u, value);
  if (k >= u.ops->size(u.u)) Fail("a union value of no known kind");
  const AnySchema m = u.ops->member(u.u, k);
  py::dict d = WriteAny(m, u.ops->view(u.u, k, value), nanoseconds, /*tagged=*/true);
  if (nanoseconds) d["type"] = m.tag;  // the dump shows it too
  return d;
}

void ReadAny(py::handle h, const std::string& path, AnySchema schema, void* config) {
  const void* s = schema.schema;
  const SchemaOps& ops = *schema.ops;
  if (!PyDict_Check(h.ptr())) {
    Fail(absl::StrFormat("%s must be a dict, got %s", path.empty() ? "config" : path, Repr(h)));
  }
  const std::string_view tag = schema.tag;
  absl::flat_hash_set<std::string_view> known;
  for (size_t i = 0; i < schema.size; ++i) known.insert(ops.info(s, i).name);
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
  for (size_t i = 0; i < schema.size; ++i) {
    const FieldInfo& f = ops.info(s, i);
    PyObject* v = PyDict_GetItemString(h.ptr(), std::string(f.name).c_str());
    // An optional config, union or string may be missing (written before it existed): None.
    const bool may_miss =
        f.optional && (f.kind == FieldKind::kConfig || f.kind == FieldKind::kUnion ||
                       f.kind == FieldKind::kString);
    if (v == nullptr && !may_miss) MissingKey(path, f.name);
    const std::string at = JoinPath(path, f.name);
    if (v == nullptr || (f.optional && v == Py_None)) {
      SetNone(schema, i, config);
    } else if (IsNested(f.kind)) {
      ReadNested(v, path, schema, i, config);
    } else if (f.kind == FieldKind::kReal) {
      ops.set_real(s, i, config, ReadReal(v, f, at));
    } else if (f.kind == FieldKind::kString) {
      ops.set_str(s, i, config, ReadString(v, at));
    } else if (f.kind == FieldKind::kStrings) {
      std::vector<std::string> names;
      const py::sequence items = ListAt(v, at, " of strings");
      for (size_t k = 0; k < items.size(); ++k) {
        names.push_back(ReadString(items[k], absl::StrFormat("%s[%d]", at, k)));
      }
      ThrowIfError(ops.set_strs(s, i, config, names, at));
    } else {
      ops.set_int(s, i, config, ReadIntLike(v, f, at));
    }
  }
}

py::dict WriteAny(AnySchema schema, const void* config, bool nanoseconds, bool tagged) {
  py::dict d;
  if (tagged && !nanoseconds && !schema.tag.empty()) d["type"] = schema.tag;
  for (size_t i = 0; i < schema.size; ++i) {
    const FieldInfo& f = schema.ops->info(schema.schema, i);
    const bool ns = nanoseconds && f.kind == FieldKind::kSeconds;
    d[py::str(absl::StrFormat("%s%s", f.name, ns ? "_ns" : ""))] =
        FieldToPy(schema, i, config, nanoseconds);
  }
  return d;
}

py::list DescribeAny(AnySchema schema) {
  using namespace pybind11::literals;  // NOLINT(build/namespaces): "name"_a
  const void* s = schema.schema;
  const SchemaOps& ops = *schema.ops;
  const std::shared_ptr<void> defaults = ops.make();
  py::list out;
  for (size_t i = 0; i < schema.size; ++i) {
    const FieldInfo& f = ops.info(s, i);
    const bool is_int = f.kind == FieldKind::kInt;
    std::vector<std::string_view> types;
    if (f.kind == FieldKind::kUnion || f.kind == FieldKind::kUnionList) {
      const AnyUnion u = ops.members(s, i);
      for (size_t k = 0; k < u.ops->size(u.u); ++k) {
        const AnySchema m = u.ops->member(u.u, k);
        types.push_back(m.class_name);
      }
    } else if (f.kind == FieldKind::kConfig || f.kind == FieldKind::kList) {
      types.push_back(f.type);
    }
    out.append(py::dict(
        "name"_a = f.name, "kind"_a = FieldKindName(f.kind), "unit"_a = f.unit,
        "default"_a = FieldToPy(schema, i, defaults.get(), false),
        "lo"_a = is_int ? py::object(py::int_(f.int_lo)) : py::object(py::float_(f.lo)),
        "hi"_a = is_int ? py::object(py::int_(f.int_hi)) : py::object(py::float_(f.hi)),
        "lo_open"_a = f.lo_bound == Bound::kOpen, "hi_open"_a = f.hi_bound == Bound::kOpen,
        "choices"_a = std::vector<std::string_view>(f.choices.begin(), f.choices.end()),
        "optional"_a = f.optional, "required"_a = f.required, "types"_a = types, "doc"_a = f.doc));
  }
  return out;
}

namespace {

// Every config declared by a field table.
const std::vector<AnySchema>& Tables() {
  static const auto* tables = [] {
    auto* t = new std::vector<AnySchema>{
        Any(BreakerSchema()),         Any(TokenBucketSchema()),     Any(RatioBudgetSchema()),
        Any(ThrottleSchema()),        Any(QueueDisciplineSchema()), Any(LimitSchema()),
        Any(FailureMixSchema()),      Any(FallbackSchema()),        Any(HedgeSchema()),
        Any(FanoutSchema()),          Any(OutlierSchema()),         Any(BulkheadSchema()),
        Any(AwsRetrySchema()),        Any(ShedClassSchema()),       Any(RateLimitSchema()),
        Any(CapacitySchema()),        Any(PhaseSchema()),           Any(FaultsSchema()),
        Any(TenantSchema()),          Any(SheddingSchema()),        Any(IntakeSchema()),
        Any(ReplicaOverrideSchema()), Any(ReplicasSchema()),        Any(RateSegmentSchema()),
        Any(ScheduleSchema()),        Any(PoissonSchema()),         Any(ConstantRateSchema()),
        Any(ClosedLoopSchema()),      Any(BackoffSchema()),         Any(RetrySchema()),
        Any(DependencySchema()),      Any(ServiceSchema()),         Any(TraceSchema())};
    for (const UnionMember<LatencyDist>& m : LatencyUnion().members) t->push_back(Any(m.schema()));
    t->insert(t->end(), {Any(SampleWindowSchema()), Any(AimdSchema()), Any(VegasSchema()),
                         Any(Gradient2Schema()), Any(EnvoyGradientSchema())});
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
        for (AnySchema t : Tables()) out[py::str(t.class_name)] = DescribeAny(t);
        return out;
      },
      "Every config's field table: {class name: [{name, kind, unit, default, lo, hi, lo_open, "
      "hi_open, choices, optional, required, types, doc}, ...]}.");
  m.def(
      "config_tags",
      [] {
        py::dict out;
        for (AnySchema t : Tables()) {
          if (!t.tag.empty()) out[py::str(t.class_name)] = t.tag;
        }
        return out;
      },
      "The \"type\" tag of each config class whose dict form carries one: {class name: tag}.");
  m.def(
      "check_config",
      [](std::string_view name, py::handle d) {
        for (AnySchema t : Tables()) {
          if (t.class_name != name) continue;
          const std::shared_ptr<void> config = t.ops->make();
          ReadAny(d, "", t, config.get());
          ThrowIfError(ValidateAny("", t, config.get()));
          return WriteAny(t, config.get());
        }
        throw py::key_error(absl::StrFormat("no field table for %s", name));
      },
      py::arg("name"), py::arg("fields"),
      "Checks a config's fields (a dict) against its table and rules (ValueError names the "
      "field, the allowed range and the value); returns them as read back from the native "
      "struct.");
}

}  // namespace rlab::bindings
