#include "rlab/policy/concurrency_limit.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_format.h"
#include "rlab/core/validate.h"

namespace rlab {
namespace {

constexpr int64_t kMaxLimit = 1'000'000;

// `lo_name` <= `hi_name`, both already in range.
absl::Status CheckOrder(std::string_view lo_name, int64_t lo, std::string_view hi_name,
                        int64_t hi) {
  if (lo <= hi) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrFormat("%s must be at most %s (%d), got %d", lo_name, hi_name, hi, lo));
}

absl::Status ValidateAimd(const AimdConfig& c) {
  absl::Status s = FirstError({
      CheckIntRange("aimd.min_limit", c.min_limit, 1, kMaxLimit),
      CheckIntRange("aimd.max_limit", c.max_limit, 1, kMaxLimit),
      CheckIntRange("aimd.initial_limit", c.initial_limit, 1, kMaxLimit),
      CheckRange("aimd.backoff_ratio", c.backoff_ratio, 0.5, 1.0, Bound::kClosed, Bound::kOpen),
      CheckDurationNs("aimd.timeout", c.timeout_ns),
  });
  if (!s.ok()) return s;
  return FirstError({
      CheckOrder("aimd.min_limit", c.min_limit, "aimd.max_limit", c.max_limit),
      CheckOrder("aimd.min_limit", c.min_limit, "aimd.initial_limit", c.initial_limit),
      CheckOrder("aimd.initial_limit", c.initial_limit, "aimd.max_limit", c.max_limit),
  });
}

absl::Status ValidateVegas(const VegasConfig& c) {
  absl::Status s = FirstError({
      CheckIntRange("vegas.max_limit", c.max_limit, 1, kMaxLimit),
      CheckIntRange("vegas.initial_limit", c.initial_limit, 1, kMaxLimit),
      CheckRange("vegas.smoothing", c.smoothing, 0.0, 1.0, Bound::kOpen, Bound::kClosed),
      CheckIntRange("vegas.alpha_factor", c.alpha_factor, 0, 1000),
      CheckIntRange("vegas.beta_factor", c.beta_factor, 0, 1000),
      CheckIntRange("vegas.threshold_factor", c.threshold_factor, 0, 1000),
      CheckIntRange("vegas.probe_multiplier", c.probe_multiplier, 1, kMaxLimit),
  });
  if (!s.ok()) return s;
  return FirstError({
      CheckOrder("vegas.initial_limit", c.initial_limit, "vegas.max_limit", c.max_limit),
      CheckOrder("vegas.alpha_factor", c.alpha_factor, "vegas.beta_factor", c.beta_factor),
  });
}

absl::Status ValidateGradient2(const Gradient2Config& c) {
  absl::Status s = FirstError({
      CheckIntRange("gradient2.min_limit", c.min_limit, 1, kMaxLimit),
      CheckIntRange("gradient2.max_limit", c.max_limit, 1, kMaxLimit),
      CheckIntRange("gradient2.initial_limit", c.initial_limit, 1, kMaxLimit),
      CheckRange("gradient2.smoothing", c.smoothing, 0.0, 1.0, Bound::kOpen, Bound::kClosed),
      CheckIntRange("gradient2.queue_size", c.queue_size, 0, kMaxLimit),
      CheckIntRange("gradient2.long_window", c.long_window, 1, kMaxLimit),
      CheckRange("gradient2.rtt_tolerance", c.rtt_tolerance, 1.0, 100.0),
  });
  if (!s.ok()) return s;
  return FirstError({
      CheckOrder("gradient2.min_limit", c.min_limit, "gradient2.max_limit", c.max_limit),
      CheckOrder("gradient2.min_limit", c.min_limit, "gradient2.initial_limit", c.initial_limit),
      CheckOrder("gradient2.initial_limit", c.initial_limit, "gradient2.max_limit", c.max_limit),
  });
}

absl::Status ValidateEnvoy(const EnvoyGradientConfig& c) {
  absl::Status s = FirstError({
      CheckDurationNs("envoy.sample_interval", c.sample_interval_ns),
      CheckDurationNs("envoy.min_rtt_interval", c.min_rtt_interval_ns),
      CheckRange("envoy.jitter", c.jitter, 0.0, 1.0),
      CheckIntRange("envoy.request_count", c.request_count, 1, kMaxLimit),
      CheckIntRange("envoy.max_limit", c.max_limit, 1, kMaxLimit),
      CheckIntRange("envoy.min_concurrency", c.min_concurrency, 1, kMaxLimit),
      CheckRange("envoy.buffer", c.buffer, 0.0, 10.0),
      CheckRange("envoy.percentile", c.percentile, 0.0, 1.0, Bound::kOpen, Bound::kClosed),
      CheckIntRange("envoy.max_samples", c.max_samples, 1, kMaxLimit),
  });
  if (!s.ok()) return s;
  return CheckOrder("envoy.min_concurrency", c.min_concurrency, "envoy.max_limit", c.max_limit);
}

}  // namespace

