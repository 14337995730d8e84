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

const ConfigSchema<LimitConfig>& LimitSchema() {
  using C = LimitConfig;
  static constexpr std::string_view kKinds[] = {"static", "aimd", "vegas", "gradient2", "envoy"};
  constexpr Bound kO = Bound::kOpen, kC = Bound::kClosed;
  static constexpr FieldSpec<C> kFields[] = {
      schema::Choice<&C::kind>("kind", kKinds, "the algorithm"),
      schema::Int<&C::initial>("initial", 1, kMaxLimit, "", "the limit at the start"),
      schema::Int<&C::min>("min", 1, kMaxLimit, "", "the lowest limit"),
      schema::Int<&C::max>("max", 1, kMaxLimit, "", "the highest limit"),
      schema::Real<&C::backoff_ratio>("backoff_ratio", 0.5, 1, kC, kO, "", "aimd: drop factor"),
      schema::Seconds<&C::timeout_ns>("timeout", 0, kMaxDurationS, kO, kC, "aimd: drop RTT"),
      schema::OrNone(
          schema::Real<&C::smoothing>("smoothing", 0, 1, kO, kC, "", "vegas, gradient2: smoothing"),
          -1.0),
      schema::Int<&C::alpha_factor>("alpha_factor", 0, 1000, "", "vegas: alpha"),
      schema::Int<&C::beta_factor>("beta_factor", 0, 1000, "", "vegas: beta"),
      schema::Int<&C::threshold_factor>("threshold_factor", 0, 1000, "", "vegas: threshold"),
      schema::Int<&C::probe_multiplier>("probe_multiplier", 1, kMaxLimit, "", "vegas: probes"),
      schema::Int<&C::queue_size>("queue_size", 0, kMaxLimit, "", "gradient2: growth"),
      schema::Int<&C::long_window>("long_window", 1, kMaxLimit, "", "gradient2: long RTT"),
      schema::Real<&C::rtt_tolerance>("rtt_tolerance", 1, 100, kC, kC, "", "gradient2: RTT rise"),
      schema::Seconds<&C::sample_interval_ns>("sample_interval", 0, kMaxDurationS, kO, kC,
                                              "envoy: between limit updates"),
      schema::Seconds<&C::min_rtt_interval_ns>("min_rtt_interval", 0, kMaxDurationS, kO, kC,
                                               "envoy: between min-RTT measurements"),
      schema::Real<&C::jitter>("jitter", 0, 1, kC, kC, "", "envoy: min-RTT jitter"),
      schema::Int<&C::request_count>("request_count", 1, kMaxLimit, "", "envoy: min-RTT samples"),
      schema::Real<&C::buffer>("buffer", 0, 10, kC, kC, "", "envoy: latency above min RTT"),
      schema::Real<&C::percentile>("percentile", 0, 1, kO, kC, "", "envoy: a window's RTT"),
      schema::Seconds<&C::window_ns>("window", 0, kMaxDurationS, kC, kC, "the update window"),
      schema::Int<&C::window_size>("window_size", 1, kMaxLimit, "", "samples a window needs"),
  };
  static constexpr ConfigSchema<C> kSchema{"Limit", kFields, "", &ValidateLimitRules};
  return kSchema;
}

absl::Status ValidateLimitRules(const LimitConfig& c) {
  auto above = [](std::string_view name, int64_t lo, int64_t hi, int64_t v) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s must be an integer in [%d, %d], got %d", name, lo, hi, v));
  };
  if (c.min > c.max) return above("min", 1, c.max, c.min);
  if (c.initial < c.min || c.initial > c.max) return above("initial", c.min, c.max, c.initial);
  if (c.alpha_factor > c.beta_factor)
    return above("alpha_factor", 0, c.beta_factor, c.alpha_factor);
  if (c.kind == LimitConfig::Kind::kEnvoy && c.window_ns > 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "window must be 0 when kind is 'envoy' (Envoy has its own sample windows), got %g",
        NsToSeconds(c.window_ns)));
  }
  return absl::OkStatus();
}

absl::Status ValidateLimit(std::string_view path, const LimitConfig& c) {
  return ValidateAt(path, LimitSchema(), c, &ValidateLimitRules);
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

const ConfigSchema<RateLimitConfig>& RateLimitSchema() {
  using C = RateLimitConfig;
  static constexpr std::string_view kModes[] = {"smooth", "bursty"};
  static constexpr FieldSpec<C> kFields[] = {
      schema::Real<&C::rate>("rate", 0, 1e7, Bound::kOpen, Bound::kClosed, "1/s",
                             "permits per second"),
      schema::Int<&C::burst>("burst", 1, 1'000'000'000, "permits", "permits saved up"),
      schema::Choice<&C::mode>("mode", kModes, "smooth (GCRA) or bursty"),
      schema::Seconds<&C::max_wait_ns>("max_wait", 0, kMaxDurationS, Bound::kClosed, Bound::kClosed,
                                       "the longest wait for a permit"),
      schema::Flag<&C::per_key>("per_key", "one rate per order key"),
      schema::Int<&C::max_keys>("max_keys", 1, 10'000'000, "keys", "keys kept when per_key"),
  };
  static constexpr ConfigSchema<C> kSchema{"RateLimit", kFields};
  return kSchema;
}

absl::Status ValidateRateLimit(std::string_view path, const RateLimitConfig& c) {
  return ValidateAt(path, RateLimitSchema(), c);
}

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
