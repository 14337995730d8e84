#include "rlab/model/limits.h"

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

}  // namespace rlab