std::string_view LimitAlgorithmName(LimitAlgorithmKind kind) {
  switch (kind) {
    case LimitAlgorithmKind::kAimd:
      return "aimd";
    case LimitAlgorithmKind::kVegas:
      return "vegas";
    case LimitAlgorithmKind::kGradient2:
      return "gradient2";
    case LimitAlgorithmKind::kEnvoy:
      return "envoy";
  }
  return "?";
}

absl::StatusOr<LimitAlgorithmKind> ParseLimitAlgorithm(std::string_view name) {
  for (LimitAlgorithmKind k : {LimitAlgorithmKind::kAimd, LimitAlgorithmKind::kVegas,
                               LimitAlgorithmKind::kGradient2, LimitAlgorithmKind::kEnvoy}) {
    if (LimitAlgorithmName(k) == name) return k;
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "algorithm must be one of 'aimd', 'vegas', 'gradient2', 'envoy', got '%s'", name));
}

absl::Status ValidateWindow(const SampleWindowConfig& c) {
  absl::Status s = FirstError({
      CheckDurationNs("window.min_time", c.min_time_ns),
      CheckDurationNs("window.max_time", c.max_time_ns),
      CheckIntRange("window.size", c.size, 1, kMaxLimit),
      CheckDurationNs("window.min_rtt_threshold", c.min_rtt_threshold_ns, /*allow_zero=*/true),
  });
  if (!s.ok()) return s;
  if (c.min_time_ns > c.max_time_ns) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "window.min_time must be at most window.max_time (%g s), got %g s",
        static_cast<double>(c.max_time_ns) / 1e9, static_cast<double>(c.min_time_ns) / 1e9));
  }
  return absl::OkStatus();
}

absl::Status Validate(const ConcurrencyLimitConfig& config) {
  if (config.window.enabled) {
    if (config.kind == LimitAlgorithmKind::kEnvoy) {
      return absl::InvalidArgumentError(
          "window applies to aimd, vegas and gradient2; envoy has its own sample windows");
    }
    absl::Status s = ValidateWindow(config.window);
    if (!s.ok()) return s;
  }
  switch (config.kind) {
    case LimitAlgorithmKind::kAimd:
      return ValidateAimd(config.aimd);
    case LimitAlgorithmKind::kVegas:
      return ValidateVegas(config.vegas);
    case LimitAlgorithmKind::kGradient2:
      return ValidateGradient2(config.gradient2);
    case LimitAlgorithmKind::kEnvoy:
      return ValidateEnvoy(config.envoy);
  }
  return absl::InvalidArgumentError("algorithm is not a known kind");
}

int64_t Log10Step(int64_t limit) {
  if (limit < 10) return 1;
  return std::max<int64_t>(1, static_cast<int64_t>(std::log10(static_cast<double>(limit))));
}

// --- AIMD: Netflix AIMDLimit._update --------------------------------------------------------

void AimdLimit::Update(int64_t /*now_ns*/, const LimitSample& s) {
  int64_t limit = limit_;
  if (s.dropped || s.rtt_ns > config_.timeout_ns) {
    limit = static_cast<int64_t>(static_cast<double>(limit) * config_.backoff_ratio);
  } else if (s.inflight * 2 >= limit) {
    // Grow only while the limit is in use: an idle client proves nothing about a higher limit.
    limit = limit + 1;
  }
  limit_ = std::min(config_.max_limit, std::max(config_.min_limit, limit));
}

// --- Vegas: Netflix VegasLimit._update / updateEstimatedLimit ---------------------------------

