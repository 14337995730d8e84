#include "rlab/policy/outlier_detector.h"

#include <limits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlab/core/clock.h"

namespace rlab::outlier_detector_test {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kS = kNsPerSecond;
constexpr int64_t kMs = kS / 1000;

// 10 replicas, 3 errors in a row eject, ticks every second, ejections of 5 s capped at 20 s,
// any share ejectable, success rate off.
OutlierDetectionConfig Consecutive() {
  OutlierDetectionConfig c;
  c.replicas = 10;
  c.consecutive_errors = 3;
  c.interval_ns = 1 * kS;
  c.base_ejection_ns = 5 * kS;
  c.max_ejection_ns = 20 * kS;
  c.max_ejection_percent = 100.0;
  c.success_rate = false;
  return c;
}

TEST(OutlierDetectorTest, ValidateNamesDottedPathRangeAndValue) {
  OutlierDetectionConfig c = Consecutive();
  c.consecutive_errors = -1;
  EXPECT_THAT(Validate(c).message(),
              HasSubstr("outlier.consecutive_errors must be an integer in [0, 1000000], got -1"));
  c = Consecutive();
  c.max_ejection_percent = 101;
  EXPECT_THAT(Validate(c).message(), HasSubstr("outlier.max_ejection_percent"));
  c = Consecutive();
  c.max_ejection_ns = 2 * kS;
  EXPECT_THAT(Validate(c).message(), HasSubstr("outlier.max_ejection_time must be in"));
  EXPECT_TRUE(Validate(Consecutive()).ok());
  EXPECT_FALSE(OutlierDetector::Create(c).ok());
}

TEST(OutlierDetectorTest, ConsecutiveErrorsEjectOnTheNthError) {
  OutlierDetector d(Consecutive());
  EXPECT_FALSE(d.RecordResult(2, 100 * kMs, false));
  EXPECT_FALSE(d.RecordResult(2, 200 * kMs, false));
  EXPECT_FALSE(d.IsEjected(2));
  EXPECT_TRUE(d.RecordResult(2, 300 * kMs, false));
  EXPECT_TRUE(d.IsEjected(2));
  EXPECT_EQ(d.EjectedCount(), 1);
  const ReplicaOutlierState s = d.State(2);
  EXPECT_EQ(s.times_ejected, 1);
  EXPECT_EQ(s.backoff, 1);
  EXPECT_EQ(s.ejected_until_ns, 5300 * kMs);
  ASSERT_EQ(d.Events().size(), 1u);
  EXPECT_EQ(d.Events()[0].time_ns, 300 * kMs);
  EXPECT_TRUE(d.Events()[0].ejected);
  EXPECT_EQ(d.Events()[0].reason, EjectionReason::kConsecutiveErrors);
}

TEST(OutlierDetectorTest, ASuccessBreaksTheRun) {
  OutlierDetector d(Consecutive());
  d.RecordResult(0, 1 * kMs, false);
  d.RecordResult(0, 2 * kMs, false);
  d.RecordResult(0, 3 * kMs, true);
  d.RecordResult(0, 4 * kMs, false);
  d.RecordResult(0, 5 * kMs, false);
  EXPECT_FALSE(d.IsEjected(0));
  EXPECT_EQ(d.State(0).consecutive_errors, 2);
}

TEST(OutlierDetectorTest, ReturnsAtTheFirstTickAfterTheEjectionTimeAndBacksOff) {
  OutlierDetector d(Consecutive());
  for (int i = 1; i <= 3; ++i) d.RecordResult(4, i * 100 * kMs, false);  // ejected at 0.3 s
  d.AdvanceTo(5999 * kMs);
  EXPECT_TRUE(d.IsEjected(4)) << "ejected for 5 s; the tick at 5 s is too early";
  d.AdvanceTo(6 * kS);
  EXPECT_FALSE(d.IsEjected(4)) << "returns at the tick at 6 s";
  EXPECT_EQ(d.State(4).consecutive_errors, 0);
  // A second ejection (no tick in between) lasts 2 * base.
  for (int i = 1; i <= 3; ++i) d.RecordResult(4, 6 * kS + i * 100 * kMs, false);
  EXPECT_TRUE(d.IsEjected(4));
  EXPECT_EQ(d.State(4).backoff, 2);
  EXPECT_EQ(d.State(4).ejected_until_ns, 16300 * kMs);
  d.AdvanceTo(16999 * kMs);
  EXPECT_TRUE(d.IsEjected(4));
  d.AdvanceTo(17 * kS);
  EXPECT_FALSE(d.IsEjected(4));
  // Healthy ticks at least an interval after the return earn the backoff back, one a tick.
  EXPECT_EQ(d.State(4).backoff, 2);
  d.AdvanceTo(18 * kS);
  EXPECT_EQ(d.State(4).backoff, 1);
  d.AdvanceTo(19 * kS);
  EXPECT_EQ(d.State(4).backoff, 0);
  d.AdvanceTo(25 * kS);
  EXPECT_EQ(d.State(4).backoff, 0);
  const std::vector<EjectionEvent> events = d.Events();
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[1].time_ns, 6 * kS);
  EXPECT_FALSE(events[1].ejected);
  EXPECT_EQ(events[3].time_ns, 17 * kS);
}

