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

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

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
  kString,   // a std::string, a Python str
  kStrings,  // a set of names held in any form (get_strs/set_strs), a Python tuple of str
  // The nested kinds (IsNested), reached through count/item/add/reset:
  kConfig,  // a nested config with its own table (`std::optional<T>` for `T | None`)
  kUnion,   // a tagged union of tables (`"type"` picks the member's table)
  // The lists (IsList):
  kList,         // a std::vector of nested configs, a Python tuple (`phases[2]`, `phases[name]`)
  kUnionList,    // a std::vector of tagged union values, a Python tuple (`components[1]`)
  kRealList,     // a std::vector<double>, a Python tuple of floats (paths `weights[2]`)
  kSecondsList,  // a std::vector<int64_t> of nanoseconds, a Python tuple of seconds
};

// "int", "real", "seconds", "bool", "choice", "string", "config", "list" ...
std::string_view FieldKindName(FieldKind kind);

// What a field is, without its accessors (shared by every config type).
struct FieldInfo {
  std::string_view name = {};  // the Python attribute and the dict key
  FieldKind kind = FieldKind::kReal;
  // The allowed range: reals and seconds in `lo`/`hi` (seconds for kSeconds), integers in
  // `int_lo`/`int_hi`. Integers are always closed intervals.
  double lo = 0.0;
  double hi = 0.0;
  Bound lo_bound = Bound::kClosed;
  Bound hi_bound = Bound::kClosed;
  std::string_view unit = {};  // "s", "calls", "" ...
  std::string_view doc = {};   // one line
  int64_t int_lo = 0;
  int64_t int_hi = 0;
  absl::Span<const std::string_view> choices = {};  // kChoice: the names of the values 0..n-1
  // An optional field (Python `x | None`): the member holds `none_int` (integer-like kinds) or
  // `none_real` (reals) for None, a value outside the range so that no legal value is taken
  // for it. Set by schema::OrNone.
  bool optional = false;
  int64_t none_int = 0;
  double none_real = 0.0;
  // The Python field has no default (a required constructor argument).
  bool required = false;
  // kConfig, kList: the nested table's class name; kUnion, kUnionList: the union's name.
  std::string_view type = {};
  // kList: an element is named in paths by its `name` when that is non-empty and unique among
  // the elements (`phases[outage]`), else by its index (`phases[2]`).
  bool by_name = false;
  // kList by name: the element's path is its bare name (`payment.breaker`, the scenario's own
  // dependencies), not `dependencies[payment]`.
  bool bare = false;
};

// Whether a field's values are reached through count/item/add/reset (configs, unions, lists of
// them or of numbers), and whether it is a list of them.
inline bool IsNested(FieldKind k) { return k >= FieldKind::kConfig; }
inline bool IsList(FieldKind k) { return k >= FieldKind::kList; }

// Whether a field's raw value is its None sentinel.
inline bool IsNoneInt(const FieldInfo& f, int64_t v) { return f.optional && v == f.none_int; }
inline bool IsNoneReal(const FieldInfo& f, double v) {
  return f.optional && (v == f.none_real || (std::isnan(f.none_real) && std::isnan(v)));
}

struct SchemaOps;
struct UnionOps;

// A config's table with its type erased, for walking nested configs generically (validation
// here, the dict codec in the bindings): `Any(schema)`.
struct AnySchema {
  const void* schema = nullptr;  // the ConfigSchema<C>
  const SchemaOps* ops = nullptr;
  std::string_view class_name, tag;  // the table's
  size_t size = 0;                   // its number of fields
};

// A tagged union with its type erased: its members' tables, over one struct (`AnyOf(u)`).
struct AnyUnion {
  const void* u = nullptr;  // the UnionSchema<T>
  const UnionOps* ops = nullptr;
};

