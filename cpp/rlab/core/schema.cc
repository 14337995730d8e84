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
  switch (kind) {
    case FieldKind::kInt:
      return "int";
    case FieldKind::kReal:
      return "real";
    case FieldKind::kSeconds:
      return "seconds";
    case FieldKind::kBool:
      return "bool";
    case FieldKind::kChoice:
      return "choice";
    case FieldKind::kString:
      return "string";
    case FieldKind::kConfig:
      return "config";
    case FieldKind::kList:
      return "list";
    case FieldKind::kUnion:
      return "union";
    case FieldKind::kStrings:
      return "strings";
    case FieldKind::kRealList:
      return "real_list";
    case FieldKind::kSecondsList:
      return "seconds_list";
    case FieldKind::kUnionList:
      return "union_list";
  }
  return "real";
}

absl::Status CheckIntField(const FieldInfo& f, int64_t value) {
  return CheckIntRange(f.name, value, f.int_lo, f.int_hi);
}

absl::Status CheckRealField(const FieldInfo& f, double value) {
  return CheckRange(f.name, value, f.lo, f.hi, f.lo_bound, f.hi_bound);
}

absl::Status CheckNsField(const FieldInfo& f, int64_t ns) {
  const int64_t lo = SecondsToNs(f.lo);
  const int64_t hi = SecondsToNs(f.hi);
  const bool below = f.lo_bound == Bound::kOpen ? ns <= lo : ns < lo;
  const bool above = f.hi_bound == Bound::kOpen ? ns >= hi : ns > hi;
  if (!below && !above) return absl::OkStatus();
  return RangeError(f.name, NsToSeconds(ns), f.lo, f.hi, f.lo_bound, f.hi_bound);
}

absl::Status CheckChoiceField(const FieldInfo& f, int64_t index) {
  if (index >= 0 && index < static_cast<int64_t>(f.choices.size())) return absl::OkStatus();
  std::vector<std::string> names;
  for (std::string_view n : f.choices) names.push_back(absl::StrFormat("'%s'", n));
  return absl::InvalidArgumentError(
      absl::StrFormat("%s must be one of %s, got %d", f.name, absl::StrJoin(names, ", "), index));
}

std::string ElementLabel(const FieldInfo& f, const std::vector<std::string>& names, size_t k) {
  // A name usable in a path: a word, and unique among the elements.
  if (f.by_name && k < names.size() && !names[k].empty() &&
      std::all_of(names[k].begin(), names[k].end(),
                  [](char c) { return absl::ascii_isalnum(c) || c == '_'; }) &&
      std::count(names.begin(), names.end(), names[k]) == 1) {
    return f.bare ? names[k] : absl::StrFormat("%s[%s]", f.name, names[k]);
  }
  return absl::StrFormat("%s[%d]", f.name, k);
}

std::vector<std::string> ElementNames(AnySchema schema, size_t i, const void* config) {
  const SchemaOps& ops = *schema.ops;
  std::vector<std::string> names;
  const size_t n = ops.count(schema.schema, i, config);
  const AnySchema inner = ops.inner(schema.schema, i);
  size_t name_row = ops.size(inner.schema);
  for (size_t r = 0; r < ops.size(inner.schema); ++r) {
    const FieldInfo& f = inner.ops->info(inner.schema, r);
    if (f.kind == FieldKind::kString && f.name == "name") name_row = r;
  }
  for (size_t k = 0; k < n; ++k) {
    const void* item = ops.item(schema.schema, i, config, k);
    names.emplace_back(name_row < inner.ops->size(inner.schema)
                           ? inner.ops->get_str(inner.schema, name_row, item)
                           : std::string_view());
  }
  return names;
}

absl::Status ValidateRows(AnySchema schema, const void* config) {
  const void* s = schema.schema;
  const SchemaOps& ops = *schema.ops;
  for (size_t i = 0; i < ops.size(s); ++i) {
    const FieldInfo& f = ops.info(s, i);
    absl::Status status;
    switch (f.kind) {
      case FieldKind::kInt:
      case FieldKind::kSeconds:
      case FieldKind::kChoice: {
        const int64_t v = ops.get_int(s, i, config);
        if (IsNoneInt(f, v)) break;
        status = f.kind == FieldKind::kInt       ? CheckIntField(f, v)
                 : f.kind == FieldKind::kSeconds ? CheckNsField(f, v)
                                                 : CheckChoiceField(f, v);
        break;
      }
      case FieldKind::kReal: {
        const double v = ops.get_real(s, i, config);
        if (!IsNoneReal(f, v)) status = CheckRealField(f, v);
        break;
      }
      case FieldKind::kBool:
      case FieldKind::kString:
      case FieldKind::kStrings:  // checked as it is set
        break;
      case FieldKind::kConfig:
        if (ops.count(s, i, config) == 1) {
          status = ValidateAny(f.name, ops.inner(s, i), ops.item(s, i, config, 0));
        }
        break;
      case FieldKind::kList: {
        const std::vector<std::string> names = ElementNames(schema, i, config);
        for (size_t k = 0; k < names.size() && status.ok(); ++k) {
          status =
              ValidateAny(ElementLabel(f, names, k), ops.inner(s, i), ops.item(s, i, config, k));
        }
        break;
      }
      case FieldKind::kUnion:
        if (ops.count(s, i, config) == 1) {
          status = ValidateUnion(f.name, ops.members(s, i), ops.item(s, i, config, 0));
        }
        break;
      case FieldKind::kUnionList:
        for (size_t k = 0; k < ops.count(s, i, config) && status.ok(); ++k) {
          status = ValidateUnion(absl::StrFormat("%s[%d]", f.name, k), ops.members(s, i),
                                 ops.item(s, i, config, k));
        }
        break;
      case FieldKind::kRealList:
      case FieldKind::kSecondsList: {
        FieldInfo element = f;  // named by its index
        for (size_t k = 0; k < ops.count(s, i, config) && status.ok(); ++k) {
          const std::string name = absl::StrFormat("%s[%d]", f.name, k);
          element.name = name;
          const void* v = ops.item(s, i, config, k);
          status = f.kind == FieldKind::kRealList
                       ? CheckRealField(element, *static_cast<const double*>(v))
                       : CheckNsField(element, *static_cast<const int64_t*>(v));
        }
        break;
      }
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