TEST(OutlierDetectorTest, EjectionTimeIsCappedByMaxEjectionTime) {
  OutlierDetectionConfig c = Consecutive();
  c.max_ejection_ns = 12 * kS;  // lengths 5, 10, 12, 12 ...
  OutlierDetector d(c);
  int64_t t = 0;
  const std::vector<int64_t> expected_s = {5, 10, 12, 12, 12};
  for (int64_t length_s : expected_s) {
    for (int i = 0; i < 3; ++i) d.RecordResult(1, t += kMs, false);
    ASSERT_TRUE(d.IsEjected(1));
    EXPECT_EQ(d.State(1).ejected_until_ns - t, length_s * kS);
    // Come back at the first tick at or after the end, and fail again right away.
    t = d.State(1).ejected_until_ns;
    d.AdvanceTo(t + kS);
    ASSERT_FALSE(d.IsEjected(1));
    t += kS;
  }
  // Envoy's rule: k grows while k * base < max + base, so k stops at ceil(17 / 5) = 4.
  EXPECT_EQ(d.State(1).backoff, 4);
}

TEST(OutlierDetectorTest, MaxEjectionPercentRefusesEjections) {
  OutlierDetectionConfig c = Consecutive();
  c.max_ejection_percent = 10.0;  // one of ten
  OutlierDetector d(c);
  for (int i = 0; i < 3; ++i) d.RecordResult(0, kMs, false);
  for (int i = 0; i < 3; ++i) d.RecordResult(1, kMs, false);
  EXPECT_TRUE(d.IsEjected(0));
  EXPECT_FALSE(d.IsEjected(1)) << "(1 + 1) / 10 = 20% > 10%";
  EXPECT_EQ(d.overflow_count(), 1);
  EXPECT_EQ(d.State(1).consecutive_errors, 0) << "the run is reset once detected";
}

OutlierDetectionConfig SuccessRate() {
  OutlierDetectionConfig c;
  c.replicas = 5;
  c.consecutive_errors = 0;
  c.interval_ns = 1 * kS;
  c.base_ejection_ns = 30 * kS;
  c.max_ejection_ns = 300 * kS;
  c.max_ejection_percent = 100.0;
  c.success_rate = true;
  c.success_rate_minimum_hosts = 5;
  c.success_rate_request_volume = 10;
  c.success_rate_stdev_factor = 1.9;
  return c;
}

// Ten results per replica in [0, 1 s): replica 4 succeeds `ok4` times, the others always.
void FillInterval(OutlierDetector& d, int ok4, int volume4 = 10) {
  for (int r = 0; r < 4; ++r) {
    for (int i = 0; i < 10; ++i) d.RecordResult(r, 10 * kMs * (i + 1), true);
  }
  for (int i = 0; i < volume4; ++i) d.RecordResult(4, 10 * kMs * (i + 1), i < ok4);
}

TEST(OutlierDetectorTest, SuccessRateOutlierEjectedAtTheTick) {
  // Envoy's worked example: rates {100, 100, 100, 100, 50}: mean 90, stdev 20, threshold
  // 90 - 1.9 * 20 = 52, and 50 < 52.
  OutlierDetector d(SuccessRate());
  FillInterval(d, 5);
  EXPECT_FALSE(d.IsEjected(4)) << "checked at the tick only";
  d.AdvanceTo(999 * kMs);
  EXPECT_FALSE(d.IsEjected(4));
  d.AdvanceTo(1 * kS);
  EXPECT_TRUE(d.IsEjected(4));
  EXPECT_EQ(d.Events().back().reason, EjectionReason::kSuccessRate);
  EXPECT_EQ(d.Events().back().time_ns, 1 * kS);
}

TEST(OutlierDetectorTest, SuccessRateAboveThresholdStays) {
  // {100 x4, 60}: mean 92, stdev 16, threshold 61.6 > 60 ejects; {100 x4, 70}: mean 94, stdev
  // 12, threshold 71.2 > 70 ejects too; {100 x4, 80}: mean 96, stdev 8, threshold 80.8 > 80.
  // The rule is relative: with one outlier among five, a factor of 1.9 always flags it
  // (z = 2), so a larger factor is what keeps it.
  OutlierDetectionConfig c = SuccessRate();
  c.success_rate_stdev_factor = 2.1;
  OutlierDetector d(c);
  FillInterval(d, 5);
  d.AdvanceTo(1 * kS);
  EXPECT_FALSE(d.IsEjected(4)) << "90 - 2.1 * 20 = 48 < 50";
}

