#include "rlab/policy/aws_retry.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_format.h"
#include "rlab/core/schema.h"
#include "rlab/core/validate.h"

namespace rlab {

namespace {

// Correctly rounded (5e8 ns is exactly 0.5 s), which RateClocker's bucket arithmetic relies on.
double ToSeconds(int64_t ns) { return static_cast<double>(ns) / 1e9; }

using P = ClientRateLimiter::Params;
constexpr int64_t kMaxUnits = 1'000'000'000;
constexpr std::string_view kModes[] = {"standard", "adaptive"};

}  // namespace

std::string_view AwsErrorKindName(AwsErrorKind kind) {
  switch (kind) {
    case AwsErrorKind::kSuccess:
      return "success";
    case AwsErrorKind::kTransient:
      return "transient";
    case AwsErrorKind::kTimeout:
      return "timeout";
    case AwsErrorKind::kThrottling:
      return "throttling";
    case AwsErrorKind::kPermanent:
      return "permanent";
    case AwsErrorKind::kGaveUp:
      return "gave_up";
  }
  return "permanent";
}

absl::StatusOr<AwsErrorKind> ParseAwsErrorKind(std::string_view name) {
  for (AwsErrorKind k :
       {AwsErrorKind::kSuccess, AwsErrorKind::kTransient, AwsErrorKind::kTimeout,
        AwsErrorKind::kThrottling, AwsErrorKind::kPermanent, AwsErrorKind::kGaveUp}) {
    if (AwsErrorKindName(k) == name) return k;
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "aws error kind must be one of success, transient, timeout, throttling, permanent, "
      "gave_up; got '%s'",
      name));
}

AwsErrorKind ClassifyAwsOutcome(const Outcome& outcome) {
  switch (outcome.kind) {
    case OutcomeKind::kSuccess:
      return AwsErrorKind::kSuccess;
    case OutcomeKind::kTimeout:
      return AwsErrorKind::kTimeout;
    case OutcomeKind::kConnectionReset:
      return AwsErrorKind::kTransient;
    case OutcomeKind::kHttpStatus:
      switch (outcome.http_status) {
        case 408:
        case 500:
        case 502:
        case 503:
        case 504:
          return AwsErrorKind::kTransient;
        case 429:
          return AwsErrorKind::kThrottling;
        default:
          return AwsErrorKind::kPermanent;
      }
    case OutcomeKind::kError:
      return AwsErrorKind::kPermanent;
    default:
      return AwsErrorKind::kGaveUp;  // caller gave up, or a local rejection
  }
}

// ---------------------------------------------------------------------------------------------
// quota.py

bool RetryQuota::Acquire(int64_t amount) {
  if (amount > available_) return false;
  available_ -= amount;
  return true;
}

void RetryQuota::Release(int64_t amount) { available_ += std::min(max_ - available_, amount); }

// ---------------------------------------------------------------------------------------------
// standard.py ExponentialBackoff

int64_t AwsBackoffNs(int attempt, double draw, double base_s, double max_backoff_s) {
  const double cap_s = std::min(std::ldexp(base_s, std::max(attempt, 1) - 1), max_backoff_s);
  return std::llround(draw * cap_s * 1e9);
}

// ---------------------------------------------------------------------------------------------
// throttling.py

CubicCalculator::CubicCalculator(double starting_max_rate, double start_time_s,
                                 double scale_constant, double beta)
    : scale_constant_(scale_constant),
      beta_(beta),
      w_max_(starting_max_rate),
      k_(0.0),
      last_fail_s_(start_time_s) {
  k_ = ZeroPoint();
}

// pow(x, 1/3) as botocore's `** (1 / 3.0)`, so the published K values match to the last digits.
double CubicCalculator::ZeroPoint() const {
  return std::pow(w_max_ * (1.0 - beta_) / scale_constant_, 1.0 / 3.0);
}

double CubicCalculator::SuccessReceived(double now_s) const {
  const double dt = now_s - last_fail_s_ - k_;
  return scale_constant_ * dt * dt * dt + w_max_;
}

double CubicCalculator::ErrorReceived(double current_rate, double now_s) {
  w_max_ = current_rate;
  k_ = ZeroPoint();
  last_fail_s_ = now_s;
  return current_rate * beta_;
}

// ---------------------------------------------------------------------------------------------
// bucket.py

ClientTokenBucket::ClientTokenBucket(double max_rate, double now_s, double min_rate)
    : min_rate_(min_rate), last_s_(now_s) {
  SetMaxRate(now_s, max_rate);
}

void ClientTokenBucket::Refill(double now_s) {
  // Time never runs backwards here: an earlier `now_s` (another thread's stale reading) adds
  // nothing rather than draining the bucket.
  if (now_s <= last_s_) return;
  capacity_ = std::min(max_capacity_, capacity_ + (now_s - last_s_) * fill_rate_);
  last_s_ = now_s;
}

