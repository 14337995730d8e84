#ifndef RLAB_CORE_SCHEMA_H_
#define RLAB_CORE_SCHEMA_H_

// The one declaration of a configuration's fields (issue #11). A config struct keeps its typed
// members and their defaults; beside it, a table of FieldSpec says for each member its Python
// name, kind, allowed range, unit and one line of doc. Everything else is derived from that
// table: the range checks (ValidateFields), the bindings' dict reader and writer, the schema
// exported to Python (`_core.config_schema()`), the Python dataclasses' checks, and the checks
// that tie the dataclasses, the stubs and the reference docs to the table (tests).
//
//   RLAB_TABLE(BreakerSchema, BreakerConfig, "Breaker", "", &ValidateBreakerRules,
//              RLAB_SECONDS(open_for, 0, kMaxDurationS, OC, "seconds open before a probe"),
//              ...);
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

struct AnySchema;
struct AnyUnion;

// A field and how to read and write it in a config, given as `void*` (its table's config type,
// which the row's builder casts back to). Integer-like kinds (int, seconds as nanoseconds, bool,
// choice index) go through get_int/set_int, reals through get_real/set_real. A row is the same
// type for every config, so the validator and the codec walk any table's rows directly.
struct FieldSpec {
  FieldInfo info;
  int64_t (*get_int)(const void*) = nullptr;
  void (*set_int)(void*, int64_t) = nullptr;
  double (*get_real)(const void*) = nullptr;
  void (*set_real)(void*, double) = nullptr;
  // kString.
  std::string_view (*get_str)(const void*) = nullptr;
  void (*set_str)(void*, std::string_view) = nullptr;
  // The nested kinds: `count` is 0 or 1 for a config or a union (0: an optional one is None),
  // the length of a list; `item(c, k)` the k-th; `add` the member (an optional one emplaced) or
  // a new element appended; `reset` None / an empty list. A list of numbers' elements are a
  // double (kRealList) or int64_t nanoseconds (kSecondsList).
  size_t (*count)(const void*) = nullptr;
  const void* (*item)(const void*, size_t) = nullptr;
  void* (*add)(void*) = nullptr;
  void (*reset)(void*) = nullptr;
  const AnySchema& (*inner)() = nullptr;   // kConfig, kList: the nested table
  const AnyUnion& (*members)() = nullptr;  // kUnion, kUnionList: the union's members
  // kStrings: the names, and setting them (an unknown name is an error naming `path`).
  std::vector<std::string> (*get_strs)(const void*) = nullptr;
  absl::Status (*set_strs)(void*, const std::vector<std::string>&, std::string_view path) = nullptr;
};

// A config's table with its type erased, which the validator and the codec walk at every depth:
// a ConfigSchema<C> seen as its base.
struct AnySchema {
  std::string_view class_name;
  absl::Span<const FieldSpec> fields;
  std::string_view tag;  // the `"type"` key its dict form carries, empty for none
  // The table's rules on a config of its type (OK when it has none), and a default config.
  absl::Status (*check_rules)(const AnySchema& self, const void* config);
  std::shared_ptr<void> (*make)();
};

// A config's table and the Python class it backs. `tag`: the `"type"` key its dict form carries
// (a union's member, such as a Phase), empty for none; `rules`: its checks between fields, run
// after the table's (and by ValidateAt for a nested config).
template <typename C>
struct ConfigSchema : AnySchema {
  using Rules = absl::Status (*)(const C&);
  constexpr ConfigSchema(std::string_view class_name, absl::Span<const FieldSpec> fields,
                         std::string_view tag = {}, Rules rules = nullptr)
      : AnySchema{class_name, fields, tag,
                  [](const AnySchema& self, const void* c) {
                    const Rules r = static_cast<const ConfigSchema&>(self).rules;
                    return r == nullptr ? absl::OkStatus() : r(*static_cast<const C*>(c));
                  },
                  []() -> std::shared_ptr<void> { return std::make_shared<C>(); }},
        rules(rules) {}
  Rules rules;
};

