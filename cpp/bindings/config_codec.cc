// The generic config codec and the schema export. See the header.
#include "config_codec.h"

#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common.h"
#include "rlab/core/clock.h"
#include "rlab/core/validate.h"
#include "rlab/model/scenario.h"
#include "rlab/policy/concurrency_limit.h"

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

// "path must be <what>, got <repr>": a value of the wrong type.
[[noreturn]] static void Expected(std::string_view path, std::string_view what, py::handle h) {
  ThrowConfigType(absl::StrFormat("%s must be %s, got %s", path, what, Repr(h)));
}

int64_t ToInt(py::handle h, const std::string& path, int64_t lo, int64_t hi) {
  PyObject* o = h.ptr();
  const bool is_int = PyLong_Check(o) && !PyBool_Check(o);
  int overflow = 0;
  const long long v = is_int ? PyLong_AsLongLongAndOverflow(o, &overflow) : 0;
  if (!is_int || overflow != 0 || (v == -1 && PyErr_Occurred()) || v < lo || v > hi) {
    PyErr_Clear();
    const std::string m =
        absl::StrFormat("%s must be an integer in [%d, %d], got %s", path, lo, hi, Repr(h));
    if (!is_int) ThrowConfigType(m);
    Fail(m);
  }
  return v;
}

void MissingKey(const std::string& path, std::string_view key) {
  Fail(absl::StrFormat("%s: missing key '%s'", path.empty() ? "config" : path, key));
}