void VegasLimit::Update(int64_t /*now_ns*/, const LimitSample& s) {
  if (probe_jitter_ < 0) probe_jitter_ = 0.5 + 0.5 * s.u;
  ++probe_count_;
  // Periodically forget the no-load RTT, so that a lasting change of the base latency is learnt.
  if (probe_jitter_ * static_cast<double>(config_.probe_multiplier) * estimate_ <=
      static_cast<double>(probe_count_)) {
    probe_jitter_ = 0.5 + 0.5 * s.u;
    probe_count_ = 0;
    rtt_noload_ns_ = s.rtt_ns;
    return;
  }
  if (rtt_noload_ns_ == 0 || s.rtt_ns < rtt_noload_ns_) {
    rtt_noload_ns_ = s.rtt_ns;
    return;
  }
  const double queue = std::ceil(
      estimate_ * (1.0 - static_cast<double>(rtt_noload_ns_) / static_cast<double>(s.rtt_ns)));
  const int64_t step = Log10Step(static_cast<int64_t>(estimate_));
  double next;
  if (s.dropped) {
    next = estimate_ - static_cast<double>(step);
  } else if (static_cast<double>(s.inflight * 2) < estimate_) {
    return;  // not close to the limit: no evidence for a change
  } else {
    const double alpha = static_cast<double>(config_.alpha_factor * step);
    const double beta = static_cast<double>(config_.beta_factor * step);
    const double threshold = static_cast<double>(config_.threshold_factor * step);
    if (queue <= threshold) {
      next = estimate_ + beta;  // no queueing at all: grow fast
    } else if (queue < alpha) {
      next = estimate_ + static_cast<double>(step);
    } else if (queue > beta) {
      next = estimate_ - static_cast<double>(step);
    } else {
      return;  // alpha <= queue <= beta: the sweet spot
    }
  }
  next = std::max(1.0, std::min(static_cast<double>(config_.max_limit), next));
  estimate_ = (1.0 - config_.smoothing) * estimate_ + config_.smoothing * next;
}

// --- Gradient2: Netflix Gradient2Limit._update --------------------------------------------------

void Gradient2Limit::Update(int64_t /*now_ns*/, const LimitSample& s) {
  const double short_rtt = static_cast<double>(s.rtt_ns);
  // The long RTT: the mean of the first kWarmupSamples samples, then an exponential average
  // (Netflix ExpAvgMeasurement(window, warmup = 10)).
  if (long_rtt_count_ < kWarmupSamples) {
    ++long_rtt_count_;
    long_rtt_sum_ns_ += short_rtt;
    long_rtt_ns_ = long_rtt_sum_ns_ / static_cast<double>(long_rtt_count_);
  } else {
    const double f = 2.0 / (static_cast<double>(config_.long_window) + 1.0);
    long_rtt_ns_ = long_rtt_ns_ * (1.0 - f) + short_rtt * f;
  }
  const double long_rtt = long_rtt_ns_;
  // After a long overload the long RTT lags far above the current one: decay it faster.
  if (long_rtt / short_rtt > 2.0) long_rtt_ns_ *= 0.95;
  if (static_cast<double>(s.inflight) < estimate_ / 2.0) return;  // app-limited: keep the limit
  const double gradient =
      std::max(0.5, std::min(1.0, config_.rtt_tolerance * long_rtt / short_rtt));
  double next = estimate_ * gradient + static_cast<double>(config_.queue_size);
  next = estimate_ * (1.0 - config_.smoothing) + next * config_.smoothing;
  estimate_ = std::max(static_cast<double>(config_.min_limit),
                       std::min(static_cast<double>(config_.max_limit), next));
}

// --- Envoy's gradient controller ---------------------------------------------------------------

int64_t EnvoyGradientLimit::NewLimit(const EnvoyGradientConfig& c, int64_t limit,
                                     int64_t min_rtt_ns, int64_t sample_rtt_ns, double* gradient) {
  const double buffered = static_cast<double>(min_rtt_ns) * (1.0 + c.buffer);
  const double sample = static_cast<double>(std::max<int64_t>(1, sample_rtt_ns));
  const double g = std::max(0.5, std::min(2.0, buffered / sample));
  if (gradient != nullptr) *gradient = g;
  const double scaled = static_cast<double>(limit) * g;
  // The burst headroom sqrt(limit) lets the limit probe upwards even at gradient 1.
  const auto next = static_cast<int64_t>(scaled + std::sqrt(scaled));
  return std::max(c.min_concurrency, std::min(c.max_limit, next));
}

int64_t EnvoyGradientLimit::Quantile(std::vector<int64_t>& samples, double q) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const auto n = static_cast<double>(samples.size());
  auto rank = static_cast<int64_t>(std::ceil(q * n));
  rank = std::max<int64_t>(1, std::min<int64_t>(rank, static_cast<int64_t>(samples.size())));
  return samples[static_cast<size_t>(rank - 1)];
}