void ClientTokenBucket::SetMaxRate(double now_s, double max_rate) {
  Refill(now_s);  // credit the time so far at the old rate
  fill_rate_ = std::max(max_rate, min_rate_);
  max_capacity_ = max_rate >= 1.0 ? max_rate : 1.0;
  capacity_ = std::min(capacity_, max_capacity_);
}

bool ClientTokenBucket::TryAcquire(double now_s, double amount) {
  Refill(now_s);
  if (amount > capacity_) return false;
  capacity_ -= amount;
  return true;
}

std::optional<double> ClientTokenBucket::Acquire(double now_s, double max_wait_s, double amount) {
  Refill(now_s);
  if (amount <= capacity_) {
    capacity_ -= amount;
    return 0.0;
  }
  // botocore sleeps (amount - capacity) / fill_rate and then takes the tokens; taking them now
  // and answering the wait is the same schedule without a sleep inside the policy.
  const double wait_s = (amount - capacity_) / fill_rate_;
  if (wait_s > max_wait_s) return std::nullopt;
  capacity_ -= amount;
  return wait_s;
}

// ---------------------------------------------------------------------------------------------
// adaptive.py

RateClocker::RateClocker(double start_s, double smoothing, double bucket_s)
    : smoothing_(smoothing),
      bucket_scale_(1.0 / bucket_s),
      // botocore starts from the whole second (math.floor(current_time())), not a half-second
      // bucket; kept so that its published rates come out the same.
      last_bucket_s_(std::floor(start_s)) {}

double RateClocker::Record(double now_s) {
  const double bucket = std::floor(now_s * bucket_scale_) / bucket_scale_;
  ++count_;
  if (bucket > last_bucket_s_) {
    const double current_rate = static_cast<double>(count_) / (bucket - last_bucket_s_);
    measured_rate_ = current_rate * smoothing_ + measured_rate_ * (1.0 - smoothing_);
    count_ = 0;
    last_bucket_s_ = bucket;
  }
  return measured_rate_;
}

ClientRateLimiter::ClientRateLimiter(const Params& params, double now_s)
    : cubic_(0.0, now_s, params.scale_constant, params.beta),
      bucket_(1.0, now_s, params.min_rate),
      clocker_(now_s, params.smoothing) {}

std::optional<double> ClientRateLimiter::OnSendingRequest(double now_s, double max_wait_s) {
  if (!enabled_) return 0.0;
  return bucket_.Acquire(now_s, max_wait_s);
}

void ClientRateLimiter::OnReceivingResponse(double now_s, bool throttling) {
  const double measured_rate = clocker_.Record(now_s);
  double new_rate;
  if (!throttling) {
    new_rate = cubic_.SuccessReceived(now_s);
  } else {
    const double rate_to_use =
        enabled_ ? std::min(measured_rate, bucket_.max_rate()) : measured_rate;
    new_rate = cubic_.ErrorReceived(rate_to_use, now_s);
    enabled_ = true;
  }
  bucket_.SetMaxRate(now_s, std::min(new_rate, kMaxRateAdjustScale * measured_rate));
}

// ---------------------------------------------------------------------------------------------
// The policy.

std::string_view AwsRetryModeName(AwsRetryMode mode) {
  return mode == AwsRetryMode::kStandard ? "standard" : "adaptive";
}

absl::StatusOr<AwsRetryMode> ParseAwsRetryMode(std::string_view name) {
  if (name == "standard") return AwsRetryMode::kStandard;
  if (name == "adaptive") return AwsRetryMode::kAdaptive;
  return absl::InvalidArgumentError(
      absl::StrFormat("aws_retry.mode must be 'standard' or 'adaptive', got '%s'", name));
}

std::string_view AwsRetryVerdictName(AwsRetryVerdict verdict) {
  switch (verdict) {
    case AwsRetryVerdict::kSucceeded:
      return "succeeded";
    case AwsRetryVerdict::kRetry:
      return "retry";
    case AwsRetryVerdict::kPermanent:
      return "permanent";
    case AwsRetryVerdict::kExhausted:
      return "exhausted";
    case AwsRetryVerdict::kQuota:
      return "quota";
  }
  return "permanent";
}

