#include "rlab/policy/backoff.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_format.h"
#include "rlab/core/clock.h"
#include "rlab/core/schema.h"
#include "rlab/core/validate.h"

namespace rlab {
namespace {

constexpr std::array<std::string_view, kNumJitterModes> kJitterNames = {
    "none", "full", "equal", "decorrelated", "proportional"};
constexpr double kInf = std::numeric_limits<double>::infinity();

// Converts a non-negative delay computed in floating point to whole nanoseconds, rounding down and
// capping at `max_ns`. The comparison happens in double, before the cast, so that a value beyond
// the int64 range can never reach the conversion (which would be undefined behaviour).
int64_t CapNs(double ns, int64_t max_ns) {
  if (!(ns < static_cast<double>(max_ns))) return max_ns;  // also catches NaN
  if (!(ns > 0.0)) return 0;
  return static_cast<int64_t>(ns);
}

// "none, full, equal, decorrelated, proportional", for error messages.
std::string AllowedJitterNames() {
  std::string out;
  for (std::string_view name : kJitterNames) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

}  // namespace

std::string_view JitterName(Jitter jitter) {
  const auto i = static_cast<size_t>(jitter);
  return i < kJitterNames.size() ? kJitterNames[i] : "unknown";
}

const std::array<std::string_view, kNumJitterModes>& JitterNames() { return kJitterNames; }

absl::StatusOr<Jitter> ParseJitter(std::string_view name) {
  for (size_t i = 0; i < kJitterNames.size(); ++i) {
    if (kJitterNames[i] == name) return static_cast<Jitter>(i);
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("jitter must be one of %s; got '%s'", AllowedJitterNames(), name));
}

absl::Status ValidateBackoffRules(const BackoffConfig& c) {
  // max_delay >= initial: a cap below the first delay would silently flatten every delay.
  return CheckRange("max_delay", NsToSeconds(c.max_ns), NsToSeconds(c.initial_ns), kMaxS);
}

RLAB_TABLE(BackoffSchema, BackoffConfig, "Backoff", "", &ValidateBackoffRules,
           RLAB_SECONDS(initial, 0, kMaxS, CC, "the base delay before the first retry"),
           RLAB_REAL(multiplier, 1, kInf, CO, "", "growth factor per retry"),
           schema::Seconds<&C::max_ns>("max_delay", 0, kMaxS, RLAB_ENDS_CC,
                                       "the cap, applied after jitter; at least initial"),
           RLAB_CHOICE(jitter, kJitterNames, "how randomness is mixed into a delay"),
           RLAB_REAL(jitter_factor, 0, 1, CC, "", "the spread of proportional jitter"));
absl::Status Validate(const BackoffConfig& c) { return ValidateAt("", BackoffSchema(), c); }

int64_t BackoffBaseNs(const BackoffConfig& config, int64_t retry) {
  if (config.initial_ns <= 0) return 0;  // avoids 0 * inf = NaN for huge retries
  const double exponent = static_cast<double>(std::max<int64_t>(retry, 1) - 1);
  // pow saturates to +inf for huge exponents; CapNs then returns max_ns.
  return CapNs(static_cast<double>(config.initial_ns) * std::pow(config.multiplier, exponent),
               config.max_ns);
}

int64_t BackoffDelayNs(const BackoffConfig& config, int64_t retry, int64_t previous_ns, double u) {
  const double max = static_cast<double>(config.max_ns);
  switch (config.jitter) {
    case Jitter::kNone:
      return BackoffBaseNs(config, retry);
    case Jitter::kFull:
      return CapNs(u * static_cast<double>(BackoffBaseNs(config, retry)), config.max_ns);
    case Jitter::kEqual: {
      const double half = 0.5 * static_cast<double>(BackoffBaseNs(config, retry));
      return CapNs(half + u * half, config.max_ns);
    }
    case Jitter::kDecorrelated: {
      // Clamping `previous` keeps the range [initial, 3 * previous] non-empty and bounded even
      // for a caller-supplied value from another config.
      const double lo = static_cast<double>(config.initial_ns);
      const double prev = std::clamp(static_cast<double>(previous_ns), lo, max);
      return CapNs(lo + u * (3.0 * prev - lo), config.max_ns);
    }
    case Jitter::kProportional: {
      const double f = config.jitter_factor;
      return CapNs(static_cast<double>(BackoffBaseNs(config, retry)) * (1.0 - f + 2.0 * f * u),
                   config.max_ns);
    }
  }
  return BackoffBaseNs(config, retry);  // unreachable for a validated config
}

int64_t Backoff::NextDelayNs(double u) {
  ++retries_;
  previous_ns_ = BackoffDelayNs(config_, retries_, previous_ns_, u);
  return previous_ns_;
}

void Backoff::Reset() {
  retries_ = 0;
  previous_ns_ = config_.initial_ns;
}

}  // namespace rlab
