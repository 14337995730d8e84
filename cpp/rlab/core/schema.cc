#include "rlab/core/schema.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "rlab/core/clock.h"

namespace rlab {

std::string_view FieldKindName(FieldKind kind) {
  static constexpr std::string_view kNames[] = {
      "int",    "real",  "seconds", "bool",       "choice",    "string",      "strings",
      "config", "union", "list",    "union_list", "real_list", "seconds_list"};
  return kNames[static_cast<size_t>(kind)];
}

absl::Status ChoiceError(const FieldInfo& f, std::string_view name, std::string_view got) {
  std::vector<std::string> names;
  for (std::string_view n : f.choices) names.push_back(absl::StrFormat("'%s'", n));
  return absl::InvalidArgumentError(
      absl::StrFormat("%s must be one of %s, got %s", name, absl::StrJoin(names, ", "), got));
}

absl::Status CheckIntField(const FieldInfo& f, std::string_view name, int64_t v) {
  if (f.kind == FieldKind::kInt) return CheckIntRange(name, v, f.int_lo, f.int_hi);
  if (f.kind == FieldKind::kChoice) {
    if (v >= 0 && v < static_cast<int64_t>(f.choices.size())) return absl::OkStatus();
    return ChoiceError(f, name, absl::StrFormat("%d", v));
  }
  // Nanoseconds: compared in nanoseconds (so the documented maximum passes), worded in seconds.
  const int64_t lo = SecondsToNs(f.lo), hi = SecondsToNs(f.hi);
  const bool below = f.lo_bound == Bound::kOpen ? v <= lo : v < lo;
  const bool above = f.hi_bound == Bound::kOpen ? v >= hi : v > hi;
  if (!below && !above) return absl::OkStatus();
  return RangeError(name, absl::StrFormat("%g", NsToSeconds(v)), f.lo, f.hi, f.lo_bound,
                    f.hi_bound);
}

absl::Status CheckRealField(const FieldInfo& f, std::string_view name, double v) {
  return CheckRange(name, v, f.lo, f.hi, f.lo_bound, f.hi_bound);
}

std::string ElementLabel(const FieldInfo& f, const std::vector<std::string>& names, size_t k) {
  if (f.kind == FieldKind::kConfig || f.kind == FieldKind::kUnion) return std::string(f.name);
  // A name usable in a path: a word, and unique among the elements.
  if (f.by_name && k < names.size() && !names[k].empty() &&
      std::all_of(names[k].begin(), names[k].end(),
                  [](char c) { return absl::ascii_isalnum(c) || c == '_'; }) &&
      std::count(names.begin(), names.end(), names[k]) == 1) {
    return f.bare ? names[k] : absl::StrFormat("%s[%s]", f.name, names[k]);
  }
  return absl::StrFormat("%s[%d]", f.name, k);
}

namespace {

// The names of a nested field's elements (a list's elements' `name`; empty when they have none).
std::vector<std::string> ElementNames(AnySchema schema, size_t i, const void* config) {
  const SchemaOps& ops = *schema.ops;
  std::vector<std::string> names(ops.count(schema.schema, i, config));
  if (ops.info(schema.schema, i).kind != FieldKind::kList) return names;
  const AnySchema inner = ops.inner(schema.schema, i);
  for (size_t r = 0; r < inner.size; ++r) {
    const FieldInfo& f = inner.ops->info(inner.schema, r);
    if (f.kind != FieldKind::kString || f.name != "name") continue;
    for (size_t k = 0; k < names.size(); ++k) {
      names[k] = inner.ops->get_str(inner.schema, r, ops.item(schema.schema, i, config, k));
    }
  }
  return names;
}

}  // namespace

absl::Status ValidateRows(AnySchema schema, const void* config) {
  const void* s = schema.schema;
  const SchemaOps& ops = *schema.ops;
  for (size_t i = 0; i < schema.size; ++i) {
    const FieldInfo& f = ops.info(s, i);
    absl::Status status;
    if (IsNested(f.kind)) {  // each element under its path
      const std::vector<std::string> names = ElementNames(schema, i, config);
      for (size_t k = 0; k < names.size() && status.ok(); ++k) {
        const std::string at = ElementLabel(f, names, k);
        const void* item = ops.item(s, i, config, k);
        if (f.kind == FieldKind::kConfig || f.kind == FieldKind::kList) {
          status = ValidateAny(at, ops.inner(s, i), item);
        } else if (f.kind == FieldKind::kUnion || f.kind == FieldKind::kUnionList) {
          status = ValidateUnion(at, ops.members(s, i), item);
        } else if (f.kind == FieldKind::kRealList) {
          status = CheckRealField(f, at, *static_cast<const double*>(item));
        } else {
          status = CheckIntField(f, at, *static_cast<const int64_t*>(item));
        }
      }
    } else if (f.kind == FieldKind::kReal) {
      const double v = ops.get_real(s, i, config);
      if (!IsNoneReal(f, v)) status = CheckRealField(f, f.name, v);
    } else if (f.kind == FieldKind::kInt || f.kind == FieldKind::kSeconds ||
               f.kind == FieldKind::kChoice) {  // bools, strings and names need no check
      const int64_t v = ops.get_int(s, i, config);
      if (!IsNoneInt(f, v)) status = CheckIntField(f, f.name, v);
    }
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status ValidateAny(std::string_view path, AnySchema schema, const void* config) {
  absl::Status s = ValidateRows(schema, config);
  if (s.ok()) s = schema.ops->rules(schema.schema, config);
  return AtPath(path, s);
}

absl::Status ValidateUnion(std::string_view path, AnyUnion u, const void* value) {
  const size_t k = u.ops->which(u.u, value);
  if (k < u.ops->size(u.u)) {
    return ValidateAny(path, u.ops->member(u.u, k), u.ops->view(u.u, k, value));
  }
  return absl::InvalidArgumentError(absl::StrFormat("%s is of no known kind", path));
}

absl::Status AtPath(std::string_view path, const absl::Status& status) {
  if (status.ok() || path.empty()) return status;
  return absl::Status(status.code(), absl::StrFormat("%s.%s", path, status.message()));
}

}  // namespace rlab
