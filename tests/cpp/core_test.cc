#include <set>

#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/core/outcome.h"
#include "rlab/core/rng.h"
#include "rlab/core/sliding_window.h"
#include "rlab/core/validate.h"

namespace rlab::core_test {
namespace {

TEST(ClockTest, ManualClockMovesOnlyForward) {
  ManualClock clock(5);
  EXPECT_EQ(clock.NowNs(), 5);
  EXPECT_EQ(clock.AdvanceNs(10), 15);
  EXPECT_EQ(clock.AdvanceNs(-3), 15);
  EXPECT_EQ(clock.AdvanceToNs(12), 15);
  EXPECT_EQ(clock.AdvanceToNs(100), 100);
  EXPECT_EQ(clock.NowNs(), 100);
}

TEST(ClockTest, SteadyClockIsMonotonic) {
  SteadyClock clock;
  int64_t prev = clock.NowNs();
  for (int i = 0; i < 1000; ++i) {
    const int64_t now = clock.NowNs();
    EXPECT_GE(now, prev);
    prev = now;
  }
}

TEST(ClockTest, SecondsToNsRoundsAndSaturates) {
  EXPECT_EQ(SecondsToNs(1.5), 1'500'000'000);
  EXPECT_EQ(SecondsToNs(1e-9), 1);
  EXPECT_EQ(SecondsToNs(1e300), INT64_MAX);
  EXPECT_EQ(SecondsToNs(-1e300), INT64_MIN);
}

TEST(RngTest, SameSeedSameDraws) {
  Rng a(42), b(42);
  RandomStream sa = a.Stream("payment"), sb = b.Stream("payment");
  for (int i = 0; i < 100; ++i) EXPECT_EQ(sa.NextU64(), sb.NextU64());
}

TEST(RngTest, StreamsAreIndependentOfEachOther) {
  // Drawing from one stream does not shift another: streams depend only on (seed, name).
  Rng rng(7);
  RandomStream first = rng.Stream("arrivals");
  const uint64_t expected = rng.Stream("payment").NextU64();
  for (int i = 0; i < 10; ++i) first.NextU64();
  EXPECT_EQ(rng.Stream("payment").NextU64(), expected);
  EXPECT_NE(rng.Stream("arrivals").NextU64(), expected);
  EXPECT_NE(Rng(8).Stream("payment").NextU64(), expected);
  EXPECT_NE(rng.Stream("payment", 1).NextU64(), rng.Stream("payment", 2).NextU64());
}

TEST(RngTest, PinnedDrawsDoNotChangeAcrossBuilds) {
  // Reproducibility across runs and machines: these values are part of the lab's contract.
  RandomStream s(Rng::DeriveSeed(1, "x"));
  const uint64_t v = s.NextU64();
  RandomStream again(Rng::DeriveSeed(1, "x"));
  EXPECT_EQ(again.NextU64(), v);
}

TEST(RngTest, DistributionMoments) {
  RandomStream s(123);
  const int n = 200000;
  double sum_u = 0, sum_e = 0, sum_n = 0, sum_n2 = 0;
  for (int i = 0; i < n; ++i) {
    const double u = s.Uniform01();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum_u += u;
    sum_e += s.Exponential(2.0);
    const double z = s.Normal();
    sum_n += z;
    sum_n2 += z * z;
  }
  EXPECT_NEAR(sum_u / n, 0.5, 0.005);
  EXPECT_NEAR(sum_e / n, 2.0, 0.03);
  EXPECT_NEAR(sum_n / n, 0.0, 0.01);
  EXPECT_NEAR(sum_n2 / n, 1.0, 0.02);
  std::set<uint64_t> seen;
  for (int i = 0; i < 10000; ++i) {
    const uint64_t k = s.UniformIndex(7);
    ASSERT_LT(k, 7u);
    seen.insert(k);
  }
  EXPECT_EQ(seen.size(), 7u);
}

TEST(OutcomeTest, DefaultRetryableSet) {
  const OutcomeSet s = OutcomeSet::DefaultRetryable();
  EXPECT_TRUE(s.Contains(Outcome::Of(OutcomeKind::kTimeout)));
  EXPECT_TRUE(s.Contains(Outcome::Of(OutcomeKind::kConnectionReset)));
  for (int st : {429, 500, 502, 503, 504}) EXPECT_TRUE(s.Contains(Outcome::Http(st))) << st;
  for (int st : {400, 401, 404, 409, 501}) EXPECT_FALSE(s.Contains(Outcome::Http(st))) << st;
  EXPECT_FALSE(s.Contains(Outcome::Of(OutcomeKind::kCancelled)));
  EXPECT_FALSE(s.Contains(Outcome::Of(OutcomeKind::kBreakerOpen)));
  EXPECT_TRUE(Outcome::Http(204).ok());
  EXPECT_EQ(Outcome::Http(503).Label(), "http_503");
}

TEST(OutcomeTest, ClassificationTable) {
  auto cls = [](const Outcome& o) { return ClassifyOutcome(o); };
  EXPECT_EQ(cls(Outcome::Success()), OutcomeClass::kSuccess);
  EXPECT_EQ(cls(Outcome::Http(204)), OutcomeClass::kSuccess);
  for (OutcomeKind k :
       {OutcomeKind::kTimeout, OutcomeKind::kConnectionReset, OutcomeKind::kError}) {
    EXPECT_EQ(cls(Outcome::Of(k)), OutcomeClass::kDependencyFault) << OutcomeKindName(k);
  }
  for (int st : {408, 429, 500, 501, 502, 503, 504, 599}) {
    EXPECT_EQ(cls(Outcome::Http(st)), OutcomeClass::kDependencyFault) << st;
  }
  for (int st : {100, 301, 304, 400, 401, 403, 404, 409, 422, 425, 499}) {
    EXPECT_EQ(cls(Outcome::Http(st)), OutcomeClass::kCallerFault) << st;
  }
  EXPECT_EQ(cls(Outcome::Of(OutcomeKind::kCancelled)), OutcomeClass::kCallerGaveUp);
  EXPECT_EQ(cls(Outcome::Of(OutcomeKind::kDeadlineExceeded)), OutcomeClass::kCallerGaveUp);
  for (OutcomeKind k : {OutcomeKind::kBreakerOpen, OutcomeKind::kBreakerHalfOpenFull,
                        OutcomeKind::kBulkheadFull, OutcomeKind::kThrottled}) {
    EXPECT_EQ(cls(Outcome::Of(k)), OutcomeClass::kLocalRejection) << OutcomeKindName(k);
    EXPECT_TRUE(Outcome::Of(k).IsLocalRejection());
  }
  EXPECT_EQ(OutcomeClassName(OutcomeClass::kCallerFault), "caller_fault");
  // The default retry set is a subset of the dependency faults.
  const OutcomeSet retryable = OutcomeSet::DefaultRetryable();
  for (int st = 100; st < 600; ++st) {
    if (retryable.Contains(Outcome::Http(st))) {
      EXPECT_EQ(cls(Outcome::Http(st)), OutcomeClass::kDependencyFault) << st;
    }
  }
}

TEST(OutcomeTest, ParseRejectsUnknownNames) {
  EXPECT_TRUE(OutcomeSet::Parse("retry_on", {"timeout", "5xx", "429"}).ok());
  EXPECT_FALSE(OutcomeSet::Parse("retry_on", {"bogus"}).ok());
  EXPECT_FALSE(OutcomeSet::Parse("retry_on", {"200"}).ok());
  EXPECT_FALSE(OutcomeSet::Parse("retry_on", {"success"}).ok());
}

TEST(ValidateTest, MessagesNameParameterAndRange) {
  const absl::Status s = CheckRange("failure_rate", 1.5, 0.0, 1.0);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "failure_rate must be a finite number in [0, 1], got 1.5");
  EXPECT_FALSE(CheckRange("x", std::nan(""), 0, 1).ok());
  EXPECT_FALSE(CheckRange("x", INFINITY, 0, INFINITY).ok());
  EXPECT_FALSE(CheckRange("x", 0.0, 0, 1, Bound::kOpen).ok());
  EXPECT_TRUE(CheckDuration("d", 0.0, /*allow_zero=*/true).ok());
  EXPECT_FALSE(CheckDuration("d", 0.0).ok());
  EXPECT_EQ(CheckIntRange("n", 0, 1, 10).message(), "n must be an integer in [1, 10], got 0");
}

TEST(TimeWindowCounterTest, ExpiresWholeBuckets) {
  TimeWindowCounter w(10 * kNsPerSecond, 10);  // 1 s buckets
  w.Add(0, 0, 1);
  w.Add(kNsPerSecond / 2, 1, 2);
  EXPECT_EQ(w.Totals(kNsPerSecond)[0], 1);
  w.Add(5 * kNsPerSecond, 0, 3);
  EXPECT_EQ(w.Totals(9 * kNsPerSecond)[0], 4);
  EXPECT_EQ(w.Totals(9 * kNsPerSecond)[1], 2);
  // At t = 10 s the bucket [0, 1) falls out.
  EXPECT_EQ(w.Totals(10 * kNsPerSecond)[0], 3);
  EXPECT_EQ(w.Totals(10 * kNsPerSecond)[1], 0);
  // A long jump clears everything.
  EXPECT_EQ(w.Totals(1000 * kNsPerSecond)[0], 0);
  w.Add(1000 * kNsPerSecond, 2, 5);
  EXPECT_EQ(w.Totals(1000 * kNsPerSecond)[2], 5);
}

TEST(CountWindowTest, KeepsLastN) {
  CountWindow w(3);
  w.Add(true, false);
  w.Add(true, true);
  w.Add(false, false);
  EXPECT_EQ(w.calls(), 3);
  EXPECT_EQ(w.failures(), 2);
  EXPECT_EQ(w.slow(), 1);
  w.Add(false, false);  // the first failure falls out
  EXPECT_EQ(w.failures(), 1);
  w.Add(false, false);
  EXPECT_EQ(w.failures(), 0);
  EXPECT_EQ(w.slow(), 0);
}

}  // namespace
}  // namespace rlab::core_test
