#include "rlab/core/validate.h"

#include <cmath>
#include <string>

#include "absl/strings/str_format.h"
#include "rlab/core/clock.h"

namespace rlab {
namespace {

std::string FormatBound(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return absl::StrFormat("%g", v);
}

}  // namespace

absl::Status CheckRange(std::string_view name, double value, double lo, double hi, Bound lo_bound,
                        Bound hi_bound) {
  const bool below = lo_bound == Bound::kOpen ? !(value > lo) : !(value >= lo);
  const bool above = hi_bound == Bound::kOpen ? !(value < hi) : !(value <= hi);
  if (std::isfinite(value) && !below && !above) return absl::OkStatus();
  return RangeError(name, value, lo, hi, lo_bound, hi_bound);
}

absl::Status RangeError(std::string_view name, double value, double lo, double hi,
                        Bound lo_bound, Bound hi_bound) {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s must be a finite number in %c%s, %s%c, got %g", name,
                      lo_bound == Bound::kOpen ? '(' : '[', FormatBound(lo), FormatBound(hi),
                      hi_bound == Bound::kOpen ? ')' : ']', value));
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

absl::Status CheckDurationNs(std::string_view name, int64_t ns, bool allow_zero) {
  constexpr int64_t kMaxNs = static_cast<int64_t>(kMaxDurationS) * kNsPerSecond;
  if ((allow_zero ? ns >= 0 : ns > 0) && ns <= kMaxNs) return absl::OkStatus();
  return CheckDuration(name, NsToSeconds(ns), allow_zero);
}

}  // namespace rlab
