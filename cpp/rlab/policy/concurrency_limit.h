#ifndef RLAB_POLICY_CONCURRENCY_LIMIT_H_
#define RLAB_POLICY_CONCURRENCY_LIMIT_H_

// Adaptive concurrency limits: a limiter admits a request while fewer than `limit` are in flight,
// and a limit algorithm moves `limit` from the round-trip times (RTT) and drops it observes.
//
// The algorithms follow their published implementations (each class cites its source):
//   - AIMD, Vegas and Gradient2 as in Netflix concurrency-limits (AIMDLimit, VegasLimit,
//     Gradient2Limit, github.com/Netflix/concurrency-limits, concurrency-limits-core/.../limit/);
//   - Envoy's adaptive-concurrency gradient controller (envoyproxy/envoy,
//     source/extensions/filters/http/adaptive_concurrency/controller/gradient_controller.cc).
// Pure: time (`now_ns`, the sample's start and RTT) and random draws (`u`) come in as arguments;
// Envoy's timers become deadlines checked on every call.

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rlab/core/mutex.h"
#include "rlab/core/schema.h"

namespace rlab {

enum class LimitAlgorithmKind : uint8_t { kAimd = 0, kVegas = 1, kGradient2 = 2, kEnvoy = 3 };

// "aimd", "vegas", "gradient2", "envoy".
std::string_view LimitAlgorithmName(LimitAlgorithmKind kind);
absl::StatusOr<LimitAlgorithmKind> ParseLimitAlgorithm(std::string_view name);

// Netflix WindowedLimit: aggregate samples over a window (average RTT, max in flight, any drop)
// and update the Netflix algorithms once per window instead of once per sample. Per-sample
// updates react to the same standing queue many times per RTT and overshoot; a window of about
// 2 x min RTT (clamped to [min_time, max_time]) sees each queue once.
struct SampleWindowConfig {
  int64_t min_time_ns = 1'000'000'000;     // (0, 1e6] s
  int64_t max_time_ns = 1'000'000'000;     // [min_time, 1e6] s
  int64_t size = 10;                       // a window needs more than `size` samples; [1, 1e6]
  int64_t min_rtt_threshold_ns = 100'000;  // shorter RTTs are ignored; [0, 1e6] s
};

// Netflix AIMDLimit (loss based): +1 while the limit is in use and nothing drops; x backoff_ratio
// on a drop or an RTT above `timeout`.
struct AimdConfig {
  int64_t initial_limit = 20;                // in [min_limit, max_limit]
  int64_t min_limit = 20;                    // in [1, 1e6]
  int64_t max_limit = 200;                   // in [min_limit, 1e6]
  double backoff_ratio = 0.9;                // in [0.5, 1)
  int64_t timeout_ns = 5'000'000'000;        // an RTT above it counts as a drop; (0, 1e6] s
  std::optional<SampleWindowConfig> window;  // none: an update per sample (Netflix's default)
};

// Netflix VegasLimit (delay based, after TCP Vegas): queue = ceil(limit * (1 - rtt_noload / rtt));
// with L = max(1, floor(log10(limit))): grow by beta_factor*L when queue <= threshold_factor*L,
// by L when queue < alpha_factor*L, shrink by L when queue > beta_factor*L or on a drop.
struct VegasConfig {
  int64_t initial_limit = 20;    // in [1, max_limit]
  int64_t max_limit = 1000;      // in [1, 1e6]
  double smoothing = 1.0;        // in (0, 1]: 1 takes the new estimate at once
  int64_t alpha_factor = 3;      // in [0, 1000]
  int64_t beta_factor = 6;       // in [alpha_factor, 1000]
  int64_t threshold_factor = 1;  // in [0, 1000]
  // Re-probe the no-load RTT every jitter * probe_multiplier * limit samples, jitter in [0.5, 1).
  int64_t probe_multiplier = 30;  // in [1, 1e6]
  std::optional<SampleWindowConfig> window;
};

// Netflix Gradient2Limit: gradient = clamp(tolerance * long_rtt / rtt, 0.5, 1), new = limit *
// gradient + queue_size, smoothed; long_rtt an exponential average (mean of the first 10
// samples, then factor 2 / (long_window + 1)).
struct Gradient2Config {
  int64_t initial_limit = 20;  // in [min_limit, max_limit]
  int64_t min_limit = 20;      // in [1, 1e6]
  int64_t max_limit = 200;     // in [min_limit, 1e6]
  double smoothing = 0.2;      // in (0, 1]
  int64_t queue_size = 4;      // in [0, 1e6]
  int64_t long_window = 600;   // in [1, 1e6] samples
  double rtt_tolerance = 1.5;  // in [1, 100]
  std::optional<SampleWindowConfig> window;
};

// Envoy's gradient controller: every `min_rtt_interval` (plus jitter) the limit drops to
// `min_concurrency` until `request_count` samples give min_rtt (their `percentile`); every
// `sample_interval` the percentile of that window's samples is sample_rtt and
//   gradient = clamp(min_rtt * (1 + buffer) / sample_rtt, 0.5, 2)
//   limit = clamp(floor(gradient * limit + sqrt(gradient * limit)), min_concurrency, max_limit).
struct EnvoyGradientConfig {
  int64_t sample_interval_ns = 100'000'000;      // concurrency_update_interval; (0, 1e6] s
  int64_t min_rtt_interval_ns = 60'000'000'000;  // min_rtt_calc_params.interval; (0, 1e6] s
  double jitter = 0.15;         // fraction of min_rtt_interval added at random, in [0, 1]
  int64_t request_count = 50;   // samples per min-RTT measurement, in [1, 1e6]
  int64_t min_concurrency = 3;  // in [1, max_limit]
  double buffer = 0.25;         // min_rtt_calc_params.buffer, in [0, 10]
  int64_t max_limit = 1000;     // max_concurrency_limit, in [1, 1e6]
  double percentile = 0.5;      // sample_aggregate_percentile, in (0, 1]
  // Samples kept per window (reservoir-sampled beyond it): bounds memory. In [1, 1e6].
  int64_t max_samples = 1024;
};

// Which algorithm, and its parameters (only the chosen one's are read).
struct ConcurrencyLimitConfig {
  LimitAlgorithmKind kind = LimitAlgorithmKind::kGradient2;
  AimdConfig aimd;
  VegasConfig vegas;
  Gradient2Config gradient2;
  EnvoyGradientConfig envoy;
};

// Checks the chosen algorithm's fields by its table and rules, naming them by dotted path
// ("aimd.backoff_ratio", ...).
absl::Status Validate(const ConcurrencyLimitConfig& config);

// The field tables (Python: rl.SampleWindow, rl.Aimd, rl.Vegas, rl.Gradient2, rl.EnvoyGradient);
// their rules order the limits (min <= initial <= max, alpha <= beta, min_time <= max_time).
const ConfigSchema<SampleWindowConfig>& SampleWindowSchema();
const ConfigSchema<AimdConfig>& AimdSchema();
const ConfigSchema<VegasConfig>& VegasSchema();
const ConfigSchema<Gradient2Config>& Gradient2Schema();
const ConfigSchema<EnvoyGradientConfig>& EnvoyGradientSchema();

// One observation of a finished request.
struct LimitSample {
  int64_t start_ns = 0;  // when the request was admitted
  int64_t rtt_ns = 1;    // > 0
  int64_t inflight = 0;  // requests in flight when it was admitted (itself included)
  bool dropped = false;  // timed out, rejected for overload by the dependency, ...
  double u = 0.5;        // uniform draw in [0, 1) for algorithms that randomize (Vegas, Envoy)
};

// A limit algorithm. Not thread-safe: ConcurrencyLimiter serializes the calls.
class LimitAlgorithm {
 public:
  virtual ~LimitAlgorithm() = default;
  // Runs the timers due at `now_ns` (Envoy's windows); a no-op for sample-driven algorithms.
  virtual void Advance(int64_t /*now_ns*/) {}
  // Folds one sample, observed at `now_ns`, into the limit.
  virtual void Update(int64_t now_ns, const LimitSample& sample) = 0;
  // The concurrency limit now (>= 1).
  virtual int64_t limit() const = 0;
  // The unrounded estimate (equal to limit() for integer algorithms).
  virtual double estimate() const { return static_cast<double>(limit()); }
};

// max(1, floor(log10(limit))): the step of Netflix's Log10RootFunction (which switches to
// sqrt from 1000 on, a lookup-table artefact not reproduced here).
int64_t Log10Step(int64_t limit);

class AimdLimit final : public LimitAlgorithm {
 public:
  explicit AimdLimit(const AimdConfig& config) : config_(config), limit_(config.initial_limit) {}
  void Update(int64_t now_ns, const LimitSample& sample) override;
  int64_t limit() const override { return limit_; }