// A field and how to read and write it in a `Config`. Integer-like kinds (int, seconds as
// nanoseconds, bool, choice index) go through get_int/set_int, reals through get_real/set_real.
template <typename Config>
struct FieldSpec {
  FieldInfo info;
  int64_t (*get_int)(const Config&) = nullptr;
  void (*set_int)(Config&, int64_t) = nullptr;
  double (*get_real)(const Config&) = nullptr;
  void (*set_real)(Config&, double) = nullptr;
  // kString.
  std::string_view (*get_str)(const Config&) = nullptr;
  void (*set_str)(Config&, std::string_view) = nullptr;
  // kConfig, kList, kUnion: the nested values, type-erased. `count` is 0 or 1 for a config (0:
  // an optional one is None), the length of a list; `item(c, k)` the k-th; `add` the member
  // (an optional one emplaced) or a new element appended; `reset` None / an empty list.
  size_t (*count)(const Config&) = nullptr;
  const void* (*item)(const Config&, size_t) = nullptr;
  void* (*add)(Config&) = nullptr;
  void (*reset)(Config&) = nullptr;
  AnySchema (*inner)() = nullptr;  // kConfig, kList: the nested table
  // kStrings: the names, and setting them (an unknown name is an error naming `path`).
  std::vector<std::string> (*get_strs)(const Config&) = nullptr;
  absl::Status (*set_strs)(Config&, const std::vector<std::string>&,
                           std::string_view path) = nullptr;
  // kUnion, kUnionList: the union's members. (The list kinds' elements, a double or int64_t
  // nanoseconds for kRealList and kSecondsList, are reached by `item` and `add` as a list's.)
  AnyUnion (*members)() = nullptr;
};

// A config's table and the Python class it backs. `tag`: the `"type"` key its dict form carries
// (a union's member, such as a Phase), empty for none; `rules`: its checks between fields, run
// after the table's (and by ValidateAt for a nested config).
template <typename Config>
struct ConfigSchema {
  std::string_view class_name;
  absl::Span<const FieldSpec<Config>> fields;
  std::string_view tag = {};
  absl::Status (*rules)(const Config&) = nullptr;
};

// The operations of one config type's table, reached through AnySchema (void* configs).
struct SchemaOps {
  const FieldInfo& (*info)(const void* schema, size_t i);
  int64_t (*get_int)(const void* schema, size_t i, const void* config);
  void (*set_int)(const void* schema, size_t i, void* config, int64_t v);
  double (*get_real)(const void* schema, size_t i, const void* config);
  void (*set_real)(const void* schema, size_t i, void* config, double v);
  std::string_view (*get_str)(const void* schema, size_t i, const void* config);
  void (*set_str)(const void* schema, size_t i, void* config, std::string_view v);
  size_t (*count)(const void* schema, size_t i, const void* config);
  const void* (*item)(const void* schema, size_t i, const void* config, size_t k);
  void* (*add)(const void* schema, size_t i, void* config);
  void (*reset)(const void* schema, size_t i, void* config);
  AnySchema (*inner)(const void* schema, size_t i);
  absl::Status (*rules)(const void* schema, const void* config);
  std::shared_ptr<void> (*make)();  // a default-constructed config (for the defaults)
  std::vector<std::string> (*get_strs)(const void* schema, size_t i, const void* config);
  absl::Status (*set_strs)(const void* schema, size_t i, void* config,
                           const std::vector<std::string>& v, std::string_view path);
  AnyUnion (*members)(const void* schema, size_t i);
};

// A tagged union declared as its members (issue #11): each a table over the same struct `T`
// (its class name and `"type"` tag in the table) and the value of `T::kind` it stands for.
template <typename T>
struct UnionMember {
  const ConfigSchema<T>& (*schema)();
  decltype(T::kind) kind;
};
template <typename T>
struct UnionSchema {
  std::string_view name;  // "Latency", "Arrivals"
  absl::Span<const UnionMember<T>> members;
};

