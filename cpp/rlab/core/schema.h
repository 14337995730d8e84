#ifndef RLAB_CORE_SCHEMA_H_
#define RLAB_CORE_SCHEMA_H_

// The one declaration of a configuration's fields (issue #11). A config struct keeps its typed
// members and their defaults; beside it, a table of FieldSpec says for each member its Python
// name, kind, allowed range, unit and one line of doc. Everything else is derived from that
// table: the range checks (ValidateFields), the bindings' dict reader and writer, the schema
// exported to Python (`_core.config_schema()`), the Python dataclasses' checks, and the checks
// that tie the dataclasses, the stubs and the reference docs to the table (tests).
//
//   inline constexpr FieldSpec<BreakerConfig> kBreakerFields[] = {
//       schema::Seconds<&BreakerConfig::open_for_ns>("open_for", 0, kMaxDurationS,
//           Bound::kOpen, Bound::kClosed, "seconds open before the next admission probes"),
//       ...};
//
// The default of a field is the default-constructed struct's member.

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "rlab/core/validate.h"

namespace rlab {

// How a field is held in C++ and read from Python.
enum class FieldKind : uint8_t {
  kInt,      // an integer member (int, int64_t), a Python int
  kReal,     // a double, a Python float
  kSeconds,  // an int64_t of nanoseconds, a Python float of seconds
  kBool,     // a bool
  kChoice,   // an enum with values 0..n-1, a Python string among `choices`
};

// "int", "real", "seconds", "bool" or "choice".
std::string_view FieldKindName(FieldKind kind);

// What a field is, without its accessors (shared by every config type).
struct FieldInfo {
  std::string_view name;  // the Python attribute and the dict key
  FieldKind kind = FieldKind::kReal;
  // The allowed range: reals and seconds in `lo`/`hi` (seconds for kSeconds), integers in
  // `int_lo`/`int_hi`. Integers are always closed intervals.
  double lo = 0.0;
  double hi = 0.0;
  Bound lo_bound = Bound::kClosed;
  Bound hi_bound = Bound::kClosed;
  int64_t int_lo = 0;
  int64_t int_hi = 0;
  absl::Span<const std::string_view> choices;  // kChoice: the names of the values 0..n-1
  std::string_view unit;                       // "s", "calls", "" ...
  std::string_view doc;                        // one line
  // An optional field (Python `x | None`): the member holds `none_int` (integer-like kinds) or
  // `none_real` (reals) for None, a value outside the range so that no legal value is taken
  // for it. Set by schema::OrNone.
  bool optional = false;
  int64_t none_int = 0;
  double none_real = 0.0;
};

// Whether a field's raw value is its None sentinel.
inline bool IsNoneInt(const FieldInfo& f, int64_t v) { return f.optional && v == f.none_int; }
inline bool IsNoneReal(const FieldInfo& f, double v) { return f.optional && v == f.none_real; }

// A field and how to read and write it in a `Config`. Integer-like kinds (int, seconds as
// nanoseconds, bool, choice index) go through get_int/set_int, reals through get_real/set_real.
template <typename Config>
struct FieldSpec {
  FieldInfo info;
  int64_t (*get_int)(const Config&) = nullptr;
  void (*set_int)(Config&, int64_t) = nullptr;
  double (*get_real)(const Config&) = nullptr;
  void (*set_real)(Config&, double) = nullptr;
};

// A config's table and the Python class it backs.
template <typename Config>
struct ConfigSchema {
  std::string_view class_name;
  absl::Span<const FieldSpec<Config>> fields;
};

// Range checks of one value against its field, worded as rlab/core/validate.h words them
// ("open_for must be a finite number in (0, 1e+06], got -1").
absl::Status CheckIntField(const FieldInfo& f, int64_t value);
absl::Status CheckRealField(const FieldInfo& f, double value);
// Seconds given as nanoseconds: compared in nanoseconds (so the documented maximum passes), the
// message in seconds like the Python parameter.
absl::Status CheckNsField(const FieldInfo& f, int64_t ns);
absl::Status CheckChoiceField(const FieldInfo& f, int64_t index);

// Checks every field of `config` against its range; the first error, or OK.
template <typename Config>
absl::Status ValidateFields(const ConfigSchema<Config>& schema, const Config& config) {
  for (const FieldSpec<Config>& f : schema.fields) {
    absl::Status s;
    if (f.info.kind == FieldKind::kReal ? IsNoneReal(f.info, f.get_real(config))
                                        : IsNoneInt(f.info, f.get_int(config))) {
      continue;
    }
    switch (f.info.kind) {
      case FieldKind::kInt:
        s = CheckIntField(f.info, f.get_int(config));
        break;
      case FieldKind::kReal:
        s = CheckRealField(f.info, f.get_real(config));
        break;
      case FieldKind::kSeconds:
        s = CheckNsField(f.info, f.get_int(config));
        break;
      case FieldKind::kChoice:
        s = CheckChoiceField(f.info, f.get_int(config));
        break;
      case FieldKind::kBool:
        break;
    }
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// `status` with its message re-rooted under `path` ("path.<message>"); OK stays OK, and an
// empty path leaves the message as it is.
absl::Status AtPath(std::string_view path, const absl::Status& status);

// ValidateFields, then the config's cross-field `rules` (may be null), the message under `path`.
template <typename Config>
absl::Status ValidateAt(std::string_view path, const ConfigSchema<Config>& schema,
                        const Config& config, absl::Status (*rules)(const Config&) = nullptr) {
  absl::Status s = ValidateFields(schema, config);
  if (s.ok() && rules != nullptr) s = rules(config);
  return AtPath(path, s);
}

// Builders of table rows from a member pointer: `schema::Int<&C::member>(...)`.
namespace schema {

template <auto Member>
struct MemberOf;
template <typename C, typename T, T C::* M>
struct MemberOf<M> {
  using Class = C;
  using Type = T;
};

template <auto M, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec<C> Int(std::string_view name, int64_t lo, int64_t hi, std::string_view unit,
                           std::string_view doc) {
  FieldSpec<C> f;
  f.info.name = name;
  f.info.kind = FieldKind::kInt;
  f.info.int_lo = lo;
  f.info.int_hi = hi;
  f.info.lo = static_cast<double>(lo);
  f.info.hi = static_cast<double>(hi);
  f.info.unit = unit;
  f.info.doc = doc;
  f.get_int = [](const C& c) -> int64_t { return c.*M; };
  f.set_int = [](C& c, int64_t v) { c.*M = static_cast<typename MemberOf<M>::Type>(v); };
  return f;
}

template <auto M, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec<C> Real(std::string_view name, double lo, double hi, Bound lo_bound,
                            Bound hi_bound, std::string_view unit, std::string_view doc) {
  FieldSpec<C> f;
  f.info.name = name;
  f.info.kind = FieldKind::kReal;
  f.info.lo = lo;
  f.info.hi = hi;
  f.info.lo_bound = lo_bound;
  f.info.hi_bound = hi_bound;
  f.info.unit = unit;
  f.info.doc = doc;
  f.get_real = [](const C& c) -> double { return c.*M; };
  f.set_real = [](C& c, double v) { c.*M = v; };
  return f;
}

// A real member `Inner` of the struct member `Outer` (a nested params struct), flat in Python.
template <auto Outer, auto Inner, typename C = typename MemberOf<Outer>::Class>
constexpr FieldSpec<C> RealIn(std::string_view name, double lo, double hi, Bound lo_bound,
                              Bound hi_bound, std::string_view unit, std::string_view doc) {
  FieldSpec<C> f;
  f.info.name = name;
  f.info.kind = FieldKind::kReal;
  f.info.lo = lo;
  f.info.hi = hi;
  f.info.lo_bound = lo_bound;
  f.info.hi_bound = hi_bound;
  f.info.unit = unit;
  f.info.doc = doc;
  f.get_real = [](const C& c) -> double { return (c.*Outer).*Inner; };
  f.set_real = [](C& c, double v) { (c.*Outer).*Inner = v; };
  return f;
}

// A duration held as int64_t nanoseconds; `lo`/`hi` in seconds.
template <auto M, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec<C> Seconds(std::string_view name, double lo, double hi, Bound lo_bound,
                               Bound hi_bound, std::string_view doc) {
  FieldSpec<C> f;
  f.info.name = name;
  f.info.kind = FieldKind::kSeconds;
  f.info.lo = lo;
  f.info.hi = hi;
  f.info.lo_bound = lo_bound;
  f.info.hi_bound = hi_bound;
  f.info.unit = "s";
  f.info.doc = doc;
  f.get_int = [](const C& c) -> int64_t { return c.*M; };
  f.set_int = [](C& c, int64_t v) { c.*M = v; };
  return f;
}

template <auto M, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec<C> Flag(std::string_view name, std::string_view doc) {
  FieldSpec<C> f;
  f.info.name = name;
  f.info.kind = FieldKind::kBool;
  f.info.int_hi = 1;
  f.info.hi = 1;
  f.info.doc = doc;
  f.get_int = [](const C& c) -> int64_t { return (c.*M) ? 1 : 0; };
  f.set_int = [](C& c, int64_t v) { c.*M = v != 0; };
  return f;
}

// An enum member whose values are 0..n-1, named by `names` in that order.
template <auto M, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec<C> Choice(std::string_view name, absl::Span<const std::string_view> names,
                              std::string_view doc) {
  FieldSpec<C> f;
  f.info.name = name;
  f.info.kind = FieldKind::kChoice;
  f.info.choices = names;
  f.info.int_hi = static_cast<int64_t>(names.size()) - 1;
  f.info.hi = static_cast<double>(f.info.int_hi);
  f.info.doc = doc;
  f.get_int = [](const C& c) -> int64_t { return static_cast<int64_t>(c.*M); };
  f.set_int = [](C& c, int64_t v) { c.*M = static_cast<typename MemberOf<M>::Type>(v); };
  return f;
}

// `field` made optional: None is held as `none` in the member (nanoseconds for seconds), a
// value the field's range excludes.
template <typename C>
constexpr FieldSpec<C> OrNone(FieldSpec<C> field, double none) {
  field.info.optional = true;
  field.info.none_real = none;
  field.info.none_int = static_cast<int64_t>(none);
  return field;
}

}  // namespace schema
}  // namespace rlab

#endif  // RLAB_CORE_SCHEMA_H_
