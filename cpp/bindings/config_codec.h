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

#include "common.h"
#include "rlab/core/schema.h"

namespace rlab::bindings {

namespace py = pybind11;

// `repr(h)`, cut to 80 characters.
std::string Repr(py::handle h);
// An integer (not bool) in [lo, hi].
int64_t ToInt(py::handle h, const std::string& path, int64_t lo, int64_t hi);

// "path: missing key 'key'" (ValueError).
[[noreturn]] void MissingKey(const std::string& path, std::string_view key);

// Reads a dict holding exactly the schema's fields (an optional nested config's key may be
// missing: None) into `config`, checking each value's type and range and naming `path`; nested
// configs, unions and lists are read through their own tables. A schema with a tag also takes a
// "type" key, which must then be that tag. The rules between fields are the caller's
// (ValidateAny/ValidateAt).
void ReadAny(py::handle h, const std::string& path, const AnySchema& schema, void* config);

// The config as a dict in its Python form (the inverse of ReadAny; `tagged`: with its "type"
// tag, as a nested value is), or with `nanoseconds` what the engines run, for the native config
// dump: seconds fields as integer nanoseconds under "<name>_ns", an optional field's None as its
// sentinel.
py::dict WriteAny(const AnySchema& schema, const void* config, bool nanoseconds = false,
                  bool tagged = false);

// A whole config from a dict (ReadAny): every field checked, the rules not.
template <typename C>
C ReadConfig(py::handle h, const std::string& path, const ConfigSchema<C>& schema) {
  C config;
  ReadAny(h, path, schema, &config);
  return config;
}

// A standalone policy's config from its dict form: read by its field table (each value's type
// and range), then checked with the table's rules, errors under `path`.
template <typename C>
C ReadValid(py::handle h, const std::string& path, const ConfigSchema<C>& schema) {
  C config = ReadConfig(h, path, schema);
  ThrowIfError(ValidateAt(path, schema, config));
  return config;
}

// Binds config_schema() -> {class: [field, ...]} and check_config(class, dict) -> None.
void RegisterConfigSchemas(py::module_& m);

}  // namespace rlab::bindings

#endif  // RLAB_BINDINGS_CONFIG_CODEC_H_