// The operations of one union type, reached through AnyUnion (void* values).
struct UnionOps {
  size_t (*size)(const void* u);
  AnySchema (*member)(const void* u, size_t k);
  // The value's member (`size` if none), and a default value made of member k.
  size_t (*which)(const void* u, const void* value);
  void (*assign)(const void* u, size_t k, void* value);
  // Where member k's config lives in the value: the value itself for a union over one struct;
  // for a union held in one optional member per class (a dependency's budget), that member.
  const void* (*view)(const void* u, size_t k, const void* value);
  void* (*slot)(const void* u, size_t k, void* value);
};

namespace schema_internal {

template <typename C>
const ConfigSchema<C>& Table(const void* s) {
  return *static_cast<const ConfigSchema<C>*>(s);
}

// Calls the accessor `F` of row i of the table `s` on the config `c`, typed again (const or not,
// as it is given), with the other arguments.
template <typename C, auto F>
inline constexpr auto kCall = [](const void* s, size_t i, auto* c, auto... args) {
  using Typed = std::conditional_t<std::is_const_v<std::remove_pointer_t<decltype(c)>>, const C, C>;
  return (Table<C>(s).fields[i].*F)(*static_cast<Typed*>(c), args...);
};

template <typename C>
inline constexpr SchemaOps kOps = {
    [](const void* s, size_t i) -> const FieldInfo& { return Table<C>(s).fields[i].info; },
    kCall<C, &FieldSpec<C>::get_int>,
    kCall<C, &FieldSpec<C>::set_int>,
    kCall<C, &FieldSpec<C>::get_real>,
    kCall<C, &FieldSpec<C>::set_real>,
    kCall<C, &FieldSpec<C>::get_str>,
    kCall<C, &FieldSpec<C>::set_str>,
    kCall<C, &FieldSpec<C>::count>,
    kCall<C, &FieldSpec<C>::item>,
    kCall<C, &FieldSpec<C>::add>,
    kCall<C, &FieldSpec<C>::reset>,
    [](const void* s, size_t i) { return Table<C>(s).fields[i].inner(); },
    [](const void* s, const void* c) {
      const auto rules = Table<C>(s).rules;
      return rules == nullptr ? absl::OkStatus() : rules(*static_cast<const C*>(c));
    },
    []() -> std::shared_ptr<void> { return std::make_shared<C>(); },
    kCall<C, &FieldSpec<C>::get_strs>,
    kCall<C, &FieldSpec<C>::set_strs>,
    [](const void* s, size_t i) { return Table<C>(s).fields[i].members(); },
};

}  // namespace schema_internal

template <typename C>
AnySchema Any(const ConfigSchema<C>& schema) {
  return {&schema, &schema_internal::kOps<C>, schema.class_name, schema.tag, schema.fields.size()};
}

namespace schema_internal {

template <typename T>
const UnionSchema<T>& Un(const void* u) {
  return *static_cast<const UnionSchema<T>*>(u);
}

template <typename T>
inline constexpr UnionOps kUnionOps = {
    [](const void* u) { return Un<T>(u).members.size(); },
    [](const void* u, size_t k) { return Any(Un<T>(u).members[k].schema()); },
    [](const void* u, const void* v) {
      const auto& members = Un<T>(u).members;
      size_t k = 0;
      while (k < members.size() && members[k].kind != static_cast<const T*>(v)->kind) ++k;
      return k;
    },
    [](const void* u, size_t k, void* v) {
      *static_cast<T*>(v) = T{};
      static_cast<T*>(v)->kind = Un<T>(u).members[k].kind;
    },
    [](const void*, size_t, const void* v) { return v; },
    [](const void*, size_t, void* v) { return v; },
};

}  // namespace schema_internal

template <typename T>
AnyUnion AnyOf(const UnionSchema<T>& u) {
  return AnyUnion{&u, &schema_internal::kUnionOps<T>};
}

