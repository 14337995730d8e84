#ifndef RLAB_CORE_VALIDATE_H_
#define RLAB_CORE_VALIDATE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"

namespace rlab {

// Parameter checks shared by every configuration. Each returns InvalidArgument with a message that
// names the parameter, the allowed range and the value given, e.g.
//   "open_for_s must be in (0, 1e+06], got -1"
// The bindings map InvalidArgument to Python's ValueError in one place.

// How an interval bound is read.
enum class Bound { kClosed, kOpen };

// `value` is finite and inside [lo, hi] (or the open variants). Infinite bounds print as "inf".
absl::Status CheckRange(std::string_view name, double value, double lo, double hi,
                        Bound lo_bound = Bound::kClosed, Bound hi_bound = Bound::kClosed);

// The error CheckRange returns, for a value written `got` ("-1", or a Python repr).
absl::Status RangeError(std::string_view name, std::string_view got, double lo, double hi,
                        Bound lo_bound, Bound hi_bound);

// An integer inside [lo, hi].
absl::Status CheckIntRange(std::string_view name, int64_t value, int64_t lo, int64_t hi);

// The largest duration a configuration accepts, in seconds (about 11.6 days): large enough for
// any experiment, small enough that nanosecond arithmetic never overflows.
inline constexpr double kMaxDurationS = 1e6;
// kMaxDurationS under the short name the field tables use (one definition: the tables of a layer
// share a translation unit in the unity build).
inline constexpr double kMaxS = kMaxDurationS;
// The largest count a table takes for calls, permits or slots.
inline constexpr int64_t kMaxCount = 1'000'000;

// An InvalidArgument error with `message` (a rule's refusal).
inline absl::Status Invalid(std::string message) {
  return absl::InvalidArgumentError(std::move(message));
}

// A duration in seconds, finite and inside (0, kMaxDurationS] (or [0, ...] when `allow_zero`).
absl::Status CheckDuration(std::string_view name, double seconds, bool allow_zero = false);

// Returns the first error among `statuses`, or OK.
inline absl::Status FirstError(std::initializer_list<absl::Status> statuses) {
  for (const absl::Status& s : statuses) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace rlab

#endif  // RLAB_CORE_VALIDATE_H_