void EnvoyGradientLimit::SetLimit(int64_t new_limit, int64_t now_ns) {
  const int64_t old = limit_;
  limit_ = new_limit;
  if (!in_min_rtt_window_ && old == config_.min_concurrency &&
      new_limit == config_.min_concurrency) {
    ++consecutive_min_;
  } else {
    consecutive_min_ = 0;
  }
  // Pinned at the minimum for 5 windows in a row: the min RTT is probably wrong; measure again.
  if (consecutive_min_ >= 5) next_min_rtt_ns_ = now_ns;
}

void EnvoyGradientLimit::EnterMinRttWindow(int64_t now_ns) {
  in_min_rtt_window_ = true;
  deferred_limit_ = limit_;
  SetLimit(config_.min_concurrency, now_ns);
  samples_.clear();
  seen_ = 0;
  min_rtt_epoch_ns_ = now_ns;
}

void EnvoyGradientLimit::Advance(int64_t now_ns) {
  if (!started_) {
    // Envoy enters its first min-RTT window at construction; here at the first call.
    started_ = true;
    next_sample_ns_ = now_ns + config_.sample_interval_ns;
    EnterMinRttWindow(now_ns);
    return;
  }
  // At most one of each timer per call, in deadline order; a min-RTT window ends by sample count.
  for (int i = 0; i < 2 && !in_min_rtt_window_; ++i) {
    const bool min_due = now_ns >= next_min_rtt_ns_;
    const bool sample_due = now_ns >= next_sample_ns_;
    if (sample_due && (!min_due || next_sample_ns_ <= next_min_rtt_ns_)) {
      if (!samples_.empty()) {
        sample_rtt_ns_ = Quantile(samples_, config_.percentile);
        samples_.clear();
        seen_ = 0;
        SetLimit(NewLimit(config_, limit_, min_rtt_ns_, sample_rtt_ns_, &gradient_), now_ns);
      }
      next_sample_ns_ = now_ns + config_.sample_interval_ns;
    } else if (min_due) {
      EnterMinRttWindow(now_ns);
    } else {
      return;
    }
  }
}

void EnvoyGradientLimit::Update(int64_t now_ns, const LimitSample& s) {
  Advance(now_ns);
  // Envoy cancels the sample of a request that got no response; and requests admitted before the
  // current min-RTT window may not represent the minimum.
  if (s.dropped || s.start_ns < min_rtt_epoch_ns_) return;
  // Reservoir sampling keeps the window's memory bounded by max_samples.
  ++seen_;
  if (static_cast<int64_t>(samples_.size()) < config_.max_samples) {
    samples_.push_back(s.rtt_ns);
  } else {
    const auto j = static_cast<int64_t>(s.u * static_cast<double>(seen_));
    if (j < config_.max_samples) samples_[static_cast<size_t>(j)] = s.rtt_ns;
  }
  if (in_min_rtt_window_ && seen_ >= config_.request_count) {
    min_rtt_ns_ = Quantile(samples_, config_.percentile);
    samples_.clear();
    seen_ = 0;
    SetLimit(deferred_limit_, now_ns);  // still in the window: no "pinned at minimum" count
    in_min_rtt_window_ = false;
    // Envoy: interval + (random % ceil(interval * jitter)) milliseconds.
    const double jitter_range =
        std::ceil(static_cast<double>(config_.min_rtt_interval_ns) * config_.jitter);
    next_min_rtt_ns_ =
        now_ns + config_.min_rtt_interval_ns + static_cast<int64_t>(s.u * jitter_range);
    next_sample_ns_ = now_ns + config_.sample_interval_ns;
  }
}

// --- Netflix WindowedLimit.onSample -------------------------------------------------------------

void WindowedLimit::Update(int64_t now_ns, const LimitSample& s) {
  if (s.rtt_ns < config_.min_rtt_threshold_ns) return;
  ++count_;
  sum_rtt_ns_ += s.rtt_ns;
  min_rtt_ns_ = min_rtt_ns_ == 0 ? s.rtt_ns : std::min(min_rtt_ns_, s.rtt_ns);
  max_inflight_ = std::max(max_inflight_, s.inflight);
  dropped_ = dropped_ || s.dropped;
  const int64_t end_ns = s.start_ns + s.rtt_ns;
  if (end_ns <= next_update_ns_ || count_ <= config_.size) return;
  LimitSample window;
  window.start_ns = s.start_ns;
  window.rtt_ns = sum_rtt_ns_ / count_;
  window.inflight = max_inflight_;
  window.dropped = dropped_;
  window.u = s.u;
  next_update_ns_ =
      end_ns + std::min(std::max(min_rtt_ns_ * 2, config_.min_time_ns), config_.max_time_ns);
  count_ = 0;
  sum_rtt_ns_ = 0;
  min_rtt_ns_ = 0;
  max_inflight_ = 0;
  dropped_ = false;
  delegate_->Update(now_ns, window);
}