// How the k-th element of a nested field is named in paths: a config or a union by the field's
// name; a list's "phases[outage]" when its name is non-empty and unique among `names` (and the
// field names elements by name), else "phases[2]".
std::string ElementLabel(const FieldInfo& f, const std::vector<std::string>& names, size_t k);

// Range checks of one value of `f` named `name` (its path), worded as rlab/core/validate.h words
// them ("open_for must be a finite number in (0, 1e+06], got -1"): an integer, a choice's index
// or nanoseconds (compared in nanoseconds, so the documented maximum passes; worded in seconds
// like the Python parameter); a real.
absl::Status CheckIntField(const FieldInfo& f, std::string_view name, int64_t v);
absl::Status CheckRealField(const FieldInfo& f, std::string_view name, double v);
// "mode must be one of 'a', 'b', got <got>".
absl::Status ChoiceError(const FieldInfo& f, std::string_view name, std::string_view got);

// Checks every field of `config` against its range, nested configs included (each with its own
// rules, the message under its path: "capacity.max_queue ..."); the first error, or OK.
absl::Status ValidateRows(AnySchema schema, const void* config);

template <typename Config>
absl::Status ValidateFields(const ConfigSchema<Config>& schema, const Config& config) {
  return ValidateRows(Any(schema), &config);
}

// ValidateRows, then the schema's own rules, the message under `path`.
absl::Status ValidateAny(std::string_view path, AnySchema schema, const void* config);

// ValidateAny with the table of the value's member of the union.
absl::Status ValidateUnion(std::string_view path, AnyUnion u, const void* value);

// `status` with its message re-rooted under `path` ("path.<message>"); OK stays OK, and an
// empty path leaves the message as it is.
absl::Status AtPath(std::string_view path, const absl::Status& status);

// ValidateFields, then the config's cross-field `rules` (null: the schema's own), the message
// under `path`.
template <typename Config>
absl::Status ValidateAt(std::string_view path, const ConfigSchema<Config>& schema,
                        const Config& config, absl::Status (*rules)(const Config&) = nullptr) {
  if (rules == nullptr) return ValidateAny(path, Any(schema), &config);
  absl::Status s = ValidateFields(schema, config);
  if (s.ok()) s = rules(config);
  return AtPath(path, s);
}

