#ifndef RLAB_BINDINGS_CONFIG_CODEC_H_
#define RLAB_BINDINGS_CONFIG_CODEC_H_

// A config's dict form read and written through its field table (rlab/core/schema.h): the one
// generic codec the scenario reader, the standalone policies' constructors and
// `_core.check_config` share. Reading checks each value's type and range as it goes and names
// the dotted path ("payment.breaker.open_for must be a finite number in (0, 1e+06], got -1").

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rlab/core/clock.h"
#include "rlab/core/schema.h"

namespace rlab::bindings {

namespace py = pybind11;

// `repr(h)`, cut to 80 characters.
std::string Repr(py::handle h);
// "path.key", or "key" at the top.
std::string JoinPath(std::string_view path, std::string_view key);
// A number (int or float, not bool), as a double; `path` names it in errors.
double ToDouble(py::handle h, const std::string& path);
// An integer (not bool) in [lo, hi].
int64_t ToInt(py::handle h, const std::string& path, int64_t lo, int64_t hi);

// One field's Python value, type- and range-checked against `f`: integer-like kinds (int,
// seconds -> nanoseconds, bool, choice index) as int64, reals as double.
int64_t ReadIntLike(py::handle v, const FieldInfo& f, const std::string& path);
double ReadReal(py::handle v, const FieldInfo& f, const std::string& path);
// A field's value in its Python form (seconds for nanoseconds, a name for a choice index).
py::object IntLikeToPy(const FieldInfo& f, int64_t v);

[[noreturn]] void MissingKey(const std::string& path, std::string_view key);

// The dict `h` must hold exactly `names` as keys; raises naming `path` otherwise.
// `extra` keys (such as a union's "type" tag) are allowed and left to the caller.
void CheckKeys(py::handle h, const std::string& path, absl::Span<const std::string_view> names,
               absl::Span<const std::string_view> extra = {});

// Reads every field of `schema` from the dict `d` into `config`.
template <typename C>
void ReadFields(const py::dict& d, const std::string& path, const ConfigSchema<C>& schema,
                C& config) {
  for (const FieldSpec<C>& f : schema.fields) {
    PyObject* v = PyDict_GetItemString(d.ptr(), f.info.name.data());
    if (v == nullptr) MissingKey(path, f.info.name);
    const std::string at = JoinPath(path, f.info.name);
    if (f.info.optional && v == Py_None) {
      if (f.info.kind == FieldKind::kReal) {
        f.set_real(config, f.info.none_real);
      } else {
        f.set_int(config, f.info.none_int);
      }
    } else if (f.info.kind == FieldKind::kReal) {
      f.set_real(config, ReadReal(v, f.info, at));
    } else {
      f.set_int(config, ReadIntLike(v, f.info, at));
    }
  }
}

// The names of a schema's fields (in table order).
template <typename C>
std::vector<std::string_view> FieldNames(const ConfigSchema<C>& schema) {
  std::vector<std::string_view> names;
  for (const FieldSpec<C>& f : schema.fields) names.push_back(f.info.name);
  return names;
}

// A whole config from a dict holding exactly the schema's fields (no other key), every field
// checked; the cross-field rules are the caller's (the policy's Validate...Rules).
template <typename C>
C ReadConfig(py::handle h, const std::string& path, const ConfigSchema<C>& schema,
             absl::Span<const std::string_view> extra = {}) {
  CheckKeys(h, path, FieldNames(schema), extra);
  C config;
  ReadFields(py::reinterpret_borrow<py::dict>(h), path, schema, config);
  return config;
}

// One field's value in its Python form (None for an optional field's sentinel).
template <typename C>
py::object FieldToPy(const FieldSpec<C>& f, const C& config) {
  if (f.info.kind == FieldKind::kReal) {
    const double v = f.get_real(config);
    return IsNoneReal(f.info, v) ? py::object(py::none()) : py::object(py::float_(v));
  }
  const int64_t v = f.get_int(config);
  return IsNoneInt(f.info, v) ? py::object(py::none()) : IntLikeToPy(f.info, v);
}

// The config as a dict in its Python form (the inverse of ReadConfig), or with `nanoseconds`
// what the engines run, for the native config dump: seconds fields as integer nanoseconds under
// "<name>_ns", an optional field's None as its sentinel.
template <typename C>
py::dict WriteConfig(const ConfigSchema<C>& schema, const C& config, bool nanoseconds = false) {
  py::dict d;
  for (const FieldSpec<C>& f : schema.fields) {
    const std::string_view name = f.info.name;
    if (nanoseconds && f.info.kind == FieldKind::kSeconds) {
      d[py::str(std::string(name) + "_ns")] = f.get_int(config);
    } else if (nanoseconds && f.info.kind == FieldKind::kReal) {
      d[py::str(name.data(), name.size())] = f.get_real(config);
    } else {
      d[py::str(name.data(), name.size())] = FieldToPy(f, config);
    }
  }
  return d;
}

// The table for Python: one dict per field (name, kind, unit, default, lo, hi, lo_open, hi_open,
// choices, optional, doc), the default read from a default-constructed C.
py::dict DescribeField(const FieldInfo& f, py::object default_value);
template <typename C>
py::list DescribeSchema(const ConfigSchema<C>& schema) {
  py::list out;
  const C defaults{};
  for (const FieldSpec<C>& f : schema.fields)
    out.append(DescribeField(f.info, FieldToPy(f, defaults)));
  return out;
}

// Binds config_schema() -> {class: [field, ...]} and check_config(class, dict) -> None.
void RegisterConfigSchemas(py::module_& m);

}  // namespace rlab::bindings

#endif  // RLAB_BINDINGS_CONFIG_CODEC_H_