// A tagged union with its type erased: its members' tables, and where member k's config lives
// in a value (the value itself for a union over one struct; for a union held in one optional
// member per class, that member): `view` null when the value is of another member, `assign`
// after making the value a default one of member k.
struct AnyUnion {
  size_t size;  // the number of members
  const AnySchema& (*member)(const AnyUnion& self, size_t k);
  const void* (*view)(const AnyUnion& self, size_t k, const void* value);
  void* (*assign)(const AnyUnion& self, size_t k, void* value);
};

// The member a union value is of (`u.size` if none).
inline size_t Which(const AnyUnion& u, const void* value) {
  size_t k = 0;
  while (k < u.size && u.view(u, k, value) == nullptr) ++k;
  return k;
}

// A tagged union declared as its members (issue #11): each a table over the same struct `T`
// (its class name and `"type"` tag in the table) and the value of `T::kind` it stands for.
template <typename T>
struct UnionMember {
  const ConfigSchema<T>& (*schema)();
  decltype(T::kind) kind;
};
template <typename T>
struct UnionSchema : AnyUnion {
  constexpr UnionSchema(std::string_view name, absl::Span<const UnionMember<T>> members)
      : AnyUnion{members.size(),
                 [](const AnyUnion& u, size_t k) -> const AnySchema& { return Of(u)[k].schema(); },
                 [](const AnyUnion& u, size_t k, const void* v) {
                   return static_cast<const T*>(v)->kind == Of(u)[k].kind ? v : nullptr;
                 },
                 [](const AnyUnion& u, size_t k, void* v) {
                   *static_cast<T*>(v) = T{};
                   static_cast<T*>(v)->kind = Of(u)[k].kind;
                   return v;
                 }},
        name(name),
        members(members) {}
  std::string_view name;  // "Latency", "Arrivals"
  absl::Span<const UnionMember<T>> members;

 private:
  static absl::Span<const UnionMember<T>> Of(const AnyUnion& u) {
    return static_cast<const UnionSchema&>(u).members;
  }
};

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
absl::Status ValidateRows(const AnySchema& schema, const void* config);

// ValidateRows, then the schema's own rules, the message re-rooted under `path` ("path.<message>"
// unless `path` is empty).
absl::Status ValidateAny(std::string_view path, const AnySchema& schema, const void* config);

// ValidateAny with the table of the value's member of the union.
absl::Status ValidateUnion(std::string_view path, const AnyUnion& u, const void* value);