// Builders of table rows from a member pointer: `schema::Int<&C::member>(...)`.
namespace schema {

template <auto Member>
struct MemberOf;
template <typename C, typename T, T C::*M>
struct MemberOf<M> {
  using Class = C;
  using Type = T;
};

// A row of `kind` without accessors; the builders below add them.
template <typename C>
constexpr FieldSpec<C> Row(std::string_view name, FieldKind kind, std::string_view doc,
                           double lo = 0, double hi = 0, Bound lo_bound = Bound::kClosed,
                           Bound hi_bound = Bound::kClosed, std::string_view unit = "") {
  FieldSpec<C> f;
  f.info = {name, kind, lo, hi, lo_bound, hi_bound, unit, doc};
  return f;
}

// `f` reading and writing the integer-like member `c.*M` (an integer, nanoseconds, a bool or an
// enum's index) through int64_t.
template <auto M, typename C>
constexpr FieldSpec<C> IntAccess(FieldSpec<C> f) {
  f.get_int = [](const C& c) { return static_cast<int64_t>(c.*M); };
  f.set_int = [](C& c, int64_t v) { c.*M = static_cast<typename MemberOf<M>::Type>(v); };
  return f;
}

// `f` reading and writing the double `c.*M` (or `(c.*M1).*M2` for a nested params struct).
template <typename C, auto... Ms>
constexpr FieldSpec<C> RealAccess(FieldSpec<C> f) {
  f.get_real = [](const C& c) -> double { return (c.*....*Ms); };
  f.set_real = [](C& c, double v) { (c.*....*Ms) = v; };
  return f;
}

// `f` reaching the nested values of the member `c.*M`: a T (always one), a std::optional<T>
// (None when empty) or a std::vector<T> (a list). `count` is 0 or 1 for a config, a list's
// length; `add` the member (an optional one emplaced) or a new element appended; `reset` None,
// the default or an empty list.
template <auto M, typename C>
constexpr FieldSpec<C> NestedAccess(FieldSpec<C> f) {
  using T = typename MemberOf<M>::Type;
  constexpr bool kOptional = requires(T t) { t.has_value(); };
  f.info.optional = kOptional;
  if constexpr (kOptional) {
    f.count = [](const C& c) -> size_t { return (c.*M).has_value() ? 1 : 0; };
    f.item = [](const C& c, size_t) -> const void* { return &*(c.*M); };
    f.add = [](C& c) -> void* { return &(c.*M).emplace(); };
  } else if constexpr (requires(T t) { t.emplace_back(); }) {
    f.count = [](const C& c) -> size_t { return (c.*M).size(); };
    f.item = [](const C& c, size_t k) -> const void* { return &(c.*M)[k]; };
    f.add = [](C& c) -> void* { return &(c.*M).emplace_back(); };
  } else {
    f.count = [](const C&) -> size_t { return 1; };
    f.item = [](const C& c, size_t) -> const void* { return &(c.*M); };
    f.add = [](C& c) -> void* { return &(c.*M); };
  }
  f.reset = [](C& c) { c.*M = T{}; };
  return f;
}

template <auto M, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec<C> Int(std::string_view name, int64_t lo, int64_t hi, std::string_view unit,
                           std::string_view doc) {
  FieldSpec<C> f = Row<C>(name, FieldKind::kInt, doc, lo, hi, Bound::kClosed, Bound::kClosed, unit);
  f.info.int_lo = lo;
  f.info.int_hi = hi;
  return IntAccess<M>(f);
}

template <auto M, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec<C> Real(std::string_view name, double lo, double hi, Bound lo_bound,
                            Bound hi_bound, std::string_view unit, std::string_view doc) {
  return RealAccess<C, M>(Row<C>(name, FieldKind::kReal, doc, lo, hi, lo_bound, hi_bound, unit));
}

// A real member `Inner` of the struct member `Outer` (a nested params struct), flat in Python.
template <auto Outer, auto Inner, typename C = typename MemberOf<Outer>::Class>
constexpr FieldSpec<C> RealIn(std::string_view name, double lo, double hi, Bound lo_bound,
                              Bound hi_bound, std::string_view unit, std::string_view doc) {
  return RealAccess<C, Outer, Inner>(
      Row<C>(name, FieldKind::kReal, doc, lo, hi, lo_bound, hi_bound, unit));
}

// A duration held as int64_t nanoseconds; `lo`/`hi` in seconds.
template <auto M, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec<C> Seconds(std::string_view name, double lo, double hi, Bound lo_bound,
                               Bound hi_bound, std::string_view doc) {
  return IntAccess<M>(Row<C>(name, FieldKind::kSeconds, doc, lo, hi, lo_bound, hi_bound, "s"));
}

template <auto M, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec<C> Flag(std::string_view name, std::string_view doc) {
  return IntAccess<M>(Row<C>(name, FieldKind::kBool, doc, 0, 1));
}

// An enum member whose values are 0..n-1, named by `names` in that order.
template <auto M, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec<C> Choice(std::string_view name, absl::Span<const std::string_view> names,
                              std::string_view doc) {
  FieldSpec<C> f = Row<C>(name, FieldKind::kChoice, doc, 0, static_cast<double>(names.size()) - 1);
  f.info.choices = names;
  return IntAccess<M>(f);
}

// A string member.
template <auto M, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec<C> String(std::string_view name, std::string_view doc) {
  FieldSpec<C> f = Row<C>(name, FieldKind::kString, doc);
  f.get_str = [](const C& c) -> std::string_view { return c.*M; };
  f.set_str = [](C& c, std::string_view v) { c.*M = std::string(v); };
  return f;
}

// A nested config (`T` or `std::optional<T>`, Python `T` or `T | None`) with its own table,
// `Schema()`; read, written and validated through that table and its rules.
template <auto M, auto Schema, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec<C> Config(std::string_view name, std::string_view doc) {
  FieldSpec<C> f = Row<C>(name, FieldKind::kConfig, doc);
  f.info.type = Schema().class_name;
  f.inner = [] { return Any(Schema()); };
  return NestedAccess<M>(f);
}

// The element `I` of an array member (`std::array<T, n>`) as a nested config of its own name.
template <auto M, size_t I, auto Schema, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec<C> ConfigAt(std::string_view name, std::string_view doc) {
  FieldSpec<C> f = Row<C>(name, FieldKind::kConfig, doc);
  f.info.type = Schema().class_name;
  f.count = [](const C&) -> size_t { return 1; };
  f.item = [](const C& c, size_t) -> const void* { return &(c.*M)[I]; };
  f.add = [](C& c) -> void* { return &(c.*M)[I]; };
  f.reset = [](C& c) { (c.*M)[I] = {}; };
  f.inner = [] { return Any(Schema()); };
  return f;
}

// A list of nested configs (`std::vector<T>`, Python a tuple of T); `by_name`: elements named in
// paths by their unique `name` (see ElementLabel).
template <auto M, auto Schema, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec<C> List(std::string_view name, bool by_name, std::string_view doc) {
  FieldSpec<C> f = Config<M, Schema>(name, doc);
  f.info.kind = FieldKind::kList;
  f.info.by_name = by_name;
  return f;
}

// `list` (a List by name) with its elements named by their bare name in paths.
template <typename C>
constexpr FieldSpec<C> Bare(FieldSpec<C> list) {
  list.info.by_name = list.info.bare = true;
  return list;
}

// A tagged union (`T` or `std::optional<T>`) whose members `Union()` declares; its dict carries
// the member's `"type"` tag, and it is read, written and validated through the member's table.
template <auto M, auto Union, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec<C> OneOf(std::string_view name, std::string_view doc) {
  FieldSpec<C> f = Row<C>(name, FieldKind::kUnion, doc);
  f.info.type = Union().name;
  f.members = [] { return AnyOf(Union()); };
  return NestedAccess<M>(f);
}

// A list of tagged union values (`std::vector<T>`, Python a tuple), elements named by index.
template <auto M, auto Union, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec<C> OneOfList(std::string_view name, std::string_view doc) {
  FieldSpec<C> f = OneOf<M, Union>(name, doc);
  f.info.kind = FieldKind::kUnionList;
  return f;
}

// A list of numbers, each in the interval (paths `weights[2]`): reals (`std::vector<double>`), or
// durations (`std::vector<int64_t>` of nanoseconds; `lo`/`hi` in seconds, `unit` "s").
template <auto M, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec<C> Numbers(std::string_view name, double lo, double hi, Bound lo_bound,
                               Bound hi_bound, std::string_view unit, std::string_view doc) {
  using T = typename MemberOf<M>::Type::value_type;
  static_assert(std::is_same_v<T, double> || std::is_same_v<T, int64_t>);
  constexpr FieldKind kKind =
      std::is_same_v<T, double> ? FieldKind::kRealList : FieldKind::kSecondsList;
  return NestedAccess<M>(Row<C>(name, kKind, doc, lo, hi, lo_bound, hi_bound, unit));
}

// `field` with no default in Python (a required argument); the struct's default stands in C++.
template <typename C>
constexpr FieldSpec<C> Required(FieldSpec<C> field) {
  field.info.required = true;
  return field;
}

// An optional real held as `std::optional<double>`; None (empty) reads as NaN, the field's
// None sentinel, and setting NaN empties it.
template <auto M, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec<C> MaybeReal(std::string_view name, double lo, double hi, Bound lo_bound,
                                 Bound hi_bound, std::string_view unit, std::string_view doc) {
  FieldSpec<C> f = Row<C>(name, FieldKind::kReal, doc, lo, hi, lo_bound, hi_bound, unit);
  f.info.optional = true;
  f.info.none_real = std::numeric_limits<double>::quiet_NaN();
  f.get_real = [](const C& c) { return (c.*M).value_or(std::numeric_limits<double>::quiet_NaN()); };
  f.set_real = [](C& c, double v) { c.*M = std::isnan(v) ? std::nullopt : std::optional(v); };
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

// A set of names (kStrings) read and written by `Get(c)` and `Set(c, names, path)`: a member
// held in its own form (RetryConfig.retryable, an OutcomeSet), a tuple of str in Python.
template <typename C, auto Get, auto Set>
constexpr FieldSpec<C> Strings(std::string_view name, std::string_view doc) {
  FieldSpec<C> f = Row<C>(name, FieldKind::kStrings, doc);
  f.get_strs = Get;
  f.set_strs = Set;
  return f;
}

}  // namespace schema
}  // namespace rlab

