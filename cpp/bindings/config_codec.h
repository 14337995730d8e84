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

// "path: missing key 'key'" (ValueError).
[[noreturn]] void MissingKey(const std::string& path, std::string_view key);

// A tagged union's value from its dict, whose "type" picks the member (an unknown tag names the
// allowed ones), read by the member's table; and back, with its tag (in both forms).
void ReadUnion(py::handle h, const std::string& path, AnyUnion u, void* value);
py::dict WriteUnion(AnyUnion u, const void* value, bool nanoseconds = false);

// Reads a dict holding exactly the schema's fields (an optional nested config's key may be
// missing: None) into `config`, checking each value's type and range and naming `path`; nested
// configs and lists are read through their own tables. A schema with a tag also takes a "type"
// key, which must then be that tag. The rules between fields are the caller's
// (ValidateAny/ValidateAt).
void ReadAny(py::handle h, const std::string& path, AnySchema schema, void* config);

// The config as a dict in its Python form (the inverse of ReadAny; `tagged`: with its "type"
// tag, as a nested value is), or with `nanoseconds` what the engines run, for the native config
// dump: seconds fields as integer nanoseconds under "<name>_ns", an optional field's None as its
// sentinel.
py::dict WriteAny(AnySchema schema, const void* config, bool nanoseconds = false,
                  bool tagged = false);

// The table for Python: one dict per field (name, kind, unit, default, lo, hi, lo_open, hi_open,
// choices, optional, required, types, doc), the default read from a default-constructed config.
py::list DescribeAny(AnySchema schema);

// A whole config from a dict (ReadAny): every field checked, the rules not.
template <typename C>
C ReadConfig(py::handle h, const std::string& path, const ConfigSchema<C>& schema) {
  C config;
  ReadAny(h, path, Any(schema), &config);
  return config;
}

template <typename C>
py::dict WriteConfig(const ConfigSchema<C>& schema, const C& config, bool nanoseconds = false) {
  return WriteAny(Any(schema), &config, nanoseconds);
}

// Binds config_schema() -> {class: [field, ...]} and check_config(class, dict) -> None.
void RegisterConfigSchemas(py::module_& m);

}  // namespace rlab::bindings

#endif  // RLAB_BINDINGS_CONFIG_CODEC_H_