// The typed entry points: the table's ranges alone, or with the config's rules, the message
// under `path`.
template <typename C>
absl::Status ValidateFields(const ConfigSchema<C>& schema, const C& config) {
  return ValidateRows(schema, &config);
}
template <typename C>
absl::Status ValidateAt(std::string_view path, const ConfigSchema<C>& schema, const C& config) {
  return ValidateAny(path, schema, &config);
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

// The config an accessor is given, typed again.
template <typename C>
const C& As(const void* c) {
  return *static_cast<const C*>(c);
}
template <typename C>
C& As(void* c) {
  return *static_cast<C*>(c);
}

// A row of `kind` without accessors; the builders below add them.
constexpr FieldSpec Row(std::string_view name, FieldKind kind, std::string_view doc, double lo = 0,
                        double hi = 0, Bound lo_bound = Bound::kClosed,
                        Bound hi_bound = Bound::kClosed, std::string_view unit = "") {
  FieldSpec f;
  f.info = {name, kind, lo, hi, lo_bound, hi_bound, unit, doc};
  return f;
}

// `f` reading and writing the integer-like member `c.*M` (an integer, nanoseconds, a bool or an
// enum's index) through int64_t.
template <auto M, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec IntAccess(FieldSpec f) {
  f.get_int = [](const void* c) { return static_cast<int64_t>(As<C>(c).*M); };
  f.set_int = [](void* c, int64_t v) { As<C>(c).*M = static_cast<typename MemberOf<M>::Type>(v); };
  return f;
}

// `f` reaching the nested values of the member `c.*M`: a T (always one), a std::optional<T>
// (None when empty) or a std::vector<T> (a list).
template <auto M, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec NestedAccess(FieldSpec f) {
  using T = typename MemberOf<M>::Type;
  constexpr bool kOptional = requires(T t) { t.has_value(); };
  f.info.optional = kOptional;
  if constexpr (kOptional) {
    f.count = [](const void* c) -> size_t { return (As<C>(c).*M).has_value() ? 1 : 0; };
    f.item = [](const void* c, size_t) -> const void* { return &*(As<C>(c).*M); };
    f.add = [](void* c) -> void* { return &(As<C>(c).*M).emplace(); };
  } else if constexpr (requires(T t) { t.emplace_back(); }) {
    f.count = [](const void* c) -> size_t { return (As<C>(c).*M).size(); };
    f.item = [](const void* c, size_t k) -> const void* { return &(As<C>(c).*M)[k]; };
    f.add = [](void* c) -> void* { return &(As<C>(c).*M).emplace_back(); };
  } else {
    f.count = [](const void*) -> size_t { return 1; };
    f.item = [](const void* c, size_t) -> const void* { return &(As<C>(c).*M); };
    f.add = [](void* c) -> void* { return &(As<C>(c).*M); };
  }
  f.reset = [](void* c) { As<C>(c).*M = T{}; };
  return f;
}

template <auto M>
constexpr FieldSpec Int(std::string_view name, int64_t lo, int64_t hi, std::string_view unit,
                        std::string_view doc) {
  FieldSpec f = Row(name, FieldKind::kInt, doc, lo, hi, Bound::kClosed, Bound::kClosed, unit);
  f.info.int_lo = lo;
  f.info.int_hi = hi;
  return IntAccess<M>(f);
}

// A real member `c.*M`, or `(c.*M).*Inner` of a nested params struct (flat in Python).
template <auto M, auto... Inner>
constexpr FieldSpec Real(std::string_view name, double lo, double hi, Bound lo_bound,
                         Bound hi_bound, std::string_view unit, std::string_view doc) {
  using C = typename MemberOf<M>::Class;
  FieldSpec f = Row(name, FieldKind::kReal, doc, lo, hi, lo_bound, hi_bound, unit);
  f.get_real = [](const void* c) -> double { return ((As<C>(c).*M).*....*Inner); };
  f.set_real = [](void* c, double v) { ((As<C>(c).*M).*....*Inner) = v; };
  return f;
}

// A duration held as int64_t nanoseconds; `lo`/`hi` in seconds.
template <auto M>
constexpr FieldSpec Seconds(std::string_view name, double lo, double hi, Bound lo_bound,
                            Bound hi_bound, std::string_view doc) {
  return IntAccess<M>(Row(name, FieldKind::kSeconds, doc, lo, hi, lo_bound, hi_bound, "s"));
}

template <auto M>
constexpr FieldSpec Flag(std::string_view name, std::string_view doc) {
  return IntAccess<M>(Row(name, FieldKind::kBool, doc, 0, 1));
}

// An enum member whose values are 0..n-1, named by `names` in that order.
template <auto M>
constexpr FieldSpec Choice(std::string_view name, absl::Span<const std::string_view> names,
                           std::string_view doc) {
  FieldSpec f = Row(name, FieldKind::kChoice, doc, 0, static_cast<double>(names.size()) - 1);
  f.info.choices = names;
  return IntAccess<M>(f);
}

// A string member.
template <auto M, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec String(std::string_view name, std::string_view doc) {
  FieldSpec f = Row(name, FieldKind::kString, doc);
  f.get_str = [](const void* c) -> std::string_view { return As<C>(c).*M; };
  f.set_str = [](void* c, std::string_view v) { As<C>(c).*M = std::string(v); };
  return f;
}

// A nested config (`T` or `std::optional<T>`, Python `T` or `T | None`) with its own table,
// `Schema()`; read, written and validated through that table and its rules.
template <auto M, auto Schema>
constexpr FieldSpec Config(std::string_view name, std::string_view doc) {
  FieldSpec f = Row(name, FieldKind::kConfig, doc);
  f.inner = []() -> const AnySchema& { return Schema(); };
  return NestedAccess<M>(f);
}

// The element `I` of an array member (`std::array<T, n>`) as a nested config of its own name.
template <auto M, size_t I, auto Schema, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec ConfigAt(std::string_view name, std::string_view doc) {
  FieldSpec f = Config<M, Schema>(name, doc);
  f.item = [](const void* c, size_t) -> const void* { return &(As<C>(c).*M)[I]; };
  f.add = [](void* c) -> void* { return &(As<C>(c).*M)[I]; };
  f.reset = [](void* c) { (As<C>(c).*M)[I] = {}; };
  return f;
}

// A list of nested configs (`std::vector<T>`, Python a tuple of T); `by_name`: elements named in
// paths by their unique `name` (see ElementLabel).
template <auto M, auto Schema>
constexpr FieldSpec List(std::string_view name, bool by_name, std::string_view doc) {
  FieldSpec f = Config<M, Schema>(name, doc);
  f.info.kind = FieldKind::kList;
  f.info.by_name = by_name;
  return f;
}

// `list` (a List by name) with its elements named by their bare name in paths.
constexpr FieldSpec Bare(FieldSpec list) {
  list.info.by_name = list.info.bare = true;
  return list;
}

// A tagged union (`T` or `std::optional<T>`) whose members `Union()` declares; its dict carries
// the member's `"type"` tag, and it is read, written and validated through the member's table.
template <auto M, auto Union>
constexpr FieldSpec OneOf(std::string_view name, std::string_view doc) {
  FieldSpec f = Row(name, FieldKind::kUnion, doc);
  f.members = []() -> const AnyUnion& { return Union(); };
  return NestedAccess<M>(f);
}

// A list of tagged union values (`std::vector<T>`, Python a tuple), elements named by index.
template <auto M, auto Union>
constexpr FieldSpec OneOfList(std::string_view name, std::string_view doc) {
  FieldSpec f = OneOf<M, Union>(name, doc);
  f.info.kind = FieldKind::kUnionList;
  return f;
}

// One member of a union held in one optional member per class (OneOfSlots): the member `c.*M`
// and its table.
template <auto M, auto Schema, typename C = typename MemberOf<M>::Class>
struct Slot {
  static const AnySchema& Table() { return Schema(); }
  static const void* View(const void* c) {
    return (As<C>(c).*M).has_value() ? &*(As<C>(c).*M) : nullptr;
  }
  static void* Emplace(void* c) { return &(As<C>(c).*M).emplace(); }
  static void Reset(void* c) { (As<C>(c).*M).reset(); }
};

// The union of the members `S...` (Slot), with its type erased.
template <typename... S>
struct Slots {
  static constexpr const AnySchema& (*kTables[])() = {&S::Table...};
  static constexpr const void* (*kViews[])(const void*) = {&S::View...};
  static constexpr void* (*kEmplace[])(void*) = {&S::Emplace...};
  static constexpr AnyUnion kUnion = {
      sizeof...(S), [](const AnyUnion&, size_t k) -> const AnySchema& { return kTables[k](); },
      [](const AnyUnion&, size_t k, const void* c) { return kViews[k](c); },
      [](const AnyUnion&, size_t k, void* c) {
        (S::Reset(c), ...);
        return kEmplace[k](c);
      }};
};

// A tagged union (Python `A | B | None`) held in the config as one optional member per class, at
// most one set, each a `Slot<&C::m, &Schema>` (a dependency's `budget`: `token_bucket` or
// `ratio_budget`); the dict's `"type"` picks the member to fill. The row's value is the config.
template <typename... S>
constexpr FieldSpec OneOfSlots(std::string_view name, std::string_view doc) {
  FieldSpec f = Row(name, FieldKind::kUnion, doc);
  f.info.optional = true;
  f.count = [](const void* c) -> size_t { return Which(Slots<S...>::kUnion, c) < sizeof...(S); };
  f.item = [](const void* c, size_t) { return c; };
  f.add = [](void* c) { return c; };
  f.reset = [](void* c) { (S::Reset(c), ...); };
  f.members = []() -> const AnyUnion& { return Slots<S...>::kUnion; };
  return f;
}

// A list of numbers, each in the interval (paths `weights[2]`): reals (`std::vector<double>`), or
// durations (`std::vector<int64_t>` of nanoseconds; `lo`/`hi` in seconds, `unit` "s").
template <auto M>
constexpr FieldSpec Numbers(std::string_view name, double lo, double hi, Bound lo_bound,
                            Bound hi_bound, std::string_view unit, std::string_view doc) {
  using T = typename MemberOf<M>::Type::value_type;
  static_assert(std::is_same_v<T, double> || std::is_same_v<T, int64_t>);
  constexpr FieldKind kKind =
      std::is_same_v<T, double> ? FieldKind::kRealList : FieldKind::kSecondsList;
  return NestedAccess<M>(Row(name, kKind, doc, lo, hi, lo_bound, hi_bound, unit));
}

// `field` with no default in Python (a required argument); the struct's default stands in C++.
constexpr FieldSpec Required(FieldSpec field) {
  field.info.required = true;
  return field;
}

// An optional real held as `std::optional<double>`; None (empty) reads as NaN, the field's
// None sentinel, and setting NaN empties it.
template <auto M, typename C = typename MemberOf<M>::Class>
constexpr FieldSpec MaybeReal(std::string_view name, double lo, double hi, Bound lo_bound,
                              Bound hi_bound, std::string_view unit, std::string_view doc) {
  FieldSpec f = Row(name, FieldKind::kReal, doc, lo, hi, lo_bound, hi_bound, unit);
  f.info.optional = true;
  f.info.none_real = std::numeric_limits<double>::quiet_NaN();
  f.get_real = [](const void* c) {
    return (As<C>(c).*M).value_or(std::numeric_limits<double>::quiet_NaN());
  };
  f.set_real = [](void* c, double v) {
    As<C>(c).*M = std::isnan(v) ? std::nullopt : std::optional(v);
  };
  return f;
}

// `field` made optional: None is held as `none` in the member (nanoseconds for seconds), a
// value the field's range excludes.
constexpr FieldSpec OrNone(FieldSpec field, double none) {
  field.info.optional = true;
  field.info.none_real = none;
  field.info.none_int = static_cast<int64_t>(none);
  return field;
}

// A set of names (kStrings) read and written by `Get(c)` and `Set(c, names, path)`: a member
// held in its own form (RetryConfig.retryable, an OutcomeSet), a tuple of str in Python.
template <typename C, auto Get, auto Set>
constexpr FieldSpec Strings(std::string_view name, std::string_view doc) {
  FieldSpec f = Row(name, FieldKind::kStrings, doc);
  f.get_strs = [](const void* c) { return Get(As<C>(c)); };
  f.set_strs = [](void* c, const std::vector<std::string>& v, std::string_view path) {
    return Set(As<C>(c), v, path);
  };
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
    static const ::rlab::FieldSpec kFields[] = {__VA_ARGS__};                \
    static const ::rlab::ConfigSchema<C> kSchema{name, kFields, tag, rules}; \
    return kSchema;                                                          \
  }                                                                          \
  static_assert(true)

#endif  // RLAB_CORE_SCHEMA_H_
