#include "rlab/model/limits.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_format.h"
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

absl::Status ValidateLimit(std::string_view path, const LimitConfig& c) {
  auto at = [path](std::string_view name) { return absl::StrFormat("%s.%s", path, name); };
  absl::Status s = FirstError({
      CheckIntRange(at("initial"), c.initial, 1, kMaxLimit),
      CheckIntRange(at("min"), c.min, 1, kMaxLimit),
      CheckIntRange(at("max"), c.max, 1, kMaxLimit),
      CheckRange(at("backoff_ratio"), c.backoff_ratio, 0.5, 1.0, Bound::kClosed, Bound::kOpen),
      CheckDurationNs(at("timeout"), c.timeout_ns),
      c.smoothing == -1.0  // None: the algorithm's default
          ? absl::OkStatus()
          : CheckRange(at("smoothing"), c.smoothing, 0.0, 1.0, Bound::kOpen, Bound::kClosed),
      CheckIntRange(at("alpha_factor"), c.alpha_factor, 0, 1000),
      CheckIntRange(at("beta_factor"), c.beta_factor, 0, 1000),
      CheckIntRange(at("threshold_factor"), c.threshold_factor, 0, 1000),
      CheckIntRange(at("probe_multiplier"), c.probe_multiplier, 1, kMaxLimit),
      CheckIntRange(at("queue_size"), c.queue_size, 0, kMaxLimit),
      CheckIntRange(at("long_window"), c.long_window, 1, kMaxLimit),
      CheckRange(at("rtt_tolerance"), c.rtt_tolerance, 1.0, 100.0),
      CheckDurationNs(at("sample_interval"), c.sample_interval_ns),
      CheckDurationNs(at("min_rtt_interval"), c.min_rtt_interval_ns),
      CheckRange(at("jitter"), c.jitter, 0.0, 1.0),
      CheckIntRange(at("request_count"), c.request_count, 1, kMaxLimit),
      CheckRange(at("buffer"), c.buffer, 0.0, 10.0),
      CheckRange(at("percentile"), c.percentile, 0.0, 1.0, Bound::kOpen, Bound::kClosed),
      CheckDurationNs(at("window"), c.window_ns, /*allow_zero=*/true),
      CheckIntRange(at("window_size"), c.window_size, 1, kMaxLimit),
  });
  if (!s.ok()) return s;
  if (c.min > c.max) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s must be at most %s (%d), got %d", at("min"), at("max"), c.max, c.min));
  }
  if (c.initial < c.min || c.initial > c.max) {
    return absl::InvalidArgumentError(absl::StrFormat("%s must be in [%s, %s] = [%d, %d], got %d",
                                                      at("initial"), at("min"), at("max"), c.min,
                                                      c.max, c.initial));
  }
  if (c.alpha_factor > c.beta_factor) {
    return absl::InvalidArgumentError(absl::StrFormat("%s must be at most %s (%d), got %d",
                                                      at("alpha_factor"), at("beta_factor"),
                                                      c.beta_factor, c.alpha_factor));
  }
  if (c.kind == LimitConfig::Kind::kEnvoy && c.window_ns > 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s must be 0 when %s is 'envoy' (Envoy has its own sample windows), got %g s",
        at("window"), at("kind"), NsToSeconds(c.window_ns)));
  }
  return absl::OkStatus();
}

ConcurrencyLimitConfig ToConcurrencyLimitConfig(const LimitConfig& c) {
  ConcurrencyLimitConfig out;
  if (c.window_ns > 0) {
    out.window.enabled = true;
    out.window.min_time_ns = c.window_ns;
    out.window.max_time_ns = c.window_ns;
    out.window.size = c.window_size;
  }
  switch (c.kind) {
    case LimitConfig::Kind::kStatic:
      // Netflix FixedLimit: an AIMD whose bounds pin it.
      out.kind = LimitAlgorithmKind::kAimd;
      out.window.enabled = false;
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
      break;
    case LimitConfig::Kind::kEnvoy:
      out.kind = LimitAlgorithmKind::kEnvoy;
      out.window.enabled = false;
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

absl::Status ValidateRateLimit(std::string_view path, const RateLimitScenarioConfig& c) {
  auto at = [path](std::string_view name) { return absl::StrFormat("%s.%s", path, name); };
  return FirstError({
      CheckRange(at("rate"), c.rate, 0.0, 1e7, Bound::kOpen, Bound::kClosed),
      CheckIntRange(at("burst"), c.burst, 1, 1'000'000'000),
      c.mode == RateLimitMode::kSmooth || c.mode == RateLimitMode::kBursty
          ? absl::OkStatus()
          : absl::InvalidArgumentError(absl::StrFormat("%s has an unknown value", at("mode"))),
      CheckDurationNs(at("max_wait"), c.max_wait_ns, /*allow_zero=*/true),
      CheckIntRange(at("max_keys"), c.max_keys, 1, 10'000'000),
  });
}

RateLimitConfig ToRateLimitConfig(const RateLimitScenarioConfig& c) {
  RateLimitConfig out;
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

RateGate::RateGate(const RateLimitScenarioConfig& config) : config_(config) {
  const RateLimitConfig policy = ToRateLimitConfig(config);
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