 private:
  const AimdConfig config_;
  int64_t limit_;
};

class VegasLimit final : public LimitAlgorithm {
 public:
  explicit VegasLimit(const VegasConfig& config)
      : config_(config), estimate_(static_cast<double>(config.initial_limit)) {}
  void Update(int64_t now_ns, const LimitSample& sample) override;
  int64_t limit() const override { return static_cast<int64_t>(estimate_); }
  double estimate() const override { return estimate_; }
  // The no-load RTT (0 before the first sample).
  int64_t rtt_noload_ns() const { return rtt_noload_ns_; }

 private:
  const VegasConfig config_;
  double estimate_;
  int64_t rtt_noload_ns_ = 0;
  int64_t probe_count_ = 0;
  double probe_jitter_ = -1.0;  // drawn from the first sample's u, then at each probe
};

class Gradient2Limit final : public LimitAlgorithm {
 public:
  explicit Gradient2Limit(const Gradient2Config& config)
      : config_(config), estimate_(static_cast<double>(config.initial_limit)) {}
  void Update(int64_t now_ns, const LimitSample& sample) override;
  int64_t limit() const override { return static_cast<int64_t>(estimate_); }
  double estimate() const override { return estimate_; }
  // The long-term RTT average, in nanoseconds.
  double long_rtt_ns() const { return long_rtt_ns_; }

