#include "rlab/policy/backoff.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlab/core/rng.h"

namespace rlab::backoff_test {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kMs = 1'000'000;

BackoffConfig Config(Jitter jitter, int64_t initial_ns = 100 * kMs, double multiplier = 2.0,
                     int64_t max_ns = 10 * kNsPerSecond, double factor = 0.5) {
  BackoffConfig c;
  c.initial_ns = initial_ns;
  c.multiplier = multiplier;
  c.max_ns = max_ns;
  c.jitter = jitter;
  c.jitter_factor = factor;
  return c;
}

// The u values every bounds test walks through: the edges of [0, 1) plus a seeded spread.
std::vector<double> Draws() {
  std::vector<double> u = {0.0, 1e-12, 0.25, 0.5, 0.75, std::nextafter(1.0, 0.0)};
  RandomStream s(99);
  for (int i = 0; i < 200; ++i) u.push_back(s.Uniform01());
  return u;
}

TEST(BackoffTest, BaseGrowsExponentiallyAndSaturates) {
  const BackoffConfig c = Config(Jitter::kNone);
  EXPECT_EQ(BackoffBaseNs(c, 1), 100 * kMs);
  EXPECT_EQ(BackoffBaseNs(c, 2), 200 * kMs);
  EXPECT_EQ(BackoffBaseNs(c, 3), 400 * kMs);
  EXPECT_EQ(BackoffBaseNs(c, 7), 6400 * kMs);
  EXPECT_EQ(BackoffBaseNs(c, 8), 10 * kNsPerSecond);  // 12.8 s capped
  // Huge k must neither overflow nor wrap around to small or negative delays.
  for (int64_t k :
       {int64_t{64}, int64_t{1000}, int64_t{1} << 40, std::numeric_limits<int64_t>::max()}) {
    EXPECT_EQ(BackoffBaseNs(c, k), 10 * kNsPerSecond) << k;
  }
  EXPECT_EQ(BackoffBaseNs(c, 0), 100 * kMs);  // k < 1 reads as 1
  EXPECT_EQ(BackoffBaseNs(c, -5), 100 * kMs);
}

TEST(BackoffTest, MultiplierOneIsConstantAndZeroInitialStaysZero) {
  EXPECT_EQ(BackoffBaseNs(Config(Jitter::kNone, 100 * kMs, 1.0), 1000), 100 * kMs);
  const BackoffConfig zero = Config(Jitter::kNone, 0, 10.0, 0);
  EXPECT_EQ(BackoffBaseNs(zero, std::numeric_limits<int64_t>::max()), 0);
  EXPECT_EQ(BackoffDelayNs(Config(Jitter::kDecorrelated, 0, 2.0, 0), 5, 0, 0.9), 0);
}

TEST(BackoffTest, NoneIsTheBase) {
  const BackoffConfig c = Config(Jitter::kNone);
  for (int64_t k = 1; k <= 1000; ++k) {
    for (double u : {0.0, 0.5, 0.999}) EXPECT_EQ(BackoffDelayNs(c, k, 0, u), BackoffBaseNs(c, k));
  }
}

TEST(BackoffTest, FullJitterWithinZeroAndBase) {
  const BackoffConfig c = Config(Jitter::kFull);
  for (int64_t k = 1; k <= 1000; ++k) {
    const int64_t d = BackoffBaseNs(c, k);
    for (double u : Draws()) {
      const int64_t x = BackoffDelayNs(c, k, 0, u);
      ASSERT_GE(x, 0) << k << " " << u;
      ASSERT_LE(x, d) << k << " " << u;
      ASSERT_LE(x, c.max_ns);
    }
  }
  EXPECT_EQ(BackoffDelayNs(c, 1, 0, 0.0), 0);
  EXPECT_EQ(BackoffDelayNs(c, 1, 0, 0.5), 50 * kMs);
}

TEST(BackoffTest, EqualJitterWithinHalfAndBase) {
  const BackoffConfig c = Config(Jitter::kEqual);
  for (int64_t k = 1; k <= 1000; ++k) {
    const int64_t d = BackoffBaseNs(c, k);
    for (double u : Draws()) {
      const int64_t x = BackoffDelayNs(c, k, 0, u);
      ASSERT_GE(x, d / 2) << k << " " << u;
      ASSERT_LE(x, d) << k << " " << u;
    }
  }
  EXPECT_EQ(BackoffDelayNs(c, 2, 0, 0.0), 100 * kMs);
  EXPECT_EQ(BackoffDelayNs(c, 2, 0, 0.5), 150 * kMs);
}

TEST(BackoffTest, ProportionalJitterWithinFactorAndCap) {
  for (double f : {0.0, 0.1, 0.5, 1.0}) {
    const BackoffConfig c = Config(Jitter::kProportional, 100 * kMs, 2.0, 10 * kNsPerSecond, f);
    for (int64_t k = 1; k <= 1000; ++k) {
      const double d = static_cast<double>(BackoffBaseNs(c, k));
      for (double u : Draws()) {
        const int64_t x = BackoffDelayNs(c, k, 0, u);
        ASSERT_GE(static_cast<double>(x), std::floor(d * (1 - f)) - 1) << f << " " << k;
        ASSERT_LE(static_cast<double>(x), d * (1 + f)) << f << " " << k;
        // Near the cap the upper half of the spread is cut: the cap comes after jitter.
        ASSERT_LE(x, c.max_ns) << f << " " << k;
      }
    }
    // f = 0 is exactly the base.
    if (f == 0.0) {
      EXPECT_EQ(BackoffDelayNs(c, 3, 0, 0.9), 400 * kMs);
    }
  }
}

TEST(BackoffTest, CapAppliesAfterJitter) {
  // At the cap, proportional jitter would reach 1.5 * max without the post-jitter cap.
  const BackoffConfig c = Config(Jitter::kProportional, kNsPerSecond, 2.0, 4 * kNsPerSecond, 0.5);
  EXPECT_EQ(BackoffDelayNs(c, 10, 0, 0.999), 4 * kNsPerSecond);
  EXPECT_EQ(BackoffDelayNs(c, 10, 0, 0.0), 2 * kNsPerSecond);
  // Decorrelated from a large previous delay would reach 3 * previous.
  const BackoffConfig d = Config(Jitter::kDecorrelated, kNsPerSecond, 2.0, 4 * kNsPerSecond);
  EXPECT_EQ(BackoffDelayNs(d, 1, 4 * kNsPerSecond, 0.999), 4 * kNsPerSecond);
}

TEST(BackoffTest, DecorrelatedRecurrence) {
  const BackoffConfig c = Config(Jitter::kDecorrelated, 100 * kMs, 2.0, 10 * kNsPerSecond);
  // First retry: previous = initial, so U(initial, 3 * initial).
  EXPECT_EQ(BackoffDelayNs(c, 1, c.initial_ns, 0.0), 100 * kMs);
  EXPECT_EQ(BackoffDelayNs(c, 1, c.initial_ns, 0.5), 200 * kMs);
  // "Before the first retry" may also be passed as 0 or -1: read as initial.
  EXPECT_EQ(BackoffDelayNs(c, 1, 0, 0.5), 200 * kMs);
  EXPECT_EQ(BackoffDelayNs(c, 1, -1, 0.5), 200 * kMs);
  // Next: U(initial, 3 * previous), independent of k.
  EXPECT_EQ(BackoffDelayNs(c, 2, 200 * kMs, 0.5), 350 * kMs);
  EXPECT_EQ(BackoffDelayNs(c, 99, 200 * kMs, 0.5), 350 * kMs);

  // The helper threads previous through the sequence: each delay within [initial, 3 * prev].
  Backoff b(c);
  RandomStream s(5);
  int64_t prev = c.initial_ns;
  for (int k = 1; k <= 1000; ++k) {
    const double u = s.Uniform01();
    const int64_t x = b.NextDelayNs(u);
    ASSERT_EQ(x, BackoffDelayNs(c, k, prev, u));
    ASSERT_GE(x, c.initial_ns);
    ASSERT_LE(x, std::min(3 * prev, c.max_ns));
    prev = x;
  }
  EXPECT_EQ(b.retries(), 1000);
  b.Reset();
  EXPECT_EQ(b.retries(), 0);
  EXPECT_EQ(b.previous_ns(), c.initial_ns);
}

TEST(BackoffTest, NoDelayEverExceedsMaxInAnyMode) {
  RandomStream s(17);
  for (int mode = 0; mode < kNumJitterModes; ++mode) {
    for (double mult : {1.0, 1.5, 2.0, 10.0, 1e300}) {
      const BackoffConfig c =
          Config(static_cast<Jitter>(mode), 3 * kMs, mult, 777 * kMs, /*factor=*/1.0);
      Backoff b(c);
      for (int k = 1; k <= 1000; ++k) {
        const int64_t x = b.NextDelayNs(s.Uniform01());
        ASSERT_GE(x, 0);
        ASSERT_LE(x, c.max_ns) << JitterName(c.jitter) << " " << mult << " " << k;
      }
    }
  }
}

TEST(BackoffTest, JitterNamesRoundTrip) {
  for (int mode = 0; mode < kNumJitterModes; ++mode) {
    const auto j = static_cast<Jitter>(mode);
    absl::StatusOr<Jitter> parsed = ParseJitter(JitterName(j));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, j);
  }
  absl::StatusOr<Jitter> bad = ParseJitter("Full");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(),
            "jitter must be one of none, full, equal, decorrelated, proportional; got 'Full'");
}

