#ifndef RLAB_POLICY_BACKOFF_H_
#define RLAB_POLICY_BACKOFF_H_

#include <array>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rlab/core/clock.h"
#include "rlab/core/schema.h"

namespace rlab {

// How randomness is mixed into the exponential delay. Jitter exists to de-synchronise clients
// that failed together; without it they retry together and hit the dependency in waves.
enum class Jitter : uint8_t {
  kNone = 0,      // d: the plain exponential (synchronised retries: for comparison only)
  kFull,          // U(0, d)
  kEqual,         // d/2 + U(0, d/2): never retries almost at once, keeps half the spread
  kDecorrelated,  // min(max, U(initial, 3 * previous)): a random walk that ignores k
  kProportional,  // d * U(1 - f, 1 + f): spread of ±f around the exponential
};
inline constexpr int kNumJitterModes = 5;

// The name of a jitter mode ("none", "full", "equal", "decorrelated", "proportional").
std::string_view JitterName(Jitter jitter);
// Parses a name produced by JitterName; an unknown name is InvalidArgument listing the allowed
// ones, and names the parameter "jitter".
absl::StatusOr<Jitter> ParseJitter(std::string_view name);
// Every jitter mode's name, in enum order.
const std::array<std::string_view, kNumJitterModes>& JitterNames();

// Exponential backoff with jitter. Delays are integer nanoseconds; the Python-facing names (in
// seconds) are initial, multiplier, max_delay, jitter and jitter_factor.
struct BackoffConfig {
  int64_t initial_ns = 100'000'000;    // the base delay before the first retry
  double multiplier = 2.0;             // growth per retry, >= 1
  int64_t max_ns = 30 * kNsPerSecond;  // the cap, applied after jitter; >= initial_ns
  Jitter jitter = Jitter::kFull;
  double jitter_factor = 0.5;  // f in [0, 1], used by kProportional only
};

// The field table (Python: rl.Backoff) and its rule: max_delay >= initial.
const ConfigSchema<BackoffConfig>& BackoffSchema();
absl::Status ValidateBackoffRules(const BackoffConfig& config);

// Checks every field against the table; messages use the Python-facing names and ranges, e.g.
//   "max_delay must be a finite number in [0.1, 1e+06], got 0.05".
absl::Status Validate(const BackoffConfig& config);

// The un-jittered delay before retry `retry`: min(max, initial * multiplier^(retry - 1)).
// Computed in floating point so that a huge `retry` saturates at max instead of overflowing;
// `retry` < 1 is read as 1.
int64_t BackoffBaseNs(const BackoffConfig& config, int64_t retry);

// The delay before retry `retry` (1 = the delay before the second attempt), in nanoseconds.
// `previous_ns` is the delay returned for the previous retry (read only by kDecorrelated; values
// below initial, e.g. before the first retry, count as initial). `u` is a uniform draw in [0, 1).
// The result always lies in [0, max_ns]: the cap is applied after jitter. A pure function.
int64_t BackoffDelayNs(const BackoffConfig& config, int64_t retry, int64_t previous_ns, double u);

// The backoff sequence of one caller: remembers the retry number and the previous delay so that
// callers (and the decorrelated recurrence) need not. Not thread-safe; cheap to copy.
class Backoff {
 public:
  // `config` must be valid (see Validate); it is copied.
  explicit Backoff(const BackoffConfig& config)
      : config_(config), previous_ns_(config.initial_ns) {}

  // The delay before the next retry, given a uniform draw `u` in [0, 1).
  int64_t NextDelayNs(double u);
  // Starts the sequence again, as for a new call.
  void Reset();

  // Retries whose delay has been handed out so far.
  int64_t retries() const { return retries_; }
  // The last delay handed out (initial_ns before the first).
  int64_t previous_ns() const { return previous_ns_; }
  const BackoffConfig& config() const { return config_; }

 private:
  BackoffConfig config_;
  int64_t retries_ = 0;
  int64_t previous_ns_;
};

}  // namespace rlab

#endif  // RLAB_POLICY_BACKOFF_H_
