#include "rlab/policy/concurrency_limit.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rlab/core/clock.h"
#include "rlab/core/schema.h"
#include "rlab/core/validate.h"

namespace rlab {
namespace {

constexpr int64_t kMaxLimit = 1'000'000;

// `lo_name` <= `hi_name`, both already in range (the names relative to the config); `ns`:
// durations in nanoseconds, named in seconds like the Python fields.
absl::Status CheckOrder(std::string_view lo_name, int64_t lo, std::string_view hi_name, int64_t hi,
                        bool ns = false) {
  if (lo <= hi) return absl::OkStatus();
  auto show = [ns](int64_t v) {
    return ns ? absl::StrFormat("%g s", NsToSeconds(v)) : absl::StrCat(v);
  };
  return absl::InvalidArgumentError(
      absl::StrFormat("%s must be at most %s (%s), got %s", lo_name, hi_name, show(hi), show(lo)));
}

// Aimd's and Gradient2's rules: min_limit <= initial_limit <= max_limit.
template <typename C>
absl::Status ValidateLimitOrder(const C& c) {
  return FirstError({CheckOrder("min_limit", c.min_limit, "max_limit", c.max_limit),
                     CheckOrder("min_limit", c.min_limit, "initial_limit", c.initial_limit),
                     CheckOrder("initial_limit", c.initial_limit, "max_limit", c.max_limit)});
}

absl::Status ValidateVegasRules(const VegasConfig& c) {
  return FirstError({CheckOrder("initial_limit", c.initial_limit, "max_limit", c.max_limit),
                     CheckOrder("alpha_factor", c.alpha_factor, "beta_factor", c.beta_factor)});
}

absl::Status ValidateEnvoyRules(const EnvoyGradientConfig& c) {
  return CheckOrder("min_concurrency", c.min_concurrency, "max_limit", c.max_limit);
}

absl::Status ValidateWindowRules(const SampleWindowConfig& c) {
  return CheckOrder("min_time", c.min_time_ns, "max_time", c.max_time_ns, /*ns=*/true);
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

RLAB_TABLE(SampleWindowSchema, SampleWindowConfig, "SampleWindow", "", &ValidateWindowRules,
           RLAB_SECONDS(min_time, 0, kMaxS, OC, "shortest window"),
           RLAB_SECONDS(max_time, 0, kMaxS, OC, "longest window"),
           RLAB_INT(size, 1, kMaxLimit, "samples", "a window needs more samples"),
           RLAB_SECONDS(min_rtt_threshold, 0, kMaxS, CC, "shorter RTTs are ignored"));

RLAB_TABLE(AimdSchema, AimdConfig, "Aimd", "", &ValidateLimitOrder<C>,
           RLAB_INT(initial_limit, 1, kMaxLimit, "", "the starting limit"),
           RLAB_INT(min_limit, 1, kMaxLimit, "", "the lowest limit"),
           RLAB_INT(max_limit, 1, kMaxLimit, "", "the highest limit"),
           RLAB_REAL(backoff_ratio, 0.5, 1, CO, "", "drop factor"),
           RLAB_SECONDS(timeout, 0, kMaxS, OC, "a longer RTT drops"),
           RLAB_CONFIG(window, SampleWindowSchema, "update once per window"));

RLAB_TABLE(VegasSchema, VegasConfig, "Vegas", "", &ValidateVegasRules,
           RLAB_INT(initial_limit, 1, kMaxLimit, "", "the starting limit"),
           RLAB_INT(max_limit, 1, kMaxLimit, "", "the highest limit"),
           RLAB_REAL(smoothing, 0, 1, OC, "", "weight of a new estimate"),
           RLAB_INT(alpha_factor, 0, 1000, "", "grow below alpha * L"),
           RLAB_INT(beta_factor, 0, 1000, "", "shrink above beta * L"),
           RLAB_INT(threshold_factor, 0, 1000, "", "grow fast below"),
           RLAB_INT(probe_multiplier, 1, kMaxLimit, "", "no-load probes"),
           RLAB_CONFIG(window, SampleWindowSchema, "update once per window"));

RLAB_TABLE(Gradient2Schema, Gradient2Config, "Gradient2", "", &ValidateLimitOrder<C>,
           RLAB_INT(initial_limit, 1, kMaxLimit, "", "the starting limit"),
           RLAB_INT(min_limit, 1, kMaxLimit, "", "the lowest limit"),
           RLAB_INT(max_limit, 1, kMaxLimit, "", "the highest limit"),
           RLAB_REAL(smoothing, 0, 1, OC, "", "weight of a new estimate"),
           RLAB_INT(queue_size, 0, kMaxLimit, "", "growth per sample"),
           RLAB_INT(long_window, 1, kMaxLimit, "samples", "long RTT average"),
           RLAB_REAL(rtt_tolerance, 1, 100, CC, "", "RTT rise tolerated"),
           RLAB_CONFIG(window, SampleWindowSchema, "update once per window"));

RLAB_TABLE(EnvoyGradientSchema, EnvoyGradientConfig, "EnvoyGradient", "", &ValidateEnvoyRules,
           RLAB_SECONDS(sample_interval, 0, kMaxS, OC, "updates"),
           RLAB_SECONDS(min_rtt_interval, 0, kMaxS, OC, "min RTTs"),
           RLAB_REAL(jitter, 0, 1, CC, "", "of min_rtt_interval, at random"),
           RLAB_INT(request_count, 1, kMaxLimit, "", "min-RTT samples"),
           RLAB_INT(min_concurrency, 1, kMaxLimit, "", "the lowest limit"),
           RLAB_REAL(buffer, 0, 10, CC, "", "latency above min RTT"),
           RLAB_INT(max_limit, 1, kMaxLimit, "", "the highest limit"),
           RLAB_REAL(percentile, 0, 1, OC, "", "a window's RTT"),
           RLAB_INT(max_samples, 1, kMaxLimit, "", "samples kept per window"));

// The algorithm's own table, under its name (MakeBare's switch keeps the kinds exhaustive).
absl::Status Validate(const ConcurrencyLimitConfig& c) {
  using K = LimitAlgorithmKind;
  const std::string_view path = LimitAlgorithmName(c.kind);
  if (c.kind == K::kAimd) return ValidateAt(path, AimdSchema(), c.aimd);
  if (c.kind == K::kVegas) return ValidateAt(path, VegasSchema(), c.vegas);
  if (c.kind == K::kGradient2) return ValidateAt(path, Gradient2Schema(), c.gradient2);
  if (c.kind == K::kEnvoy) return ValidateAt(path, EnvoyGradientSchema(), c.envoy);
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
  const std::optional<SampleWindowConfig>& window =
      config.kind == LimitAlgorithmKind::kAimd    ? config.aimd.window
      : config.kind == LimitAlgorithmKind::kVegas ? config.vegas.window
                                                  : config.gradient2.window;
  if (!window.has_value() || config.kind == LimitAlgorithmKind::kEnvoy) return bare;
  return std::make_unique<WindowedLimit>(*window, std::move(bare));
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