namespace {

// "path.key", or "key" at the top.
std::string JoinPath(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return absl::StrFormat("%s.%s", path, key);
}

// A real number of the field (or of a list field's elements) in its interval, named `path`.
double ReadReal(py::handle v, const FieldInfo& f, const std::string& path) {
  PyObject* o = v.ptr();
  const bool number = PyFloat_Check(o) || (PyLong_Check(o) && !PyBool_Check(o));
  const double x = number ? PyFloat_AsDouble(o) : 0.0;
  if (!number || (x == -1.0 && PyErr_Occurred())) {  // not a number, or an int beyond a float
    PyErr_Clear();
    const absl::Status s = RangeError(path, Repr(v), f.lo, f.hi, f.lo_bound, f.hi_bound);
    if (!number) ThrowConfigType(std::string(s.message()));
    ThrowIfError(s);
  }
  ThrowIfError(CheckRealField(f, path, x));
  return x;
}

// An integer-like field's value (int, seconds as nanoseconds, bool, choice index), checked.
int64_t ReadIntLike(py::handle v, const FieldInfo& f, const std::string& path) {
  if (f.kind == FieldKind::kInt) return ToInt(v, path, f.int_lo, f.int_hi);
  if (f.kind == FieldKind::kBool) {
    if (!PyBool_Check(v.ptr())) Expected(path, "True or False", v);
    return v.ptr() == Py_True ? 1 : 0;
  }
  if (f.kind == FieldKind::kChoice) {
    if (!PyUnicode_Check(v.ptr()))
      ThrowConfigType(std::string(ChoiceError(f, path, Repr(v)).message()));
    const auto it = std::find(f.choices.begin(), f.choices.end(), v.cast<std::string>());
    if (it != f.choices.end()) return it - f.choices.begin();
    ThrowIfError(ChoiceError(f, path, Repr(v)));
  }
  const int64_t ns = SecondsToNs(ReadReal(v, f, path));  // seconds, or a list's element
  ThrowIfError(CheckIntField(f, path, ns));              // the bounds as the core compares them
  return ns;
}

std::string ReadString(py::handle v, const std::string& path) {
  if (!PyUnicode_Check(v.ptr())) Expected(path, "a string", v);
  return v.cast<std::string>();
}

// A list field's value as a Python sequence (a list or a tuple), else a ValueError.
py::sequence ListAt(py::handle v, const std::string& at, std::string_view what = "a list") {
  if (!PyList_Check(v.ptr()) && !PyTuple_Check(v.ptr())) Expected(at, what, v);
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

// A tagged union's value from its dict, whose "type" picks the member (an unknown tag names the
// allowed ones), read by the member's table.
void ReadUnion(py::handle h, const std::string& path, const AnyUnion& u, void* value) {
  if (!PyDict_Check(h.ptr())) Expected(path, "a dict", h);
  const std::string tag = TagOf(h, path);
  std::vector<std::string> allowed;
  for (size_t k = 0; k < u.size; ++k) {
    const AnySchema& m = u.member(u, k);
    if (m.tag == tag) return ReadAny(h, path, m, u.assign(u, k, value));
    allowed.push_back(absl::StrFormat("'%s'", m.tag));
  }
  BadTag(path, tag, absl::StrJoin(allowed, ", "));
}

// A union's value as a dict with its tag (in both forms).
py::dict WriteUnion(const AnyUnion& u, const void* value, bool nanoseconds) {
  const size_t k = Which(u, value);
  if (k >= u.size) Fail("a union value of no known kind");
  const AnySchema& m = u.member(u, k);
  py::dict d = WriteAny(m, u.view(u, k, value), nanoseconds, /*tagged=*/true);
  if (nanoseconds) d["type"] = m.tag;  // the dump shows it too
  return d;
}

// The row's value set to None: an optional config or union emptied, an optional string empty,
// a number its sentinel.
void SetNone(const FieldSpec& row, void* config) {
  const FieldInfo& f = row.info;
  if (IsNested(f.kind)) {
    row.reset(config);
  } else if (f.kind == FieldKind::kString) {
    row.set_str(config, "");
  } else if (f.kind == FieldKind::kReal) {
    row.set_real(config, f.none_real);
  } else {
    row.set_int(config, f.none_int);
  }
}

// The row's nested value (a config, a union, or a list of them or of numbers) from `v`; each
// element named as the validator names it (a list's by a unique name, else by index).
void ReadNested(py::handle v, const std::string& path, const FieldSpec& row, void* config) {
  const FieldInfo& f = row.info;
  const py::sequence items =
      IsList(f.kind) ? ListAt(v, JoinPath(path, f.name)) : py::sequence(py::make_tuple(v));
  std::vector<std::string> names;
  for (py::handle e : items) {
    PyObject* n = PyDict_Check(e.ptr()) ? PyDict_GetItemString(e.ptr(), "name") : nullptr;
    names.push_back(n != nullptr && PyUnicode_Check(n) ? py::handle(n).cast<std::string>() : "");
  }
  row.reset(config);
  for (size_t k = 0; k < names.size(); ++k) {
    const std::string at = JoinPath(path, ElementLabel(f, names, k));
    if (f.kind == FieldKind::kConfig || f.kind == FieldKind::kList) {
      ReadAny(items[k], at, row.inner(), row.add(config));
    } else if (f.kind == FieldKind::kUnion || f.kind == FieldKind::kUnionList) {
      ReadUnion(items[k], at, row.members(), row.add(config));
    } else if (f.kind == FieldKind::kRealList) {
      *static_cast<double*>(row.add(config)) = ReadReal(items[k], f, at);
    } else {
      *static_cast<int64_t*>(row.add(config)) = ReadIntLike(items[k], f, at);
    }
  }
}

// The row's value in its Python form (None for an optional field's sentinel), or with
// `nanoseconds` in the native dump's (seconds as nanoseconds, a number's sentinel as it is).
py::object FieldToPy(const FieldSpec& row, const void* config, bool nanoseconds) {
  const FieldInfo& f = row.info;
  if (IsNested(f.kind)) {
    py::list out;
    for (size_t k = 0; k < row.count(config); ++k) {
      const void* item = row.item(config, k);
      if (f.kind == FieldKind::kConfig || f.kind == FieldKind::kList) {
        out.append(WriteAny(row.inner(), item, nanoseconds, /*tagged=*/true));
      } else if (f.kind == FieldKind::kUnion || f.kind == FieldKind::kUnionList) {
        out.append(WriteUnion(row.members(), item, nanoseconds));
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
    const std::string_view v = row.get_str(config);
    if (f.optional && v.empty()) return py::none();  // an optional string: None is empty
    return py::str(v.data(), v.size());
  }
  if (f.kind == FieldKind::kStrings) return py::cast(row.get_strs(config));
  if (f.kind == FieldKind::kReal) {
    const double v = row.get_real(config);
    if (IsNoneReal(f, v) && !(nanoseconds && !std::isnan(f.none_real))) return py::none();
    return py::float_(v);
  }
  const int64_t v = row.get_int(config);
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

// The table for Python: one dict per field (name, kind, unit, default, lo, hi, lo_open, hi_open,
// choices, optional, required, types, doc), the default read from a default-constructed config.
py::list DescribeAny(const AnySchema& schema) {
  using namespace pybind11::literals;  // NOLINT(build/namespaces): "name"_a
  const std::shared_ptr<void> defaults = schema.make();
  py::list out;
  for (const FieldSpec& row : schema.fields) {
    const FieldInfo& f = row.info;
    const bool is_int = f.kind == FieldKind::kInt;
    std::vector<std::string_view> types;
    if (f.kind == FieldKind::kUnion || f.kind == FieldKind::kUnionList) {
      const AnyUnion& u = row.members();
      for (size_t k = 0; k < u.size; ++k) types.push_back(u.member(u, k).class_name);
    } else if (f.kind == FieldKind::kConfig || f.kind == FieldKind::kList) {
      types.push_back(row.inner().class_name);
    }
    out.append(py::dict(
        "name"_a = f.name, "kind"_a = FieldKindName(f.kind), "unit"_a = f.unit,
        "default"_a = FieldToPy(row, defaults.get(), false),
        "lo"_a = is_int ? py::object(py::int_(f.int_lo)) : py::object(py::float_(f.lo)),
        "hi"_a = is_int ? py::object(py::int_(f.int_hi)) : py::object(py::float_(f.hi)),
        "lo_open"_a = f.lo_bound == Bound::kOpen, "hi_open"_a = f.hi_bound == Bound::kOpen,
        "choices"_a = std::vector<std::string_view>(f.choices.begin(), f.choices.end()),
        "optional"_a = f.optional, "required"_a = f.required, "types"_a = types, "doc"_a = f.doc));
  }
  return out;
}

}  // namespace

void ReadAny(py::handle h, const std::string& path, const AnySchema& schema, void* config) {
  if (!PyDict_Check(h.ptr())) Expected(path.empty() ? "config" : path, "a dict", h);
  absl::flat_hash_set<std::string_view> known;
  for (const FieldSpec& row : schema.fields) known.insert(row.info.name);
  if (!schema.tag.empty()) known.insert("type");
  for (auto item : py::reinterpret_borrow<py::dict>(h)) {
    const std::string key = py::str(item.first).cast<std::string>();
    if (!known.contains(key)) {
      Fail(absl::StrFormat("%s is not a field of the scenario schema", JoinPath(path, key)));
    }
  }
  if (!schema.tag.empty() && PyDict_GetItemString(h.ptr(), "type") != nullptr) {
    const std::string t = TagOf(h, path);
    if (t != schema.tag) BadTag(path, t, absl::StrFormat("'%s'", schema.tag));
  }
  for (const FieldSpec& row : schema.fields) {
    const FieldInfo& f = row.info;
    PyObject* v = PyDict_GetItemString(h.ptr(), std::string(f.name).c_str());
    // An optional config, union or string may be missing (written before it existed): None.
    const bool may_miss =
        f.optional && (f.kind == FieldKind::kConfig || f.kind == FieldKind::kUnion ||
                       f.kind == FieldKind::kString);
    if (v == nullptr && !may_miss) MissingKey(path, f.name);
    const std::string at = JoinPath(path, f.name);
    if (v == nullptr || (f.optional && v == Py_None)) {
      SetNone(row, config);
    } else if (IsNested(f.kind)) {
      ReadNested(v, path, row, config);
    } else if (f.kind == FieldKind::kReal) {
      row.set_real(config, ReadReal(v, f, at));
    } else if (f.kind == FieldKind::kString) {
      row.set_str(config, ReadString(v, at));
    } else if (f.kind == FieldKind::kStrings) {
      std::vector<std::string> names;
      const py::sequence items = ListAt(v, at, "a list of strings");
      for (size_t k = 0; k < items.size(); ++k) {
        names.push_back(ReadString(items[k], absl::StrFormat("%s[%d]", at, k)));
      }
      ThrowIfError(row.set_strs(config, names, at));
    } else {
      row.set_int(config, ReadIntLike(v, f, at));
    }
  }
}

py::dict WriteAny(const AnySchema& schema, const void* config, bool nanoseconds, bool tagged) {
  py::dict d;
  if (tagged && !nanoseconds && !schema.tag.empty()) d["type"] = schema.tag;
  for (const FieldSpec& row : schema.fields) {
    const bool ns = nanoseconds && row.info.kind == FieldKind::kSeconds;
    d[py::str(absl::StrFormat("%s%s", row.info.name, ns ? "_ns" : ""))] =
        FieldToPy(row, config, nanoseconds);
  }
  return d;
}

namespace {

// Every table met from `table` on (nested configs, unions' members), in the order first met.
void Collect(const AnySchema& table, std::vector<const AnySchema*>* out) {
  if (absl::c_linear_search(*out, &table)) return;
  out->push_back(&table);
  for (const FieldSpec& row : table.fields) {
    if (row.inner != nullptr) Collect(row.inner(), out);
    for (size_t k = 0; row.members != nullptr && k < row.members().size; ++k) {
      Collect(row.members().member(row.members(), k), out);
    }
  }
}

const std::vector<const AnySchema*>& Tables() {
  static const auto* tables = [] {
    // The scenario's tables (not its own: rl.Scenario holds the run options and the seed
    // too) and the standalone concurrency limiters' (a scenario's Limit is one flat table).
    auto* t = new std::vector<const AnySchema*>;
    const AnySchema* roots[] = {&ScenarioSchema(), &AimdSchema(), &VegasSchema(),
                                &Gradient2Schema(), &EnvoyGradientSchema()};
    for (const AnySchema* root : roots) Collect(*root, t);
    t->erase(t->begin());
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
        for (const AnySchema* t : Tables()) out[py::str(t->class_name)] = DescribeAny(*t);
        return out;
      },
      "Every config's field table: {class name: [{name, kind, unit, default, lo, hi, lo_open, "
      "hi_open, choices, optional, required, types, doc}, ...]}.");
  m.def(
      "config_tags",
      [] {
        py::dict out;
        for (const AnySchema* t : Tables()) {
          if (!t->tag.empty()) out[py::str(t->class_name)] = t->tag;
        }
        return out;
      },
      "The \"type\" tag of each config class whose dict form carries one: {class name: tag}.");
  m.def(
      "check_config",
      [](std::string_view name, py::handle d) {
        for (const AnySchema* t : Tables()) {
          if (t->class_name != name) continue;
          const std::shared_ptr<void> config = t->make();
          ReadAny(d, "", *t, config.get());
          ThrowIfError(ValidateAny("", *t, config.get()));
          return WriteAny(*t, config.get());
        }
        throw py::key_error(absl::StrFormat("no field table for %s", name));
      },
      py::arg("name"), py::arg("fields"),
      "Checks a config's fields (a dict) against its table and rules (ValueError names the "
      "field, the allowed range and the value); returns them as read back from the native "
      "struct.");
}

}  // namespace rlab::bindings
