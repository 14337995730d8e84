#include "rlab/policy/retry_budget.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "rlab/core/clock.h"
#include "rlab/core/schema.h"
#include "rlab/core/validate.h"
#include "rlab/policy/throttle.h"

namespace rlab {
namespace {

// Rounds to integer thousandths. A6 implementations keep three decimals (C-core parses the
// decimal string, grpc-java scales by 1000); rounding rather than truncating keeps e.g. 0.57
// (569.999... thousandths as a double) at 570.
int64_t ToMilli(double v) { return static_cast<int64_t>(std::llround(v * 1000.0)); }

absl::Status CheckMilli(std::string_view name, double v) {
  if (ToMilli(v) >= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "%s must be at least 0.0005 so that it rounds to 0.001 or more (gRFC A6 keeps 3 decimal "
      "places), got %g",
      name, v));
}

// A retry that would land exactly on the allowance must not be refused because ratio x requests
// came out as 28.999999999999996 instead of 29: compare with a relative tolerance far below one
// retry.
constexpr double kRelativeTolerance = 1e-9;

}  // namespace

// ---------------------------------------------------------------------------------------------
// TokenBucketBudget

// gRFC A6 only asks for tokenRatio > 0 (gRPC's own tests use 1.6). A ratio above max_tokens
// refills the whole bucket in one success, so larger values add nothing: the cap is max_tokens'
// own.
RLAB_TABLE(TokenBucketSchema, TokenBucketConfig, "TokenBucketConfig", "token_bucket",
           &ValidateTokenBucketRules,
           RLAB_REAL(max_tokens, 0, 1000, OC, "tokens", "capacity and starting level"),
           RLAB_REAL(token_ratio, 0, 1000, OC, "tokens", "tokens returned by each success"));

absl::Status Validate(const TokenBucketConfig& c) { return ValidateAt("", TokenBucketSchema(), c); }

absl::Status ValidateTokenBucketRules(const TokenBucketConfig& c) {
  return FirstError(
      {CheckMilli("max_tokens", c.max_tokens), CheckMilli("token_ratio", c.token_ratio)});
}

TokenBucketBudget::TokenBucketBudget(const TokenBucketConfig& config)
    : max_milli_tokens_(ToMilli(config.max_tokens)),
      milli_token_ratio_(ToMilli(config.token_ratio)),
      threshold_milli_tokens_(max_milli_tokens_ / 2) {
  state_.milli_tokens = max_milli_tokens_;  // A6: the bucket starts full
}

absl::StatusOr<std::unique_ptr<TokenBucketBudget>> TokenBucketBudget::Create(
    const TokenBucketConfig& config) {
  absl::Status s = Validate(config);
  if (!s.ok()) return s;
  return std::make_unique<TokenBucketBudget>(config);
}

void TokenBucketBudget::OnRequest(int64_t /*now_ns*/) {}

bool TokenBucketBudget::TryAcquireRetry(int64_t /*now_ns*/) {
  MutexLock lock(&mu_);
  const bool allowed = state_.milli_tokens > threshold_milli_tokens_;
  ++(allowed ? state_.retries_allowed : state_.retries_refused);
  return allowed;
}

void TokenBucketBudget::OnOutcome(int64_t /*now_ns*/, bool success, bool retryable_failure) {
  if (!success && !retryable_failure) return;
  MutexLock lock(&mu_);
  if (success) {
    state_.milli_tokens = std::min(max_milli_tokens_, state_.milli_tokens + milli_token_ratio_);
  } else {
    state_.milli_tokens = std::max<int64_t>(0, state_.milli_tokens - 1000);
  }
}

int64_t TokenBucketBudget::milli_tokens() const {
  MutexLock lock(&mu_);
  return state_.milli_tokens;
}

TokenBucketBudgetSnapshot TokenBucketBudget::Snapshot() const {
  MutexLock lock(&mu_);
  return state_;
}

// ---------------------------------------------------------------------------------------------
// RatioBudget

RLAB_TABLE(RatioBudgetSchema, RatioBudgetConfig, "RatioBudgetConfig", "ratio",
           &ValidateRatioBudgetRules,
           RLAB_REAL(ratio, 0, 1000, CC, "", "retries allowed per request in the window"),
           RLAB_SECONDS(window, 0, kMaxDurationS, OC, "the sliding window"),
           schema::Real<&C::min_retries_per_s>("min_retries_per_second", 0, 1e6, RLAB_ENDS_CC,
                                               "1/s", "retries per second always allowed"),
           schema::Int<&C::num_buckets>("buckets", 1, 1000, "buckets",
                                        "buckets of the sliding window"));

absl::Status Validate(const RatioBudgetConfig& c) { return ValidateAt("", RatioBudgetSchema(), c); }

absl::Status ValidateRatioBudgetRules(const RatioBudgetConfig& c) {
  return ValidateBuckets("buckets", c.num_buckets, "window", c.window_ns);
}

RatioBudget::RatioBudget(const RatioBudgetConfig& config)
    : config_(config),
      // Division, not NsToSeconds: 1e10 ns must be exactly 10 s for the floor to be exact.
      floor_retries_(config.min_retries_per_s * (static_cast<double>(config.window_ns) / 1e9)),
      window_(config.window_ns, config.num_buckets) {}

absl::StatusOr<std::unique_ptr<RatioBudget>> RatioBudget::Create(const RatioBudgetConfig& config) {
  absl::Status s = Validate(config);
  if (!s.ok()) return s;
  return std::make_unique<RatioBudget>(config);
}

double RatioBudget::Allowance(int64_t requests) const {
  return config_.ratio * static_cast<double>(requests) + floor_retries_;
}

void RatioBudget::OnRequest(int64_t now_ns) {
  MutexLock lock(&mu_);
  window_.Add(now_ns, kRequests);
}

bool RatioBudget::TryAcquireRetry(int64_t now_ns) {
  MutexLock lock(&mu_);
  const TimeWindowCounter::Counts& totals = window_.Totals(now_ns);
  const double allowance = Allowance(totals[kRequests]);
  const double wanted = static_cast<double>(totals[kRetries] + 1);
  if (wanted > allowance + kRelativeTolerance * std::max(1.0, allowance)) {
    ++retries_refused_;
    return false;
  }
  window_.Add(now_ns, kRetries);
  return true;
}

void RatioBudget::OnOutcome(int64_t /*now_ns*/, bool /*success*/, bool /*retryable_failure*/) {}

RatioBudgetSnapshot RatioBudget::Snapshot(int64_t now_ns) {
  MutexLock lock(&mu_);
  const TimeWindowCounter::Counts& totals = window_.Totals(now_ns);
  RatioBudgetSnapshot snap;
  snap.requests = totals[kRequests];
  snap.retries = totals[kRetries];
  snap.allowance = Allowance(snap.requests);
  snap.retries_refused = retries_refused_;
  return snap;
}

}  // namespace rlab