// --- the limiter ------------------------------------------------------------------------------

namespace {

std::unique_ptr<LimitAlgorithm> MakeBare(const ConcurrencyLimitConfig& config) {
  switch (config.kind) {
    case LimitAlgorithmKind::kAimd:
      return std::make_unique<AimdLimit>(config.aimd);
    case LimitAlgorithmKind::kVegas:
      return std::make_unique<VegasLimit>(config.vegas);
    case LimitAlgorithmKind::kGradient2:
      return std::make_unique<Gradient2Limit>(config.gradient2);
    case LimitAlgorithmKind::kEnvoy:
      return std::make_unique<EnvoyGradientLimit>(config.envoy);
  }
  return std::make_unique<Gradient2Limit>(config.gradient2);
}

}  // namespace

std::unique_ptr<LimitAlgorithm> MakeLimitAlgorithm(const ConcurrencyLimitConfig& config) {
  std::unique_ptr<LimitAlgorithm> bare = MakeBare(config);
  if (!config.window.enabled || config.kind == LimitAlgorithmKind::kEnvoy) return bare;
  return std::make_unique<WindowedLimit>(config.window, std::move(bare));
}

ConcurrencyLimiter::ConcurrencyLimiter(const ConcurrencyLimitConfig& config)
    : config_(config), algorithm_(MakeLimitAlgorithm(config)) {}

absl::StatusOr<std::unique_ptr<ConcurrencyLimiter>> ConcurrencyLimiter::Create(
    const ConcurrencyLimitConfig& config) {
  absl::Status s = Validate(config);
  if (!s.ok()) return s;
  return std::make_unique<ConcurrencyLimiter>(config);
}

std::optional<LimitToken> ConcurrencyLimiter::TryAcquire(int64_t now_ns) {
  MutexLock lock(&mu_);
  algorithm_->Advance(now_ns);
  if (inflight_ >= algorithm_->limit()) {
    ++rejected_;
    return std::nullopt;
  }
  ++inflight_;
  ++acquired_;
  return LimitToken{now_ns, inflight_};
}

void ConcurrencyLimiter::Release(const LimitToken& token, int64_t now_ns, bool dropped, double u,
                                 bool sample) {
  MutexLock lock(&mu_);
  if (inflight_ > 0) --inflight_;
  if (!sample) {
    ++ignored_;
    return;
  }
  ++(dropped ? dropped_ : succeeded_);
  algorithm_->Advance(now_ns);
  LimitSample s;
  s.start_ns = token.start_ns;
  s.rtt_ns = std::max<int64_t>(1, now_ns - token.start_ns);  // a zero RTT on a coarse clock
  s.inflight = token.inflight;
  s.dropped = dropped;
  s.u = u;
  algorithm_->Update(now_ns, s);
}

void ConcurrencyLimiter::OnSuccess(const LimitToken& token, int64_t now_ns, double u) {
  Release(token, now_ns, false, u, true);
}

void ConcurrencyLimiter::OnDropped(const LimitToken& token, int64_t now_ns, double u) {
  Release(token, now_ns, true, u, true);
}

void ConcurrencyLimiter::OnIgnore(const LimitToken& token) { Release(token, 0, false, 0.0, false); }

void ConcurrencyLimiter::OnSample(int64_t now_ns, const LimitSample& sample) {
  MutexLock lock(&mu_);
  algorithm_->Advance(now_ns);
  algorithm_->Update(now_ns, sample);
}

int64_t ConcurrencyLimiter::Limit(int64_t now_ns) {
  MutexLock lock(&mu_);
  algorithm_->Advance(now_ns);
  return algorithm_->limit();
}

LimiterSnapshot ConcurrencyLimiter::Snapshot(int64_t now_ns) {
  {
    MutexLock lock(&mu_);
    algorithm_->Advance(now_ns);
  }
  return Peek();
}

LimiterSnapshot ConcurrencyLimiter::Peek() {
  MutexLock lock(&mu_);
  LimiterSnapshot s;
  s.limit = algorithm_->limit();
  s.estimate = algorithm_->estimate();
  s.inflight = inflight_;
  s.acquired = acquired_;
  s.rejected = rejected_;
  s.succeeded = succeeded_;
  s.dropped = dropped_;
  s.ignored = ignored_;
  return s;
}

}  // namespace rlab
