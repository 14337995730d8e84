#include "rlab/core/schema.h"

#include <string>
#include <vector>

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
  return absl::InvalidArgumentError(absl::StrFormat("%s must be one of %s, got %d", f.name,
                                                    absl::StrJoin(names, ", "), index));
}

absl::Status AtPath(std::string_view path, const absl::Status& status) {
  if (status.ok() || path.empty()) return status;
  return absl::Status(status.code(), absl::StrFormat("%s.%s", path, status.message()));
}

}  // namespace rlab