TEST(BackoffTest, ValidationMessagesNameParameterAndRange) {
  // Built from seconds as Python gives them; NaN and inf are the codec's (tests/test_backoff.py).
  auto message = [](double initial_s, double multiplier, double max_delay_s, double factor) {
    BackoffConfig c;
    c.initial_ns = SecondsToNs(initial_s);
    c.multiplier = multiplier;
    c.max_ns = SecondsToNs(max_delay_s);
    c.jitter = Jitter::kProportional;
    c.jitter_factor = factor;
    const absl::Status s = Validate(c);
    return s.ok() ? std::string("ok") : std::string(s.message());
  };
  EXPECT_EQ(message(0.1, 2.0, 30.0, 0.5), "ok");
  EXPECT_EQ(message(0.0, 2.0, 0.0, 0.5), "ok");
  EXPECT_EQ(message(-1, 2.0, 30.0, 0.5), "initial must be a finite number in [0, 1e+06], got -1");
  EXPECT_EQ(message(0.1, 0.5, 30.0, 0.5),
            "multiplier must be a finite number in [1, inf), got 0.5");
  EXPECT_EQ(message(0.1, INFINITY, 30.0, 0.5),
            "multiplier must be a finite number in [1, inf), got inf");
  EXPECT_EQ(message(0.1, 2.0, 0.05, 0.5),
            "max_delay must be a finite number in [0.1, 1e+06], got 0.05");
  EXPECT_EQ(message(0.1, 2.0, 30.0, 1.5),
            "jitter_factor must be a finite number in [0, 1], got 1.5");
  EXPECT_EQ(message(0.1, 2.0, 30.0, -0.1),
            "jitter_factor must be a finite number in [0, 1], got -0.1");

  BackoffConfig c;
  EXPECT_TRUE(Validate(c).ok());
  c.jitter = static_cast<Jitter>(42);
  EXPECT_THAT(std::string(Validate(c).message()), HasSubstr("jitter must be one of"));
}

}  // namespace
}  // namespace rlab::backoff_test