  static constexpr int64_t kWarmupSamples = 10;

 private:
  const Gradient2Config config_;
  double estimate_;
  double long_rtt_ns_ = 0.0;
  double long_rtt_sum_ns_ = 0.0;
  int64_t long_rtt_count_ = 0;
};

class EnvoyGradientLimit final : public LimitAlgorithm {
 public:
  explicit EnvoyGradientLimit(const EnvoyGradientConfig& config)
      : config_(config), limit_(config.min_concurrency) {}
  void Advance(int64_t now_ns) override;
  void Update(int64_t now_ns, const LimitSample& sample) override;
  int64_t limit() const override { return limit_; }

  bool in_min_rtt_window() const { return in_min_rtt_window_; }
  int64_t min_rtt_ns() const { return min_rtt_ns_; }
  int64_t sample_rtt_ns() const { return sample_rtt_ns_; }
  double gradient() const { return gradient_; }

  // The new limit from the formula (exposed for tests).
  static int64_t NewLimit(const EnvoyGradientConfig& config, int64_t limit, int64_t min_rtt_ns,
                          int64_t sample_rtt_ns, double* gradient = nullptr);
  // The nearest-rank `q`-quantile of `samples` (sorts them). Envoy approximates it with a
  // histogram; exact here.
  static int64_t Quantile(std::vector<int64_t>& samples, double q);

 private:
  void EnterMinRttWindow(int64_t now_ns);
  void SetLimit(int64_t new_limit, int64_t now_ns);

  const EnvoyGradientConfig config_;
  int64_t limit_;
  bool started_ = false;
  bool in_min_rtt_window_ = false;
  int64_t deferred_limit_ = 0;
  int64_t min_rtt_epoch_ns_ = 0;
  int64_t next_min_rtt_ns_ = 0;
  int64_t next_sample_ns_ = 0;
  int64_t min_rtt_ns_ = 0;
  int64_t sample_rtt_ns_ = 0;
  double gradient_ = 1.0;
  int64_t consecutive_min_ = 0;
  int64_t seen_ = 0;  // samples offered to the reservoir this window
  std::vector<int64_t> samples_;
};

// Netflix WindowedLimit around another algorithm.
class WindowedLimit final : public LimitAlgorithm {
 public:
  WindowedLimit(const SampleWindowConfig& config, std::unique_ptr<LimitAlgorithm> delegate)
      : config_(config), delegate_(std::move(delegate)) {}
  void Update(int64_t now_ns, const LimitSample& sample) override;
  int64_t limit() const override { return delegate_->limit(); }
  double estimate() const override { return delegate_->estimate(); }
  const LimitAlgorithm& delegate() const { return *delegate_; }

