#include "rlab/core/validate.h"

#include <cmath>
#include <string>

#include "absl/strings/str_format.h"

namespace rlab {

absl::Status RangeError(std::string_view name, std::string_view got, double lo, double hi,
                        Bound lo_bound, Bound hi_bound) {
  auto bound = [](double v) {
    return std::isinf(v) ? std::string(v > 0 ? "inf" : "-inf") : absl::StrFormat("%g", v);
  };
  return absl::InvalidArgumentError(
      absl::StrFormat("%s must be a finite number in %c%s, %s%c, got %s", name,
                      lo_bound == Bound::kOpen ? '(' : '[', bound(lo), bound(hi),
                      hi_bound == Bound::kOpen ? ')' : ']', got));
}

absl::Status CheckRange(std::string_view name, double value, double lo, double hi, Bound lo_bound,
                        Bound hi_bound) {
  const bool below = lo_bound == Bound::kOpen ? !(value > lo) : !(value >= lo);
  const bool above = hi_bound == Bound::kOpen ? !(value < hi) : !(value <= hi);
  if (std::isfinite(value) && !below && !above) return absl::OkStatus();
  return RangeError(name, absl::StrFormat("%g", value), lo, hi, lo_bound, hi_bound);
}

absl::Status CheckIntRange(std::string_view name, int64_t value, int64_t lo, int64_t hi) {
  if (value >= lo && value <= hi) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrFormat("%s must be an integer in [%d, %d], got %d", name, lo, hi, value));
}

absl::Status CheckDuration(std::string_view name, double seconds, bool allow_zero) {
  return CheckRange(name, seconds, 0.0, kMaxDurationS, allow_zero ? Bound::kClosed : Bound::kOpen,
                    Bound::kClosed);
}

}  // namespace rlab
