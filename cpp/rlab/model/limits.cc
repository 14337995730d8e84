#include "rlab/model/limits.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_format.h"
#include "rlab/core/schema.h"
#include "rlab/core/validate.h"

namespace rlab {
namespace {

constexpr int64_t kMaxLimit = 1'000'000;
constexpr std::string_view kLimitKinds[] = {"static", "aimd", "vegas", "gradient2", "envoy"};
constexpr std::string_view kRateModes[] = {"smooth", "bursty"};

}  // namespace

std::string_view LimitKindName(LimitConfig::Kind kind) {
  switch (kind) {
    case LimitConfig::Kind::kStatic:
      return "static";
    case LimitConfig::Kind::kAimd:
      return "aimd";
    case LimitConfig::Kind::kVegas:
      return "vegas";
    case LimitConfig::Kind::kGradient2:
      return "gradient2";
    case LimitConfig::Kind::kEnvoy:
      return "envoy";
  }
  return "?";
}

RLAB_TABLE(LimitSchema, LimitConfig, "Limit", "", &ValidateLimitRules,
           RLAB_CHOICE(kind, kLimitKinds, "the algorithm"),
           RLAB_INT(initial, 1, kMaxLimit, "", "the limit at the start"),
           RLAB_INT(min, 1, kMaxLimit, "", "the lowest limit"),
           RLAB_INT(max, 1, kMaxLimit, "", "the highest limit"),
           RLAB_REAL(backoff_ratio, 0.5, 1, CO, "", "aimd: drop factor"),
           RLAB_SECONDS(timeout, 0, kMaxS, OC, "aimd: drop RTT"),
           schema::OrNone(RLAB_REAL(smoothing, 0, 1, OC, "", "vegas, gradient2: smoothing"), -1.0),
           RLAB_INT(alpha_factor, 0, 1000, "", "vegas: alpha"),
           RLAB_INT(beta_factor, 0, 1000, "", "vegas: beta"),
           RLAB_INT(threshold_factor, 0, 1000, "", "vegas: threshold"),
           RLAB_INT(probe_multiplier, 1, kMaxLimit, "", "vegas: probes"),
           RLAB_INT(queue_size, 0, kMaxLimit, "", "gradient2: growth"),
           RLAB_INT(long_window, 1, kMaxLimit, "", "gradient2: long RTT"),
           RLAB_REAL(rtt_tolerance, 1, 100, CC, "", "gradient2: RTT rise"),
           RLAB_SECONDS(sample_interval, 0, kMaxS, OC, "envoy: between limit updates"),
           RLAB_SECONDS(min_rtt_interval, 0, kMaxS, OC, "envoy: between min-RTT measurements"),
           RLAB_REAL(jitter, 0, 1, CC, "", "envoy: min-RTT jitter"),
           RLAB_INT(request_count, 1, kMaxLimit, "", "envoy: min-RTT samples"),
           RLAB_REAL(buffer, 0, 10, CC, "", "envoy: latency above min RTT"),
           RLAB_REAL(percentile, 0, 1, OC, "", "envoy: a window's RTT"),
           RLAB_SECONDS(window, 0, kMaxS, CC, "the update window"),
           RLAB_INT(window_size, 1, kMaxLimit, "", "samples a window needs"));

// The bounds one field puts on another, worded as the table's ranges.
absl::Status ValidateLimitRules(const LimitConfig& c) {
  absl::Status s = FirstError({CheckIntRange("min", c.min, 1, c.max),
                               CheckIntRange("initial", c.initial, c.min, c.max),
                               CheckIntRange("alpha_factor", c.alpha_factor, 0, c.beta_factor)});
  if (!s.ok() || c.kind != LimitConfig::Kind::kEnvoy || c.window_ns == 0) return s;
  return absl::InvalidArgumentError(absl::StrFormat(
      "window must be 0 when kind is 'envoy' (Envoy has its own sample windows), got %g",
      NsToSeconds(c.window_ns)));
}

ConcurrencyLimitConfig ToConcurrencyLimitConfig(const LimitConfig& c) {
  ConcurrencyLimitConfig out;
  std::optional<SampleWindowConfig> window;
  if (c.window_ns > 0) {
    window.emplace();
    window->min_time_ns = c.window_ns;
    window->max_time_ns = c.window_ns;
    window->size = c.window_size;
  }
  switch (c.kind) {
    case LimitConfig::Kind::kStatic:
      // Netflix FixedLimit: an AIMD whose bounds pin it.
      out.kind = LimitAlgorithmKind::kAimd;
      out.aimd.initial_limit = c.initial;
      out.aimd.min_limit = c.initial;
      out.aimd.max_limit = c.initial;
      break;
    case LimitConfig::Kind::kAimd:
      out.kind = LimitAlgorithmKind::kAimd;
      out.aimd.initial_limit = c.initial;
      out.aimd.min_limit = c.min;
      out.aimd.max_limit = c.max;
      out.aimd.backoff_ratio = c.backoff_ratio;
      out.aimd.timeout_ns = c.timeout_ns;
      out.aimd.window = window;
      break;
    case LimitConfig::Kind::kVegas:
      out.kind = LimitAlgorithmKind::kVegas;
      out.vegas.initial_limit = c.initial;
      out.vegas.max_limit = c.max;
      if (c.smoothing > 0.0) out.vegas.smoothing = c.smoothing;
      out.vegas.alpha_factor = c.alpha_factor;
      out.vegas.beta_factor = c.beta_factor;
      out.vegas.threshold_factor = c.threshold_factor;
      out.vegas.probe_multiplier = c.probe_multiplier;
      out.vegas.window = window;
      break;
    case LimitConfig::Kind::kGradient2:
      out.kind = LimitAlgorithmKind::kGradient2;
      out.gradient2.initial_limit = c.initial;
      out.gradient2.min_limit = c.min;
      out.gradient2.max_limit = c.max;
      if (c.smoothing > 0.0) out.gradient2.smoothing = c.smoothing;
      out.gradient2.queue_size = c.queue_size;
      out.gradient2.long_window = c.long_window;
      out.gradient2.rtt_tolerance = c.rtt_tolerance;
      out.gradient2.window = window;
      break;
    case LimitConfig::Kind::kEnvoy:
      out.kind = LimitAlgorithmKind::kEnvoy;
      out.envoy.sample_interval_ns = c.sample_interval_ns;
      out.envoy.min_rtt_interval_ns = c.min_rtt_interval_ns;
      out.envoy.jitter = c.jitter;
      out.envoy.request_count = c.request_count;
      out.envoy.min_concurrency = c.min;
      out.envoy.buffer = c.buffer;
      out.envoy.max_limit = c.max;
      out.envoy.percentile = c.percentile;
      break;
  }
  return out;
}

LimitSampleKind ClientLimitSample(const Outcome& o) {
  switch (o.kind) {
    case OutcomeKind::kSuccess:
      return LimitSampleKind::kSuccess;
    case OutcomeKind::kTimeout:
    case OutcomeKind::kConnectionReset:
      return LimitSampleKind::kDropped;
    case OutcomeKind::kHttpStatus:
      return o.http_status == 429 || o.http_status == 502 || o.http_status == 503 ||
                     o.http_status == 504
                 ? LimitSampleKind::kDropped
                 : LimitSampleKind::kSuccess;
    case OutcomeKind::kCancelled:
    case OutcomeKind::kDeadlineExceeded:
      return LimitSampleKind::kIgnore;
    default:
      return LimitSampleKind::kSuccess;
  }
}

RLAB_TABLE(RateLimitSchema, RateLimitConfig, "RateLimit", "", nullptr,
           RLAB_REAL(rate, 0, 1e7, OC, "1/s", "permits per second"),
           RLAB_INT(burst, 1, 1'000'000'000, "permits", "permits saved up"),
           RLAB_CHOICE(mode, kRateModes, "smooth (GCRA) or bursty"),
           RLAB_SECONDS(max_wait, 0, kMaxS, CC, "the longest wait for a permit"),
           RLAB_FLAG(per_key, "one rate per order key"),
           RLAB_INT(max_keys, 1, 10'000'000, "keys", "keys kept when per_key"));

RateLimiterParams ToRateLimiterParams(const RateLimitConfig& c) {
  RateLimiterParams out;
  out.mode = c.mode;
  out.permits = c.mode == RateLimitMode::kBursty ? c.burst : 1;
  out.burst = c.burst;
  // At least one nanosecond per permit (rate <= 1e7 gives 100 ns); the period stays within the
  // policy's bounds for burst / rate <= 1e6 s, and is capped there otherwise.
  const double period_ns = static_cast<double>(out.permits) * 1e9 / c.rate;
  out.period_ns = static_cast<int64_t>(
      std::clamp(std::round(period_ns), static_cast<double>(out.permits), 1e6 * 1e9));
  out.max_keys = c.max_keys;
  return out;
}

RateGate::RateGate(const RateLimitConfig& config) : config_(config) {
  const RateLimiterParams policy = ToRateLimiterParams(config);
  if (config.per_key) {
    keyed_ = std::make_unique<KeyedRateLimiter>(policy);
  } else {
    single_ = std::make_unique<RateLimiter>(policy);
  }
}

std::optional<int64_t> RateGate::Reserve(int key, int64_t now_ns, int64_t max_wait_ns) {
  const int64_t wait_ns = std::max<int64_t>(0, std::min(config_.max_wait_ns, max_wait_ns));
  if (keyed_) return keyed_->Reserve(std::to_string(key), now_ns, wait_ns);
  return single_->Reserve(now_ns, wait_ns);
}

RateGate::Counts RateGate::counts() {
  const RateLimitStats s = keyed_ ? keyed_->Stats() : single_->Stats();
  return {s.rejected, s.reserved};
}

}  // namespace rlab