 private:
  const SampleWindowConfig config_;
  std::unique_ptr<LimitAlgorithm> delegate_;
  int64_t next_update_ns_ = 0;
  int64_t count_ = 0;
  int64_t sum_rtt_ns_ = 0;
  int64_t min_rtt_ns_ = 0;  // 0: none yet
  int64_t max_inflight_ = 0;
  bool dropped_ = false;
};

// A ticket for one admitted request: hand it back exactly once (OnSuccess, OnDropped, OnIgnore).
struct LimitToken {
  int64_t start_ns = 0;
  int64_t inflight = 0;  // in flight once it was admitted (itself included)
};

// Gauges and lifetime counters.
struct LimiterSnapshot {
  int64_t limit = 0;
  double estimate = 0.0;
  int64_t inflight = 0;
  int64_t acquired = 0;
  int64_t rejected = 0;
  int64_t succeeded = 0;
  int64_t dropped = 0;
  int64_t ignored = 0;
};

// Admission against an adaptive limit. Invariant: inflight <= limit at each admission (a limit
// that shrinks below inflight only stops new admissions), and acquired = succeeded + dropped +
// ignored + inflight. Thread-safe.
class ConcurrencyLimiter {
 public:
  // `config` must have passed Validate.
  explicit ConcurrencyLimiter(const ConcurrencyLimitConfig& config);
  static absl::StatusOr<std::unique_ptr<ConcurrencyLimiter>> Create(
      const ConcurrencyLimitConfig& config);

  ConcurrencyLimiter(const ConcurrencyLimiter&) = delete;
  ConcurrencyLimiter& operator=(const ConcurrencyLimiter&) = delete;

  // Admits a request at `now_ns` while inflight < limit; nullopt rejects it.
  std::optional<LimitToken> TryAcquire(int64_t now_ns);
  // The request ended at `now_ns` with an answer: releases it and samples its RTT.
  void OnSuccess(const LimitToken& token, int64_t now_ns, double u);
  // The request was dropped (timeout, overload refusal): releases it and samples a drop.
  void OnDropped(const LimitToken& token, int64_t now_ns, double u);
  // The request ended without telling anything about the dependency: releases it only.
  void OnIgnore(const LimitToken& token);
  // Feeds a sample without any admission (for engines that count in flight themselves).
  void OnSample(int64_t now_ns, const LimitSample& sample);

  int64_t Limit(int64_t now_ns);
  LimiterSnapshot Snapshot(int64_t now_ns);
  // The same, without running the algorithm's timers first (Envoy's windows): for samplers,
  // which must not change what they observe.
  LimiterSnapshot Peek();
  const ConcurrencyLimitConfig& config() const { return config_; }
  // The algorithm, for inspection in tests; do not call it concurrently with the limiter.
  const LimitAlgorithm& algorithm() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return *algorithm_; }

 private:
  void Release(const LimitToken& token, int64_t now_ns, bool dropped, double u, bool sample);

  const ConcurrencyLimitConfig config_;
  Mutex mu_;
  std::unique_ptr<LimitAlgorithm> algorithm_ ABSL_GUARDED_BY(mu_);
  int64_t inflight_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t acquired_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t rejected_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t succeeded_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t ignored_ ABSL_GUARDED_BY(mu_) = 0;
};

// A fresh algorithm for `config` (validated).
std::unique_ptr<LimitAlgorithm> MakeLimitAlgorithm(const ConcurrencyLimitConfig& config);

}  // namespace rlab

#endif  // RLAB_POLICY_CONCURRENCY_LIMIT_H_
