#include "rlab/model/arrivals.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/core/rng.h"

namespace rlab::arrivals_test {
namespace {

constexpr int64_t kS = kNsPerSecond;

std::vector<int64_t> All(ArrivalProcess& p, double rate, RandomStream& rng) {
  std::vector<int64_t> out;
  for (int64_t t = p.Next(0, rate, rng); t != ArrivalProcess::kNone; t = p.Next(t, rate, rng)) {
    out.push_back(t);
  }
  return out;
}

TEST(ArrivalsTest, ConstantRateIsEvenlySpacedAndStopsAtTheDuration) {
  ArrivalConfig c;
  c.kind = ArrivalConfig::Kind::kConstant;
  ArrivalProcess p(c, 10 * kS);
  RandomStream rng = Rng(1).Stream("arrivals");
  const std::vector<int64_t> t = All(p, 4.0, rng);
  ASSERT_EQ(t.size(), 39u);  // 0.25 s apart, strictly before 10 s
  EXPECT_EQ(t.front(), kS / 4);
  EXPECT_EQ(t.back(), 39 * kS / 4);
}

TEST(ArrivalsTest, PoissonCountMatchesTheRate) {
  ArrivalConfig c;
  ArrivalProcess p(c, 1000 * kS);
  RandomStream rng = Rng(2).Stream("arrivals");
  const double n = static_cast<double>(All(p, 50.0, rng).size());
  EXPECT_NEAR(n, 50000.0, 4 * std::sqrt(50000.0));  // Poisson: sd = sqrt(mean)
}

TEST(ArrivalsTest, ThinnedScheduleFollowsEachSegmentsRate) {
  ArrivalConfig c;
  c.kind = ArrivalConfig::Kind::kSchedule;
  c.schedule = {{0, 100 * kS, 10.0, 10.0}, {100 * kS, 200 * kS, 0.0, 100.0}};
  ArrivalProcess p(c, 300 * kS);
  RandomStream rng = Rng(3).Stream("arrivals");
  double first = 0, ramp = 0, after = 0;
  for (int64_t t : All(p, 0.0, rng)) {
    (t < 100 * kS ? first : t < 200 * kS ? ramp : after) += 1;
  }
  EXPECT_NEAR(first, 1000.0, 4 * std::sqrt(1000.0));
  EXPECT_NEAR(ramp, 5000.0, 4 * std::sqrt(5000.0));  // the integral of a 0 -> 100/s ramp
  EXPECT_EQ(after, 0.0);                               // no segment: rate 0
}

TEST(ArrivalsTest, TraceIsReplayedUntilTheDuration) {
  ArrivalConfig c;
  c.kind = ArrivalConfig::Kind::kTrace;
  c.trace_ns = {1, 1, 5, 20 * kS};
  ArrivalProcess p(c, 10 * kS);
  RandomStream rng = Rng(4).Stream("arrivals");
  EXPECT_EQ(All(p, 0.0, rng), (std::vector<int64_t>{1, 1, 5}));
}

TEST(ArrivalsTest, RateAtInterpolatesInsideSegments) {
  const std::vector<RateSegment> s = {{0, 10 * kS, 0.0, 100.0}};
  EXPECT_DOUBLE_EQ(RateAt(s, 5 * kS), 50.0);
  EXPECT_DOUBLE_EQ(RateAt(s, 10 * kS), 0.0);  // [start, end)
}

}  // namespace
}  // namespace rlab::arrivals_test
