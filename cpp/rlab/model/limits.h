#ifndef RLAB_MODEL_LIMITS_H_
#define RLAB_MODEL_LIMITS_H_

// Adaptive concurrency limits inside the scenario (Python `rl.Limit`, at `intake.limit` and
// `<dependency>.limit`): the scenario's flat description of a limit, its validation, and the
// mapping onto the pure policy (rlab/policy/concurrency_limit.h), which does the work.
//
//   - Client side (`<dependency>.limit`, in the shared OrderFlow): every attempt takes a permit;
//     a refused attempt is a local rejection (FlowStats::rejected_limit, order reason
//     `limited`); the permit's release samples the attempt's RTT, as a drop when the dependency
//     signalled overload (timeout, connection reset, 429/502/503/504).
//   - Server side (`intake.limit`, in each engine's intake): admitted orders not yet terminal
//     (queued + processing) are capped, as Netflix's server-side limiters cap the requests in
//     flight from the moment they enter the server; an order over the limit is rejected at once
//     (reason `limited`); the order's end samples its sojourn time, as a drop when it ran out of
//     time (expired, or failed on its deadline).

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "rlab/core/clock.h"
#include "rlab/core/outcome.h"
#include "rlab/core/schema.h"
#include "rlab/policy/concurrency_limit.h"
#include "rlab/policy/rate_limit.h"

namespace rlab {

// One limit, flat (each algorithm reads its own knobs; the others are kept but unused).
struct LimitConfig {
  enum class Kind : uint8_t { kStatic = 0, kAimd, kVegas, kGradient2, kEnvoy };
  Kind kind = Kind::kGradient2;
  int64_t initial = 20;  // static: the limit; envoy starts at `min` (its min_concurrency)
  int64_t min = 1;       // aimd, gradient2: min_limit; envoy: min_concurrency
  int64_t max = 200;     // max_limit
  // aimd
  double backoff_ratio = 0.9;
  int64_t timeout_ns = 5 * kNsPerSecond;
  // vegas and gradient2; < 0: the algorithm's own default (vegas 1.0, gradient2 0.2)
  double smoothing = -1.0;
  // vegas
  int64_t alpha_factor = 3;
  int64_t beta_factor = 6;
  int64_t threshold_factor = 1;
  int64_t probe_multiplier = 30;
  // gradient2
  int64_t queue_size = 4;
  int64_t long_window = 600;
  double rtt_tolerance = 1.5;
  // envoy
  int64_t sample_interval_ns = 100'000'000;
  int64_t min_rtt_interval_ns = 60 * kNsPerSecond;
  double jitter = 0.15;
  int64_t request_count = 50;
  double buffer = 0.25;
  double percentile = 0.5;
  // Netflix WindowedLimit for aimd, vegas, gradient2: 0 updates on every sample; > 0 once per
  // window of this length holding more than window_size samples.
  int64_t window_ns = 0;
  int64_t window_size = 10;
};

// "static", "aimd", "vegas", "gradient2", "envoy".
std::string_view LimitKindName(LimitConfig::Kind kind);

// The field table of LimitConfig (Python: rl.Limit; every field checked whatever the kind), and
// its rules (min <= initial <= max, alpha_factor <= beta_factor, no window for envoy).
// `ValidateAt("payment.limit", LimitSchema(), c)` checks both ("payment.limit.initial ...").
const ConfigSchema<LimitConfig>& LimitSchema();
absl::Status ValidateLimitRules(const LimitConfig& config);

// The policy's configuration for a valid `config` (static: AIMD pinned at `initial`).
ConcurrencyLimitConfig ToConcurrencyLimitConfig(const LimitConfig& config);

// How a released client-side permit is sampled.
enum class LimitSampleKind : uint8_t { kSuccess, kDropped, kIgnore };
// Success: any answer; dropped: timeout, connection reset, 429/502/503/504 (the dependency is
// overloaded, as rl.throttle.is_overload); ignore: the caller gave up (cancelled, own deadline).
LimitSampleKind ClientLimitSample(const Outcome& outcome);

// A rate limit in a scenario (Python `rl.RateLimit`, at `intake.rate_limit` and
// `<dependency>.rate_limit`): `rate` permits per second with `burst` saved up (smooth: GCRA,
// one permit every 1 / rate; bursty: `burst` permits at the start of every burst / rate
// seconds), per order key when `per_key`. A permit due within `max_wait` delays the attempt
// (client side); any other refuses it (reason `rate_limited`). At the intake, an order waiting
// for its permit is in the system, not yet queued (the live engine: live/rate_wait_queue.h).
struct RateLimitConfig {
  double rate = 100.0;  // permits per second, in (0, 1e7]
  int64_t burst = 1;    // in [1, 1e9]
  RateLimitMode mode = RateLimitMode::kSmooth;
  int64_t max_wait_ns = 0;  // [0, 1e6] s
  bool per_key = false;
  int64_t max_keys = 10'000;  // per_key: keys kept (least recently used evicted), [1, 1e7]
};

// The field table of RateLimitConfig (Python: rl.RateLimit).
const ConfigSchema<RateLimitConfig>& RateLimitSchema();

// The policy's configuration: permits = 1 (smooth) or burst (bursty) per permits / rate seconds.
RateLimiterParams ToRateLimiterParams(const RateLimitConfig& config);

// The runtime of one rate limit: one rate, or one per order key. Thread-safe.
class RateGate {
 public:
  explicit RateGate(const RateLimitConfig& config);
  // The wait (>= 0) for a permit for `key` reserved at `now_ns`, at most
  // min(max_wait, `max_wait_ns`); nullopt refuses (nothing reserved).
  std::optional<int64_t> Reserve(int key, int64_t now_ns, int64_t max_wait_ns);
  const RateLimitConfig& config() const { return config_; }
  // Reservations so far: refused, and granted with a wait > 0 (time series, metrics).
  struct Counts {
    int64_t refused = 0;
    int64_t waits = 0;
  };
  Counts counts();

 private:
  const RateLimitConfig config_;
  std::unique_ptr<RateLimiter> single_;
  std::unique_ptr<KeyedRateLimiter> keyed_;
};

}  // namespace rlab

#endif  // RLAB_MODEL_LIMITS_H_