RLAB_TABLE(AwsRetrySchema, AwsRetryConfig, "AwsRetryConfig", "", nullptr,
           RLAB_CHOICE(mode, kModes, "botocore's retry mode"),
           RLAB_INT(max_attempts, 1, 100, "attempts", "the first included"),
           RLAB_INT(quota, 0, kMaxUnits, "units", "the retry quota's capacity"),
           RLAB_INT(retry_cost, 1, kMaxUnits, "units", "a retry's cost"),
           RLAB_INT(timeout_cost, 1, kMaxUnits, "units", "a retry's cost after a timeout"),
           RLAB_INT(no_retry_increment, 0, kMaxUnits, "units",
                    "refund of a success without retries"),
           schema::Real<&C::base_delay_s>("base_delay", 0, kMaxS, RLAB_ENDS_OC, "s",
                                          "scales the backoff"),
           schema::Real<&C::max_backoff_s>("max_backoff", 0, kMaxS, RLAB_ENDS_OC, "s",
                                           "cap on one backoff"),
           schema::Real<&C::adaptive, &P::min_rate>("min_rate", 0, 1e9, RLAB_ENDS_OC, "1/s",
                                                    "adaptive: the lowest send rate"),
           schema::Real<&C::adaptive, &P::beta>("beta", 0, 1, RLAB_ENDS_OO, "",
                                                "adaptive: CUBIC's decrease"),
           schema::Real<&C::adaptive, &P::scale_constant>("scale_constant", 0, 1e9, RLAB_ENDS_OC,
                                                          "", "adaptive: CUBIC's C"),
           schema::Real<&C::adaptive, &P::smoothing>("smoothing", 0, 1, RLAB_ENDS_OC, "",
                                                     "adaptive: send-rate average weight"),
           schema::Real<&C::max_wait_s>("max_wait", 0, kMaxS, RLAB_ENDS_CC, "s",
                                        "adaptive: longest wait for a send token"));
absl::Status Validate(const AwsRetryConfig& c) {
  return ValidateAt("aws_retry", AwsRetrySchema(), c);
}

AwsRetryPolicy::AwsRetryPolicy(const AwsRetryConfig& config, int64_t now_ns)
    : config_(config), quota_(config.quota) {
  if (config.mode == AwsRetryMode::kAdaptive) limiter_.emplace(config.adaptive, ToSeconds(now_ns));
}

absl::StatusOr<std::unique_ptr<AwsRetryPolicy>> AwsRetryPolicy::Create(const AwsRetryConfig& config,
                                                                       int64_t now_ns) {
  if (absl::Status s = Validate(config); !s.ok()) return s;
  return std::make_unique<AwsRetryPolicy>(config, now_ns);
}

std::optional<int64_t> AwsRetryPolicy::BeforeAttempt(int64_t now_ns) {
  MutexLock lock(&mu_);
  if (!limiter_.has_value()) return 0;
  const std::optional<double> wait_s =
      limiter_->OnSendingRequest(ToSeconds(now_ns), config_.max_wait_s);
  if (!wait_s.has_value()) return std::nullopt;
  return static_cast<int64_t>(std::ceil(*wait_s * 1e9));
}

AwsRetryStep AwsRetryPolicy::OnAttemptEnd(int attempt, int64_t last_cost, AwsErrorKind kind,
                                          int64_t now_ns, double draw) {
  MutexLock lock(&mu_);
  // adaptive.py hooks the limiter to every response (needs-retry), successes included.
  if (limiter_.has_value() && kind != AwsErrorKind::kGaveUp) {
    limiter_->OnReceivingResponse(ToSeconds(now_ns), kind == AwsErrorKind::kThrottling);
  }
  switch (kind) {
    case AwsErrorKind::kSuccess:
      // standard.py release_retry_quota: the last retry's cost, or _NO_RETRY_INCREMENT.
      quota_.Release(last_cost > 0 ? last_cost : config_.no_retry_increment);
      return {AwsRetryVerdict::kSucceeded, 0, 0};
    case AwsErrorKind::kPermanent:
    case AwsErrorKind::kGaveUp:
      return {AwsRetryVerdict::kPermanent, 0, 0};
    case AwsErrorKind::kTransient:
    case AwsErrorKind::kTimeout:
    case AwsErrorKind::kThrottling:
      break;
  }
  // StandardRetryConditions checks max attempts before RetryHandler asks the quota.
  if (attempt >= config_.max_attempts) return {AwsRetryVerdict::kExhausted, 0, 0};
  const int64_t cost = kind == AwsErrorKind::kTimeout ? config_.timeout_cost : config_.retry_cost;
  if (!quota_.Acquire(cost)) return {AwsRetryVerdict::kQuota, 0, 0};
  return {AwsRetryVerdict::kRetry,
          AwsBackoffNs(attempt, draw, config_.base_delay_s, config_.max_backoff_s), cost};
}

AwsRetrySnapshot AwsRetryPolicy::Snapshot() const {
  MutexLock lock(&mu_);
  AwsRetrySnapshot s;
  s.quota_available = quota_.available();
  s.quota_max = quota_.max();
  if (limiter_.has_value()) {
    s.limiter_enabled = limiter_->enabled();
    s.fill_rate = limiter_->bucket().fill_rate();
    s.tokens = limiter_->bucket().available();
    s.measured_rate = limiter_->clocker().measured_rate();
  }
  return s;
}

}  // namespace rlab
