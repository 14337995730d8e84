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
std::vector<std::string> ElementNames(const FieldSpec& row, const void* config) {
  std::vector<std::string> names(row.count(config));
  if (row.info.kind != FieldKind::kList) return names;
  for (const FieldSpec& r : row.inner().fields) {
    if (r.info.kind != FieldKind::kString || r.info.name != "name") continue;
    for (size_t k = 0; k < names.size(); ++k) names[k] = r.get_str(row.item(config, k));
  }
  return names;
}

}  // namespace

absl::Status ValidateRows(const AnySchema& schema, const void* config) {
  for (const FieldSpec& row : schema.fields) {
    const FieldInfo& f = row.info;
    absl::Status status;
    if (IsNested(f.kind)) {  // each element under its path
      const std::vector<std::string> names = ElementNames(row, config);
      for (size_t k = 0; k < names.size() && status.ok(); ++k) {
        const std::string at = ElementLabel(f, names, k);
        const void* item = row.item(config, k);
        if (f.kind == FieldKind::kConfig || f.kind == FieldKind::kList) {
          status = ValidateAny(at, row.inner(), item);
        } else if (f.kind == FieldKind::kUnion || f.kind == FieldKind::kUnionList) {
          status = ValidateUnion(at, row.members(), item);
        } else if (f.kind == FieldKind::kRealList) {
          status = CheckRealField(f, at, *static_cast<const double*>(item));
        } else {
          status = CheckIntField(f, at, *static_cast<const int64_t*>(item));
        }
      }
    } else if (f.kind == FieldKind::kReal) {
      const double v = row.get_real(config);
      if (!IsNoneReal(f, v)) status = CheckRealField(f, f.name, v);
    } else if (f.kind == FieldKind::kInt || f.kind == FieldKind::kSeconds ||
               f.kind == FieldKind::kChoice) {  // bools, strings and names need no check
      const int64_t v = row.get_int(config);
      if (!IsNoneInt(f, v)) status = CheckIntField(f, f.name, v);
    }
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status ValidateAny(std::string_view path, const AnySchema& schema, const void* config) {
  absl::Status s = ValidateRows(schema, config);
  if (s.ok()) s = schema.check_rules(schema, config);
  if (s.ok() || path.empty()) return s;  // else re-rooted under `path`
  return absl::Status(s.code(), absl::StrFormat("%s.%s", path, s.message()));
}

absl::Status ValidateUnion(std::string_view path, const AnyUnion& u, const void* value) {
  const size_t k = Which(u, value);
  if (k < u.size) return ValidateAny(path, u.member(u, k), u.view(u, k, value));
  return absl::InvalidArgumentError(absl::StrFormat("%s is of no known kind", path));
}

}  // namespace rlab