TEST(OutlierDetectorTest, SuccessRateNeedsVolumeAndMinimumHosts) {
  OutlierDetector low_volume(SuccessRate());
  FillInterval(low_volume, 4, 9);  // replica 4: 9 results < 10: only 4 hosts qualify
  low_volume.AdvanceTo(1 * kS);
  EXPECT_FALSE(low_volume.IsEjected(4));

  OutlierDetectionConfig c = SuccessRate();
  c.success_rate_minimum_hosts = 6;  // more than the pool
  OutlierDetector few_hosts(c);
  FillInterval(few_hosts, 0);
  few_hosts.AdvanceTo(1 * kS);
  EXPECT_FALSE(few_hosts.IsEjected(4));

  // Each interval is judged on its own results: the healthy replicas' volume fell in [0, 1 s),
  // replica 4's errors in [1 s, 2 s), so no interval has five qualifying replicas.
  OutlierDetector split(SuccessRate());
  for (int r = 0; r < 4; ++r) {
    for (int i = 0; i < 10; ++i) split.RecordResult(r, 10 * kMs * (i + 1), true);
  }
  for (int i = 0; i < 10; ++i) split.RecordResult(4, kS + 10 * kMs * (i + 1), false);
  split.AdvanceTo(3 * kS);
  EXPECT_FALSE(split.IsEjected(4));
}

TEST(OutlierDetectorTest, SuccessRateEjectionsRespectMaxEjectionPercent) {
  // Ten replicas, two at 0%: mean 80, stdev 40, threshold 80 - 1.9 * 40 = 4; both are below it
  // but at most 10% of the pool may be out, so the second is refused.
  OutlierDetectionConfig c = SuccessRate();
  c.replicas = 10;
  c.max_ejection_percent = 10.0;
  OutlierDetector d(c);
  for (int r = 0; r < 10; ++r) {
    for (int i = 0; i < 10; ++i) d.RecordResult(r, 10 * kMs * (i + 1), r >= 2);
  }
  d.AdvanceTo(1 * kS);
  EXPECT_EQ(d.EjectedCount(), 1);
  EXPECT_TRUE(d.IsEjected(0));
  EXPECT_EQ(d.overflow_count(), 1);
}

TEST(OutlierDetectorTest, LongQuietGapMatchesTickByTick) {
  // The fast-forward over idle ticks must give the same state as running every tick.
  OutlierDetectionConfig c = Consecutive();
  OutlierDetector stepped(c);
  OutlierDetector jumped(c);
  for (OutlierDetector* d : {&stepped, &jumped}) {
    for (int i = 0; i < 3; ++i) d->RecordResult(3, kMs * (i + 1), false);           // k = 1
    d->AdvanceTo(6 * kS);                                                           // back at 6 s
    for (int i = 0; i < 3; ++i) d->RecordResult(3, 6 * kS + kMs * (i + 1), false);  // k = 2
    for (int i = 0; i < 3; ++i) d->RecordResult(7, 6 * kS + kMs * (i + 1), false);  // k = 1
  }
  for (int64_t t = 6 * kS; t <= 40 * kS; t += kS) {
    stepped.AdvanceTo(t);
    if (t == 17 * kS) {
      EXPECT_EQ(stepped.State(3).backoff, 2);
    }
  }
  jumped.AdvanceTo(18500 * kMs);
  jumped.AdvanceTo(40 * kS);
  for (int r : {3, 7}) {
    EXPECT_EQ(stepped.State(r).ejected, jumped.State(r).ejected) << r;
    EXPECT_EQ(stepped.State(r).backoff, jumped.State(r).backoff) << r;
  }
  EXPECT_EQ(stepped.Events().size(), jumped.Events().size());
  for (size_t i = 0; i < stepped.Events().size(); ++i) {
    EXPECT_EQ(stepped.Events()[i].time_ns, jumped.Events()[i].time_ns) << i;
  }
  // A very long gap is cheap (no tick-by-tick loop over 1e6 s of 1 ms ticks).
  c.interval_ns = kMs;
  OutlierDetector fine(c);
  for (int i = 0; i < 3; ++i) fine.RecordResult(0, 0, false);
  fine.AdvanceTo(1'000'000 * kS);
  EXPECT_FALSE(fine.IsEjected(0));
  EXPECT_EQ(fine.State(0).backoff, 0);
}

TEST(OutlierDetectorTest, ExtremeTimesSaturate) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  OutlierDetector d(Consecutive(), kMin);
  for (int i = 0; i < 3; ++i) d.RecordResult(0, kMin, false);
  EXPECT_TRUE(d.IsEjected(0));
  d.AdvanceTo(kMax);
  EXPECT_FALSE(d.IsEjected(0));
  d.AdvanceTo(kMax);
  d.RecordResult(1, kMin, false);  // time going backwards changes nothing but the count
  EXPECT_EQ(d.State(1).consecutive_errors, 1);
}

TEST(OutlierDetectorTest, OutOfRangeReplicaIsIgnored) {
  OutlierDetector d(Consecutive());
  EXPECT_FALSE(d.RecordResult(-1, 0, false));
  EXPECT_FALSE(d.RecordResult(10, 0, false));
  EXPECT_FALSE(d.IsEjected(10));
}

}  // namespace
}  // namespace rlab::outlier_detector_test
