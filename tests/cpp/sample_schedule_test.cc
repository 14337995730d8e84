#include "rlab/model/sample_schedule.h"

#include <cstdint>
#include <limits>

#include "gtest/gtest.h"

namespace rlab::sample_schedule_test {
namespace {

constexpr int64_t kS = 1'000'000'000;

TEST(SampleScheduleTest, RegularThroughArrivalsAndTheStartOfTheDrain) {
  // Arrivals end at 60 s; regular 1 s ticks until 60 + kRegularDrainSamples s.
  const int64_t end = (60 + kRegularDrainSamples) * kS;
  for (int64_t t = kS; t < end; t += kS) EXPECT_EQ(NextSampleGapNs(t, 60 * kS, kS), kS) << t;
}

TEST(SampleScheduleTest, GapsDoubleAfterTheRegularDrainTicks) {
  int64_t t = (60 + kRegularDrainSamples) * kS;
  int64_t expected = kS;
  for (int i = 0; i < 20; ++i) {
    const int64_t gap = NextSampleGapNs(t, 60 * kS, kS);
    EXPECT_EQ(gap, expected) << i;
    t += gap;
    expected *= 2;
  }
}

TEST(SampleScheduleTest, RegularEndIsATickWhenDurationIsNotAMultiple) {
  // duration 2.5 s, every 1 s: ticks 1, 2, 3 cover arrivals, then kRegularDrainSamples more.
  const int64_t r = (3 + kRegularDrainSamples) * kS;
  EXPECT_EQ(NextSampleGapNs(r - kS, 2'500'000'000, kS), kS);
  EXPECT_EQ(NextSampleGapNs(r, 2'500'000'000, kS), kS);
  EXPECT_EQ(NextSampleGapNs(r + kS, 2'500'000'000, kS), 2 * kS);
}

TEST(SampleScheduleTest, DrainRowsAreLogarithmicInTheDrainLength) {
  // A drain of ten million seconds sampled every second: about 1000 + log2(1e7) ticks.
  int64_t t = kS;
  int64_t ticks = 0;
  while (t < 10'000'060 * kS) {
    t += NextSampleGapNs(t, 60 * kS, kS);
    ++ticks;
  }
  EXPECT_LE(ticks, 60 + kRegularDrainSamples + 25);
}

TEST(SampleScheduleTest, NeverOverflows) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const int64_t every = 1'000'000 * kS;  // the largest sample_every, 1e6 s
  const int64_t gap = NextSampleGapNs(kMax - 5, 1'000'000 * kS, every);
  EXPECT_GE(gap, 0);
  EXPECT_LE(gap, 5);
  EXPECT_EQ(NextSampleGapNs(kMax - 10, 0, 1), 10);
}

}  // namespace
}  // namespace rlab::sample_schedule_test