// Compact declarations (issue #11: a field declared once, in one line where it fits). A row
// macro names the field after its member, so the Python name cannot drift from the C++ one (a
// duration's member carries `_ns`, its Python name not); `ends` is CC, CO, OC or OO, whether
// `lo` and `hi` are closed (C) or open (O). Rows are written inside RLAB_TABLE (or any scope
// where `C` names the config); a field whose Python name differs uses the builders above.
#define RLAB_ENDS_CC ::rlab::Bound::kClosed, ::rlab::Bound::kClosed
#define RLAB_ENDS_CO ::rlab::Bound::kClosed, ::rlab::Bound::kOpen
#define RLAB_ENDS_OC ::rlab::Bound::kOpen, ::rlab::Bound::kClosed
#define RLAB_ENDS_OO ::rlab::Bound::kOpen, ::rlab::Bound::kOpen
#define RLAB_INT(m, lo, hi, unit, doc) ::rlab::schema::Int<&C::m>(#m, lo, hi, unit, doc)
#define RLAB_REAL(m, lo, hi, ends, unit, doc) \
  ::rlab::schema::Real<&C::m>(#m, lo, hi, RLAB_ENDS_##ends, unit, doc)
#define RLAB_SECONDS(m, lo, hi, ends, doc) \
  ::rlab::schema::Seconds<&C::m##_ns>(#m, lo, hi, RLAB_ENDS_##ends, doc)
#define RLAB_FLAG(m, doc) ::rlab::schema::Flag<&C::m>(#m, doc)
#define RLAB_STRING(m, doc) ::rlab::schema::String<&C::m>(#m, doc)
#define RLAB_CHOICE(m, names, doc) ::rlab::schema::Choice<&C::m>(#m, names, doc)
#define RLAB_CONFIG(m, table, doc) ::rlab::schema::Config<&C::m, &table>(#m, doc)
#define RLAB_LIST(m, table, by_name, doc) ::rlab::schema::List<&C::m, &table>(#m, by_name, doc)
#define RLAB_ONEOF(m, u, doc) ::rlab::schema::OneOf<&C::m, &u>(#m, doc)

// Defines `const ConfigSchema<Type>& fn()`: the table of `Type` (its Python class `name`, its
// "type" `tag` or "", its cross-field `rules` or nullptr) made of the rows that follow, in
// which `C` is `Type`. Ends with a `;` at the call site.
#define RLAB_TABLE(fn, Type, name, tag, rules, ...)                          \
  const ::rlab::ConfigSchema<Type>& fn() {                                   \
    using C = Type;                                                          \
    static const ::rlab::FieldSpec<C> kFields[] = {__VA_ARGS__};             \
    static const ::rlab::ConfigSchema<C> kSchema{name, kFields, tag, rules}; \
    return kSchema;                                                          \
  }                                                                          \
  static_assert(true)

#endif  // RLAB_CORE_SCHEMA_H_
