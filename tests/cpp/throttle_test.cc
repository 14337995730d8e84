#include "rlab/policy/throttle.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/core/rng.h"

namespace rlab::throttle_test {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kS = kNsPerSecond;

ThrottleConfig Config(double k, double window_s, int buckets) {
  return ThrottleConfig{k, SecondsToNs(window_s), buckets};
}

TEST(ThrottleTest, ProbabilityFormula) {
  EXPECT_DOUBLE_EQ(AdaptiveThrottle::Probability(2, 0, 0), 0.0);
  EXPECT_DOUBLE_EQ(AdaptiveThrottle::Probability(2, 10, 3), 4.0 / 11.0);
  EXPECT_DOUBLE_EQ(AdaptiveThrottle::Probability(2, 10, 5), 0.0);
  EXPECT_DOUBLE_EQ(AdaptiveThrottle::Probability(2, 10, 9), 0.0) << "never negative";
  EXPECT_DOUBLE_EQ(AdaptiveThrottle::Probability(2, 100, 0), 100.0 / 101.0);
  EXPECT_DOUBLE_EQ(AdaptiveThrottle::Probability(1.5, 20, 4), 14.0 / 21.0);
  EXPECT_DOUBLE_EQ(AdaptiveThrottle::Probability(1, 1000, 900), 100.0 / 1001.0);
}

TEST(ThrottleTest, RejectedRequestsCountAsRequests) {
  AdaptiveThrottle t(Config(2, 120, 120));
  // Nothing accepted: after n requests p = n / (n + 1), whether they were admitted or not.
  EXPECT_TRUE(t.Allow(0, 0.0)) << "p = 0 before the first request";
  EXPECT_DOUBLE_EQ(t.RejectProbability(0), 1.0 / 2.0);
  EXPECT_FALSE(t.Allow(0, 0.49));
  EXPECT_DOUBLE_EQ(t.RejectProbability(0), 2.0 / 3.0);
  EXPECT_TRUE(t.Allow(0, 0.67)) << "u >= p admits";
  EXPECT_DOUBLE_EQ(t.RejectProbability(0), 3.0 / 4.0);
  const ThrottleSnapshot s = t.Snapshot(0);
  EXPECT_EQ(s.requests, 3);
  EXPECT_EQ(s.accepts, 0);
  EXPECT_EQ(s.local_rejections, 1);
  EXPECT_DOUBLE_EQ(s.reject_probability, 3.0 / 4.0);
}

TEST(ThrottleTest, AcceptsBringTheProbabilityDown) {
  AdaptiveThrottle t(Config(2, 120, 120));
  for (int i = 0; i < 10; ++i) t.Allow(kS, 0.999);
  for (int i = 0; i < 3; ++i) t.RecordAccepted(kS);
  EXPECT_DOUBLE_EQ(t.RejectProbability(kS), 4.0 / 11.0);
  t.RecordAccepted(kS);
  t.RecordAccepted(kS);
  EXPECT_DOUBLE_EQ(t.RejectProbability(kS), 0.0);
  EXPECT_TRUE(t.Allow(kS, 0.0));
}

TEST(ThrottleTest, WindowExpiry) {
  AdaptiveThrottle t(Config(2, 10, 10));
  for (int i = 0; i < 50; ++i) t.Allow(0, 0.999);
  EXPECT_DOUBLE_EQ(t.RejectProbability(0), 50.0 / 51.0);
  EXPECT_DOUBLE_EQ(t.RejectProbability(9 * kS), 50.0 / 51.0);
  EXPECT_DOUBLE_EQ(t.RejectProbability(10 * kS), 0.0) << "the bucket of t=0 has expired";
  EXPECT_EQ(t.Snapshot(10 * kS).requests, 0);
}

TEST(ThrottleTest, EmpiricalRejectionFrequencyMatchesFormula) {
  // Hold accepts / requests at 1/5 with K = 2: p stays at (1 - 2/5) * R / (R + 1), about 0.6.
  AdaptiveThrottle t(Config(2, 1000, 10));
  for (int i = 0; i < 10'000; ++i) t.Allow(0, 0.999999);
  for (int i = 0; i < 2'000; ++i) t.RecordAccepted(0);
  const double p0 = t.RejectProbability(0);
  EXPECT_NEAR(p0, 0.6, 1e-4);
  RandomStream rng(Rng::DeriveSeed(42, "throttle"));
  constexpr int kRequests = 20'000;
  int rejected = 0;
  for (int i = 0; i < kRequests; ++i) {
    if (!t.Allow(0, rng.Uniform01())) ++rejected;
    if (i % 5 == 4) t.RecordAccepted(0);
  }
  const double freq = static_cast<double>(rejected) / kRequests;
  // Binomial standard deviation is sqrt(0.24 / 20000) = 0.0035: allow four of them.
  EXPECT_NEAR(freq, 0.6, 0.014);
  EXPECT_EQ(t.Snapshot(0).local_rejections, rejected);
}

TEST(ThrottleTest, WhichOutcomesAreAccepted) {
  EXPECT_TRUE(IsAcceptedByBackend(Outcome::Success()));
  EXPECT_TRUE(IsAcceptedByBackend(Outcome::Http(200)));
  EXPECT_TRUE(IsAcceptedByBackend(Outcome::Http(404)));
  EXPECT_TRUE(IsAcceptedByBackend(Outcome::Http(500)));
  EXPECT_TRUE(IsAcceptedByBackend(Outcome::Of(OutcomeKind::kError)));
  EXPECT_TRUE(IsAcceptedByBackend(Outcome::Of(OutcomeKind::kCancelled)));
  EXPECT_FALSE(IsAcceptedByBackend(Outcome::Http(429)));
  EXPECT_FALSE(IsAcceptedByBackend(Outcome::Http(502)));
  EXPECT_FALSE(IsAcceptedByBackend(Outcome::Http(503)));
  EXPECT_FALSE(IsAcceptedByBackend(Outcome::Http(504)));
  EXPECT_FALSE(IsAcceptedByBackend(Outcome::Of(OutcomeKind::kTimeout)));
  EXPECT_FALSE(IsAcceptedByBackend(Outcome::Of(OutcomeKind::kConnectionReset)));
  EXPECT_FALSE(IsAcceptedByBackend(Outcome::Of(OutcomeKind::kDeadlineExceeded)));
  EXPECT_FALSE(IsAcceptedByBackend(Outcome::Of(OutcomeKind::kBreakerOpen)));
  EXPECT_FALSE(IsAcceptedByBackend(Outcome::Of(OutcomeKind::kThrottled)));

  AdaptiveThrottle t(Config(2, 120, 120));
  t.Allow(0, 0.5);
  t.RecordOutcome(0, Outcome::Http(503));
  EXPECT_EQ(t.Snapshot(0).accepts, 0);
  t.RecordOutcome(0, Outcome::Http(404));
  EXPECT_EQ(t.Snapshot(0).accepts, 1);
}

TEST(ThrottleTest, ValidationNamesTheParameter) {
  EXPECT_TRUE(Validate(Config(2, 120, 120)).ok());
  EXPECT_TRUE(Validate(Config(1, 1e6, 1000)).ok());
  EXPECT_THAT(Validate(Config(0.5, 120, 120)).message(),
              HasSubstr("k must be a finite number in [1, 1000], got 0.5"));
  EXPECT_THAT(Validate(Config(std::nan(""), 120, 120)).message(), HasSubstr("k must be"));
  EXPECT_THAT(Validate(Config(2, 0, 120)).message(), HasSubstr("window must be"));
  EXPECT_THAT(Validate(Config(2, 120, 0)).message(), HasSubstr("buckets must be"));
  EXPECT_THAT(Validate(Config(2, 120, 1001)).message(), HasSubstr("buckets must be"));
  EXPECT_THAT(Validate(Config(2, 1e-8, 100)).message(), HasSubstr("buckets must be at most"));
  // The rule the ratio budget and the breaker share (ValidateBuckets), worded in full.
  EXPECT_EQ(Validate(Config(2, 1e-8, 100)).message(),
            "buckets must be at most window in nanoseconds (10), got 100");
  EXPECT_TRUE(Validate(Config(2, 1e-7, 100)).ok());  // one nanosecond per bucket
  EXPECT_FALSE(AdaptiveThrottle::Create(Config(0, 1, 1)).ok());
}

TEST(ThrottleTest, ManyThreadsCountEveryRequest) {
  AdaptiveThrottle t(Config(2, 60, 60));
  constexpr int kThreads = 8;
  constexpr int kOps = 10'000;
  std::atomic<int64_t> rejected{0}, accepted{0};
  std::atomic<bool> bad_probability{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      RandomStream rng(Rng::DeriveSeed(i, "throttle-stress"));
      for (int j = 0; j < kOps; ++j) {
        if (!t.Allow(kS, rng.Uniform01())) {
          rejected.fetch_add(1);
        } else if (rng.Bernoulli(0.3)) {
          t.RecordAccepted(kS);
          accepted.fetch_add(1);
        }
        const double p = t.RejectProbability(kS);
        if (!(p >= 0.0 && p < 1.0)) bad_probability = true;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_FALSE(bad_probability);
  const ThrottleSnapshot s = t.Snapshot(kS);
  EXPECT_EQ(s.requests, kThreads * kOps);
  EXPECT_EQ(s.accepts, accepted.load());
  EXPECT_EQ(s.local_rejections, rejected.load());
}

}  // namespace
}  // namespace rlab::throttle_test
