#include "rlab/model/faults.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/core/rng.h"

namespace rlab::faults_test {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kS = kNsPerSecond;
constexpr int64_t kMs = kNsPerSecond / 1000;
constexpr int kN = 200'000;

LatencyDist Constant(double value) { return {LatencyDist::Kind::kConstant, value, 0.0, {}, {}}; }
LatencyDist Exponential(double mean) {
  return {LatencyDist::Kind::kExponential, mean, 0.0, {}, {}};
}
LatencyDist LogNormal(double median, double sigma) {
  return {LatencyDist::Kind::kLogNormal, median, sigma, {}, {}};
}
LatencyDist Uniform(double low, double high) {
  return {LatencyDist::Kind::kUniform, low, high, {}, {}};
}
LatencyDist Mixture(std::vector<double> weights, std::vector<LatencyDist> components) {
  return {LatencyDist::Kind::kMixture, 0.0, 0.0, std::move(weights), std::move(components)};
}

std::string Message(const absl::Status& s) { return s.ok() ? "OK" : std::string(s.message()); }

struct Moments {
  double mean = 0.0;
  double variance = 0.0;
};

// Sample mean and variance of kN draws, in seconds (Welford).
Moments SampleMoments(const LatencyDist& dist, uint64_t seed = 7) {
  RandomStream rng(seed);
  double mean = 0.0;
  double m2 = 0.0;
  for (int i = 1; i <= kN; ++i) {
    const double x = NsToSeconds(SampleNs(dist, rng));
    const double delta = x - mean;
    mean += delta / i;
    m2 += delta * (x - mean);
  }
  return {mean, m2 / (kN - 1)};
}

// ---------------------------------------------------------------------------------------------
// Distributions.

TEST(SampleNsTest, ConstantIsExact) {
  RandomStream rng(1);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(SampleNs(Constant(0.05), rng), 50 * kMs);
  EXPECT_EQ(SampleNs(Constant(0.0), rng), 0);
  EXPECT_DOUBLE_EQ(MeanSeconds(Constant(0.05)), 0.05);
}

TEST(SampleNsTest, ExponentialMeanAndVariance) {
  const Moments m = SampleMoments(Exponential(0.05));
  // The standard error of the mean is 0.05 / sqrt(2e5) = 1.1e-4: 1% is ~4.5 standard errors.
  EXPECT_NEAR(m.mean, 0.05, 0.05 * 0.01);
  EXPECT_NEAR(m.variance, 0.05 * 0.05, 0.05 * 0.05 * 0.03);
  EXPECT_DOUBLE_EQ(MeanSeconds(Exponential(0.05)), 0.05);
}

TEST(SampleNsTest, LogNormalMeanVarianceAndMedian) {
  const double median = 0.1;
  const double sigma = 0.5;
  const double mean = median * std::exp(sigma * sigma / 2);
  const double variance = (std::exp(sigma * sigma) - 1) * median * median * std::exp(sigma * sigma);
  EXPECT_DOUBLE_EQ(MeanSeconds(LogNormal(median, sigma)), mean);
  const Moments m = SampleMoments(LogNormal(median, sigma));
  EXPECT_NEAR(m.mean, mean, mean * 0.005);
  EXPECT_NEAR(m.variance, variance, variance * 0.03);

  RandomStream rng(3);
  std::vector<int64_t> xs(kN);
  for (int64_t& x : xs) x = SampleNs(LogNormal(median, sigma), rng);
  std::nth_element(xs.begin(), xs.begin() + kN / 2, xs.end());
  EXPECT_NEAR(NsToSeconds(xs[kN / 2]), median, median * 0.01);
}

TEST(SampleNsTest, LogNormalWithZeroSigmaIsTheMedian) {
  RandomStream rng(1);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(SampleNs(LogNormal(0.2, 0.0), rng), 200 * kMs);
}

TEST(SampleNsTest, UniformMeanVarianceAndBounds) {
  const double lo = 0.01;
  const double hi = 0.03;
  const Moments m = SampleMoments(Uniform(lo, hi));
  EXPECT_NEAR(m.mean, 0.02, 0.02 * 0.003);  // ~4.6 standard errors
  EXPECT_NEAR(m.variance, (hi - lo) * (hi - lo) / 12, (hi - lo) * (hi - lo) / 12 * 0.02);
  EXPECT_DOUBLE_EQ(MeanSeconds(Uniform(lo, hi)), 0.02);
  RandomStream rng(5);
  for (int i = 0; i < 10'000; ++i) {
    const int64_t x = SampleNs(Uniform(lo, hi), rng);
    EXPECT_GE(x, 10 * kMs);
    EXPECT_LE(x, 30 * kMs);
  }
}

TEST(SampleNsTest, MixtureHonoursWeights) {
  // A bimodal tail: 90% fast, 10% slow.
  const LatencyDist dist = Mixture({0.9, 0.1}, {Constant(0.01), Constant(1.0)});
  RandomStream rng(11);
  int slow = 0;
  for (int i = 0; i < kN; ++i) {
    const int64_t x = SampleNs(dist, rng);
    ASSERT_TRUE(x == 10 * kMs || x == kS) << x;
    slow += x == kS;
  }
  // Standard error sqrt(0.09 / 2e5) = 6.7e-4.
  EXPECT_NEAR(static_cast<double>(slow) / kN, 0.1, 0.003);
  EXPECT_DOUBLE_EQ(MeanSeconds(dist), 0.9 * 0.01 + 0.1 * 1.0);
}

TEST(SampleNsTest, MixtureWeightsAreNormalised) {
  const LatencyDist a = Mixture({0.9, 0.1}, {Exponential(0.01), LogNormal(0.5, 0.3)});
  const LatencyDist b = Mixture({9, 1}, {Exponential(0.01), LogNormal(0.5, 0.3)});
  RandomStream ra(2);
  RandomStream rb(2);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(SampleNs(a, ra), SampleNs(b, rb));
  EXPECT_DOUBLE_EQ(MeanSeconds(a), MeanSeconds(b));
}

TEST(SampleNsTest, MixtureMeanMatchesTheory) {
  const LatencyDist dist =
      Mixture({3, 1, 1}, {Exponential(0.02), LogNormal(0.1, 0.4), Uniform(0.5, 1.5)});
  const double expected = (3 * 0.02 + 0.1 * std::exp(0.08) + 1.0) / 5;
  EXPECT_NEAR(MeanSeconds(dist), expected, 1e-12);
  EXPECT_NEAR(SampleMoments(dist).mean, expected, expected * 0.01);
}

TEST(SampleNsTest, ConsumesAFixedNumberOfDraws) {
  const std::vector<LatencyDist> dists = {Constant(1), Exponential(1), LogNormal(1, 1),
                                          Uniform(0, 1),
                                          Mixture({1, 1}, {Constant(1), LogNormal(1, 2)})};
  for (const LatencyDist& dist : dists) {
    RandomStream rng(9);
    RandomStream reference(9);
    for (int i = 0; i < 10; ++i) {
      SampleNs(dist, rng);
      for (int k = 0; k < kDrawsPerSample; ++k) reference.Uniform01();
    }
    EXPECT_EQ(rng.NextU64(), reference.NextU64()) << static_cast<int>(dist.kind);
  }
}

TEST(SampleNsTest, NeverNegativeAndSaturatesHugeValues) {
  RandomStream rng(4);
  EXPECT_EQ(SampleNs(Constant(1e6), rng), kMaxSampleNs);
  EXPECT_EQ(SampleNs(Constant(1e300), rng), kMaxSampleNs);
  EXPECT_EQ(SampleNs(Constant(std::numeric_limits<double>::infinity()), rng), kMaxSampleNs);
  // Unvalidated garbage still gives a duration, never a negative one.
  EXPECT_EQ(SampleNs(Constant(-1), rng), 0);
  EXPECT_EQ(SampleNs(Constant(std::nan("")), rng), 0);
  const LatencyDist wild = LogNormal(1e5, 10);
  for (int i = 0; i < 10'000; ++i) {
    const int64_t x = SampleNs(wild, rng);
    EXPECT_GE(x, 0);
    EXPECT_LE(x, kMaxSampleNs);
  }
}

TEST(SampleNsTest, SameSeedSameSequence) {
  const LatencyDist dist = Mixture({1, 2}, {Exponential(0.1), LogNormal(0.2, 0.7)});
  RandomStream a(123);
  RandomStream b(123);
  RandomStream c(124);
  int differ = 0;
  for (int i = 0; i < 1000; ++i) {
    const int64_t x = SampleNs(dist, a);
    EXPECT_EQ(x, SampleNs(dist, b));
    differ += x != SampleNs(dist, c);
  }
  EXPECT_GT(differ, 990);
}

// ---------------------------------------------------------------------------------------------
// Latency validation.

// A distribution validated through its member of the union (faults.h LatencyUnion).
absl::Status ValidateLatency(std::string_view path, const LatencyDist& dist) {
  return ValidateUnion(path, LatencyUnion(), &dist);
}

TEST(ValidateLatencyTest, AcceptsEveryKind) {
  for (const LatencyDist& dist :
       {Constant(0), Exponential(0.05), LogNormal(0.1, 0.5), Uniform(0.1, 0.1),
        Mixture({1, 2}, {Constant(0.01), LogNormal(0.1, 2)})}) {
    EXPECT_EQ(Message(ValidateLatency("payment.faults.latency", dist)), "OK");
  }
}

TEST(ValidateLatencyTest, NamesTheDottedPath) {
  const std::string p = "payment.faults.latency";
  EXPECT_EQ(Message(ValidateLatency(p, Constant(-1))),
            "payment.faults.latency.value must be a finite number in [0, 1e+06], got -1");
  EXPECT_EQ(Message(ValidateLatency(p, Exponential(-0.5))),
            "payment.faults.latency.mean must be a finite number in [0, 1e+06], got -0.5");
  EXPECT_EQ(Message(ValidateLatency(p, Exponential(std::nan("")))),
            "payment.faults.latency.mean must be a finite number in [0, 1e+06], got nan");
  EXPECT_EQ(Message(ValidateLatency(p, LogNormal(std::numeric_limits<double>::infinity(), 1))),
            "payment.faults.latency.median must be a finite number in [0, 1e+06], got inf");
  EXPECT_EQ(Message(ValidateLatency(p, LogNormal(0.1, -1))),
            "payment.faults.latency.sigma must be a finite number in [0, 10], got -1");
  EXPECT_EQ(Message(ValidateLatency(p, Uniform(-1, 1))),
            "payment.faults.latency.low must be a finite number in [0, 1e+06], got -1");
  EXPECT_EQ(Message(ValidateLatency(p, Uniform(2, 1))),
            "payment.faults.latency.high must be >= low (2), got 1");
}

TEST(ValidateLatencyTest, Mixtures) {
  const std::string p = "inventory.faults.latency";
  EXPECT_EQ(Message(ValidateLatency(p, Mixture({}, {}))),
            "inventory.faults.latency.components must not be empty");
  EXPECT_EQ(Message(ValidateLatency(p, Mixture({1}, {Constant(1), Constant(2)}))),
            "inventory.faults.latency.weights must have one entry per component (2), got 1");
  EXPECT_EQ(Message(ValidateLatency(p, Mixture({1, 0}, {Constant(1), Constant(2)}))),
            "inventory.faults.latency.weights[1] must be a finite number in (0, inf], got 0");
  EXPECT_EQ(Message(ValidateLatency(p, Mixture({1, std::numeric_limits<double>::infinity()},
                                               {Constant(1), Constant(2)}))),
            "inventory.faults.latency.weights[1] must be a finite number in (0, inf], got inf");
  EXPECT_EQ(Message(ValidateLatency(p, Mixture({1, 1}, {Constant(1), Exponential(-2)}))),
            "inventory.faults.latency.components[1].mean must be a finite number in [0, 1e+06], "
            "got -2");
  EXPECT_EQ(
      Message(ValidateLatency(p, Mixture({1, 1}, {Constant(1), Mixture({1}, {Constant(1)})}))),
      "inventory.faults.latency.components[1] must not itself be a mixture");
}

// ---------------------------------------------------------------------------------------------
// The fault model.

FaultsConfig Mixed(double failure_rate) {
  FaultsConfig c;
  c.failure_rate = failure_rate;
  c.mix = FailureMix{.http500 = 1,
                     .http503 = 2,
                     .http429 = 1,
                     .timeout = 1,
                     .connection_reset = 1,
                     .retry_after_ns = 3 * kS};
  c.latency = Exponential(0.05);
  return c;
}

TEST(FaultModelTest, HonoursFailureRateAndMix) {
  const FaultModel model(Mixed(0.3));
  RandomStream rng(42);
  std::map<std::string, int> counts;
  int failures = 0;
  for (int i = 0; i < kN; ++i) {
    const AttemptDraw d = model.Draw(0, 1, rng);
    ++counts[d.outcome.Label()];
    if (!d.outcome.ok()) {
      ++failures;
      EXPECT_FALSE(d.committed);
    } else {
      EXPECT_TRUE(d.committed);
      EXPECT_FALSE(d.hangs);
    }
    EXPECT_EQ(d.hangs, d.outcome.kind == OutcomeKind::kTimeout);
    if (d.outcome.http_status == 429) {
      EXPECT_EQ(d.outcome.retry_after_ns, 3 * kS);
    } else {
      EXPECT_EQ(d.outcome.retry_after_ns, -1);
    }
  }
  // Standard error of the failure fraction: sqrt(0.21 / 2e5) = 1e-3.
  EXPECT_NEAR(static_cast<double>(failures) / kN, 0.3, 0.004);
  const double f = failures;
  EXPECT_NEAR(counts["http_500"] / f, 1.0 / 6, 0.008);
  EXPECT_NEAR(counts["http_503"] / f, 2.0 / 6, 0.008);
  EXPECT_NEAR(counts["http_429"] / f, 1.0 / 6, 0.008);
  EXPECT_NEAR(counts["timeout"] / f, 1.0 / 6, 0.008);
  EXPECT_NEAR(counts["connection_reset"] / f, 1.0 / 6, 0.008);
  EXPECT_EQ(counts.size(), 6u);  // the five kinds and success
}

TEST(FaultModelTest, ZeroWeightKindsNeverHappen) {
  FaultsConfig c;
  c.failure_rate = 1.0;
  c.mix = FailureMix{.http500 = 0, .http503 = 0, .http429 = 0, .timeout = 0, .connection_reset = 2};
  const FaultModel model(c);
  RandomStream rng(1);
  for (int i = 0; i < 10'000; ++i) {
    EXPECT_EQ(model.Draw(0, 1, rng).outcome.kind, OutcomeKind::kConnectionReset);
  }
}

TEST(FaultModelTest, RatesZeroAndOneAreExact) {
  RandomStream rng(8);
  const FaultModel never(Mixed(0.0));
  const FaultModel always(Mixed(1.0));
  for (int i = 0; i < 10'000; ++i) {
    EXPECT_TRUE(never.Draw(0, 1, rng).outcome.ok());
    EXPECT_FALSE(always.Draw(0, 1, rng).outcome.ok());
  }
}

TEST(FaultModelTest, ServiceTimeFollowsTheLatency) {
  FaultsConfig c = Mixed(0.3);
  c.latency = LogNormal(0.04, 0.6);
  const FaultModel model(c);
  RandomStream rng(3);
  double sum = 0;
  for (int i = 0; i < kN; ++i) sum += NsToSeconds(model.Draw(0, 1, rng).service_ns);
  const double mean = MeanSeconds(c.latency);
  EXPECT_NEAR(sum / kN, mean, mean * 0.01);
}

FaultsConfig WithOutage() {
  FaultsConfig c;
  c.failure_rate = 0.0;
  c.latency = Constant(0.1);
  FaultPhase outage;
  outage.name = "outage";
  outage.start_ns = 10 * kS;
  outage.end_ns = 20 * kS;
  outage.failure_rate = 1.0;
  outage.mix =
      FailureMix{.http500 = 0, .http503 = 0, .http429 = 0, .timeout = 1, .connection_reset = 0};
  outage.latency_multiplier = 3.0;
  FaultPhase brownout;
  brownout.name = "brownout";
  brownout.start_ns = 30 * kS;
  brownout.end_ns = 40 * kS;
  brownout.latency = Constant(0.5);
  brownout.latency_multiplier = 2.0;
  c.phases = {brownout, outage};  // any order
  return c;
}

TEST(FaultModelTest, PhasesApplyExactlyInsideStartEnd) {
  const FaultModel model(WithOutage());
  RandomStream rng(5);
  EXPECT_EQ(model.PhaseAt(10 * kS - 1), nullptr);
  ASSERT_NE(model.PhaseAt(10 * kS), nullptr);
  EXPECT_EQ(model.PhaseAt(10 * kS)->name, "outage");
  EXPECT_EQ(model.PhaseAt(20 * kS - 1)->name, "outage");
  EXPECT_EQ(model.PhaseAt(20 * kS), nullptr);
  EXPECT_EQ(model.PhaseAt(35 * kS)->name, "brownout");
  EXPECT_DOUBLE_EQ(model.FailureRateAt(9 * kS), 0.0);
  EXPECT_DOUBLE_EQ(model.FailureRateAt(10 * kS), 1.0);
  EXPECT_DOUBLE_EQ(model.FailureRateAt(35 * kS), 0.0);  // brownout keeps the base rate

  for (int i = 0; i < 1000; ++i) {
    for (int64_t t : {int64_t{0}, 10 * kS - 1, 20 * kS, 29 * kS, 40 * kS}) {
      const AttemptDraw d = model.Draw(t, 1, rng);
      EXPECT_TRUE(d.outcome.ok()) << t;
      EXPECT_EQ(d.service_ns, 100 * kMs) << t;
    }
    for (int64_t t : {10 * kS, 15 * kS, 20 * kS - 1}) {
      const AttemptDraw d = model.Draw(t, 1, rng);
      EXPECT_EQ(d.outcome.kind, OutcomeKind::kTimeout) << t;  // the phase's own mix
      EXPECT_TRUE(d.hangs);
      EXPECT_FALSE(d.committed);
      EXPECT_EQ(d.service_ns, 300 * kMs) << t;  // multiplier on the base latency
    }
    for (int64_t t : {30 * kS, 40 * kS - 1}) {
      const AttemptDraw d = model.Draw(t, 1, rng);
      EXPECT_TRUE(d.outcome.ok());
      EXPECT_EQ(d.service_ns, 1000 * kMs) << t;  // multiplier on the phase's latency
    }
  }
}

TEST(FaultModelTest, LoadSlopeAboveTheKnee) {
  FaultsConfig c;
  c.latency = Constant(0.1);
  c.capacity.load_slope = 0.5;
  c.capacity.load_knee = 2;
  const FaultModel model(c);
  RandomStream rng(1);
  EXPECT_EQ(model.Draw(0, 0, rng).service_ns, 100 * kMs);
  EXPECT_EQ(model.Draw(0, 1, rng).service_ns, 100 * kMs);
  EXPECT_EQ(model.Draw(0, 2, rng).service_ns, 100 * kMs);
  EXPECT_EQ(model.Draw(0, 3, rng).service_ns, 150 * kMs);
  EXPECT_EQ(model.Draw(0, 6, rng).service_ns, 300 * kMs);

  // Slope and phase multiplier compose.
  FaultPhase slow_phase;
  slow_phase.name = "slow";
  slow_phase.end_ns = kS;
  slow_phase.latency_multiplier = 2;
  c.phases = {slow_phase};
  const FaultModel slow(c);
  EXPECT_EQ(slow.Draw(0, 6, rng).service_ns, 600 * kMs);
  EXPECT_EQ(slow.Draw(kS, 6, rng).service_ns, 300 * kMs);
}

TEST(FaultModelTest, HugeLoadSaturates) {
  FaultsConfig c;
  c.latency = Constant(1000);
  c.capacity.load_slope = 1e300;
  FaultPhase p;
  p.start_ns = 0;
  p.end_ns = kS;
  p.latency_multiplier = 1e6;
  c.phases = {p};
  const FaultModel model(c);
  RandomStream rng(1);
  EXPECT_EQ(model.Draw(0, 1'000'000, rng).service_ns, kMaxSampleNs);
}

TEST(FaultModelTest, AmbiguousSuccessesCommitButHang) {
  FaultsConfig c = Mixed(0.2);
  c.ambiguous_rate = 0.25;
  const FaultModel model(c);
  RandomStream rng(77);
  int ambiguous = 0;
  int ok = 0;
  int failed = 0;
  for (int i = 0; i < kN; ++i) {
    const AttemptDraw d = model.Draw(0, 1, rng);
    if (d.committed && d.hangs) {
      EXPECT_EQ(d.outcome.kind, OutcomeKind::kTimeout);
      ++ambiguous;
    } else if (d.committed) {
      EXPECT_TRUE(d.outcome.ok());
      ++ok;
    } else {
      EXPECT_FALSE(d.outcome.ok());
      ++failed;
    }
  }
  // Ambiguity applies to the 80% of attempts that do not fail: 0.8 * 0.25 = 0.2.
  EXPECT_NEAR(static_cast<double>(ambiguous) / kN, 0.2, 0.004);
  EXPECT_NEAR(static_cast<double>(ok) / kN, 0.6, 0.004);
  EXPECT_NEAR(static_cast<double>(failed) / kN, 0.2, 0.004);
}

TEST(FaultModelTest, SameSeedSameDraws) {
  const FaultModel model(Mixed(0.3));
  RandomStream a(2024);
  RandomStream b(2024);
  RandomStream c(2025);
  int differ = 0;
  for (int i = 0; i < 10'000; ++i) {
    const AttemptDraw x = model.Draw(i * kMs, 1 + i % 7, a);
    const AttemptDraw y = model.Draw(i * kMs, 1 + i % 7, b);
    EXPECT_EQ(x.outcome, y.outcome);
    EXPECT_EQ(x.service_ns, y.service_ns);
    EXPECT_EQ(x.hangs, y.hangs);
    EXPECT_EQ(x.committed, y.committed);
    differ += x.service_ns != model.Draw(i * kMs, 1 + i % 7, c).service_ns;
  }
  EXPECT_GT(differ, 9900);
}

TEST(FaultModelTest, ConsumesAFixedNumberOfDraws) {
  FaultsConfig c = WithOutage();
  c.ambiguous_rate = 0.5;
  const FaultModel model(c);
  RandomStream rng(31);
  RandomStream reference(31);
  for (int64_t t = 0; t < 50 * kS; t += kS / 3) {
    model.Draw(t, 3, rng);
    for (int k = 0; k < kDrawsPerAttempt; ++k) reference.Uniform01();
  }
  EXPECT_EQ(rng.NextU64(), reference.NextU64());
}

TEST(FaultModelTest, RaisingTheFailureRateOnlyAddsFailures) {
  // Common random numbers: attempt i reads the same draws whatever the probabilities, so a
  // higher failure rate fails a superset of the attempts and leaves service times alone.
  const FaultModel low(Mixed(0.2));
  const FaultModel high(Mixed(0.3));
  RandomStream a(6);
  RandomStream b(6);
  for (int i = 0; i < 20'000; ++i) {
    const AttemptDraw x = low.Draw(0, 1, a);
    const AttemptDraw y = high.Draw(0, 1, b);
    EXPECT_EQ(x.service_ns, y.service_ns);
    if (!x.outcome.ok()) {
      EXPECT_EQ(x.outcome, y.outcome);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Fault model validation.

std::string Check(const FaultsConfig& c) {
  return Message(ValidateFaultModel("payment.faults", c));
}

TEST(ValidateFaultModelTest, AcceptsDefaultsAndRichModels) {
  EXPECT_EQ(Check(FaultsConfig{}), "OK");
  EXPECT_EQ(Check(Mixed(0.3)), "OK");
  FaultsConfig c = WithOutage();
  c.capacity =
      CapacityConfig{.max_in_service = 8, .max_queue = 100, .load_slope = 0.1, .load_knee = 8};
  c.ambiguous_rate = 0.01;
  EXPECT_EQ(Check(c), "OK");
  // Adjacent phases do not overlap ([start, end) intervals).
  c.phases[0].start_ns = 20 * kS;
  EXPECT_EQ(Check(c), "OK");
}

TEST(ValidateFaultModelTest, TopLevelFields) {
  FaultsConfig c;
  c.failure_rate = 1.5;
  EXPECT_EQ(Check(c), "payment.faults.failure_rate must be a finite number in [0, 1], got 1.5");
  c = {};
  c.failure_rate = std::nan("");
  EXPECT_EQ(Check(c), "payment.faults.failure_rate must be a finite number in [0, 1], got nan");
  c = {};
  c.ambiguous_rate = -0.1;
  EXPECT_EQ(Check(c), "payment.faults.ambiguous_rate must be a finite number in [0, 1], got -0.1");
  c = {};
  c.hang_ns = 0;
  EXPECT_EQ(Check(c), "payment.faults.hang must be a finite number in (0, 1e+06], got 0");
  c = {};
  c.latency = Exponential(-1);
  EXPECT_EQ(Check(c), "payment.faults.latency.mean must be a finite number in [0, 1e+06], got -1");
}

TEST(ValidateFaultModelTest, Mix) {
  FaultsConfig c;
  c.mix.http500 = -1;
  EXPECT_EQ(Check(c), "payment.faults.mix.http500 must be a finite number in [0, inf], got -1");
  c = {};
  c.mix.connection_reset = std::numeric_limits<double>::infinity();
  EXPECT_EQ(Check(c),
            "payment.faults.mix.connection_reset must be a finite number in [0, inf], got inf");
  c = {};
  c.mix.retry_after_ns = -kS;
  EXPECT_EQ(Check(c),
            "payment.faults.mix.retry_after must be a finite number in [0, 1e+06], got -1");
  c = {};
  c.mix.http503 = 0;
  EXPECT_EQ(Check(c), "OK");  // nothing fails, so no kind is needed
  c.failure_rate = 0.1;
  EXPECT_EQ(Check(c),
            "payment.faults.mix must have a positive, finite total weight when "
            "failure_rate > 0, got total 0");
}

TEST(ValidateFaultModelTest, Capacity) {
  FaultsConfig c;
  c.capacity.max_in_service = -1;
  EXPECT_EQ(Check(c),
            "payment.faults.capacity.max_in_service must be an integer in [0, 1000000], got -1");
  c = {};
  c.capacity.max_queue = -2;
  EXPECT_EQ(Check(c),
            "payment.faults.capacity.max_queue must be an integer in [-1, 10000000], got -2");
  c = {};
  c.capacity.load_slope = -0.5;
  EXPECT_EQ(Check(c),
            "payment.faults.capacity.load_slope must be a finite number in [0, inf], got -0.5");
  c = {};
  c.capacity.load_knee = -1;
  EXPECT_EQ(Check(c),
            "payment.faults.capacity.load_knee must be an integer in [0, 10000000], got -1");
}

TEST(ValidateFaultModelTest, Phases) {
  FaultsConfig c = WithOutage();  // phases = {brownout, outage}
  c.phases[1].start_ns = -kS;
  EXPECT_EQ(Check(c),
            "payment.faults.phases[outage].start must be a finite number in [0, 1e+06], got -1");
  c = WithOutage();
  c.phases[1].end_ns = 10 * kS;
  EXPECT_EQ(Check(c), "payment.faults.phases[outage].end must be greater than start (10), got 10");
  c = WithOutage();
  c.phases[1].failure_rate = 2.0;
  EXPECT_EQ(Check(c),
            "payment.faults.phases[outage].failure_rate must be a finite number in [0, 1], got 2");
  c = WithOutage();
  c.phases[0].latency_multiplier = 0;
  EXPECT_EQ(Check(c),
            "payment.faults.phases[brownout].latency_multiplier must be a finite number in "
            "(0, 1e+06], got 0");
  c = WithOutage();
  c.phases[0].latency = Uniform(1, 0.5);
  EXPECT_EQ(Check(c),
            "payment.faults.phases[brownout].latency.high must be >= low (1), got 0.5");
  c = WithOutage();
  c.phases[1].mix->timeout = 0;
  EXPECT_EQ(Check(c),
            "payment.faults.phases[outage].mix must have a positive, finite total weight when "
            "phases[outage].failure_rate > 0, got total 0");
  c = WithOutage();
  c.phases[1].mix->http429 = -3;
  EXPECT_EQ(Check(c),
            "payment.faults.phases[outage].mix.http429 must be a finite number in [0, inf], "
            "got -3");
}

TEST(ValidateFaultModelTest, PhaseWithoutMixNeedsAUsableBaseMix) {
  FaultsConfig c;
  c.mix.http503 = 0;  // fine while nothing fails ...
  FaultPhase p;
  p.name = "outage";
  p.start_ns = 0;
  p.end_ns = kS;
  p.failure_rate = 1.0;  // ... but this phase fails calls with the base mix
  c.phases = {p};
  EXPECT_EQ(Check(c),
            "payment.faults.mix must have a positive, finite total weight when "
            "phases[outage].failure_rate > 0, got total 0");
}

TEST(ValidateFaultModelTest, OverlapNamesBothPhases) {
  FaultsConfig c = WithOutage();  // brownout [30, 40), outage [10, 20)
  c.phases[0].start_ns = 15 * kS;
  EXPECT_EQ(Check(c),
            "payment.faults.phases[brownout] [15, 40) overlaps phases[outage] [10, 20): phases "
            "must not overlap");
  // Unnamed or duplicate names fall back to indices.
  c.phases[0].name = "";
  EXPECT_EQ(Check(c),
            "payment.faults.phases[0] [15, 40) overlaps phases[outage] [10, 20): phases must not "
            "overlap");
  c.phases[0].name = "outage";
  EXPECT_EQ(Check(c),
            "payment.faults.phases[0] [15, 40) overlaps phases[1] [10, 20): phases must not "
            "overlap");
  // A phase inside another.
  c = WithOutage();
  c.phases[0].start_ns = 12 * kS;
  c.phases[0].end_ns = 13 * kS;
  EXPECT_THAT(Check(c), HasSubstr("phases[brownout] [12, 13) overlaps phases[outage] [10, 20)"));
}

}  // namespace
}  // namespace rlab::faults_test
