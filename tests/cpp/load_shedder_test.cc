#include "rlab/policy/load_shedder.h"

#include <gtest/gtest.h>

#include <array>

#include "rlab/core/rng.h"

namespace rlab::load_shedder_test {
namespace {

constexpr int64_t kMs = 1'000'000;

SheddingConfig ThreeClasses() {
  SheddingConfig c;
  c.classes = {ShedClassConfig{1.0, 1.0, 0}, ShedClassConfig{1.0, 0.8, 0},
               ShedClassConfig{1.0, 0.5, 0}};
  c.fair_share_above = -1.0;
  return c;
}

TEST(LoadShedderTest, ShedsTheLowestClassFirstByOccupancy) {
  LoadShedder s(ThreeClasses(), 10);
  // Sheddable is admitted while fewer than 5 are queued.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(s.Admit(0, Criticality::kSheddable, 0), ShedCause::kAdmit);
  EXPECT_EQ(s.Admit(0, Criticality::kSheddable, 0), ShedCause::kOccupancy);
  // Default goes on to 8.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(s.Admit(0, Criticality::kDefault, 0), ShedCause::kAdmit);
  EXPECT_EQ(s.Admit(0, Criticality::kDefault, 0), ShedCause::kOccupancy);
  // Critical (1.0) is never refused by the shedder: the full queue does that.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(s.Admit(0, Criticality::kCritical, 0), ShedCause::kAdmit);
  EXPECT_EQ(s.queued(), 13);
  // One leaves: 12 queued, still too many for default and sheddable.
  s.OnDequeue(1, 0, 1);
  EXPECT_EQ(s.Admit(1, Criticality::kDefault, 0), ShedCause::kOccupancy);
  for (int i = 0; i < 8; ++i) s.OnDequeue(1, 0, 1);
  EXPECT_EQ(s.queued(), 4);
  EXPECT_EQ(s.Admit(1, Criticality::kSheddable, 0), ShedCause::kAdmit);
  EXPECT_EQ(s.Admit(1, Criticality::kSheddable, 0), ShedCause::kOccupancy);
}

TEST(LoadShedderTest, ShedsByRecentQueueDelayPerInterval) {
  SheddingConfig c = ThreeClasses();
  c.classes[2].max_occupancy = 1.0;
  c.classes[2].max_queue_delay_ns = 5 * kMs;
  c.classes[1].max_occupancy = 1.0;
  c.classes[1].max_queue_delay_ns = 20 * kMs;
  c.delay_interval_ns = 100 * kMs;
  LoadShedder s(c, 100);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(s.Admit(0, Criticality::kSheddable, 0), ShedCause::kAdmit);
  // Inside the first window: departures at 10 ms and 30 ms of delay; the estimate is still 0.
  s.OnDequeue(50 * kMs, 0, 30 * kMs);
  s.OnDequeue(60 * kMs, 0, 10 * kMs);
  EXPECT_EQ(s.recent_delay_ns(99 * kMs), 0);
  EXPECT_EQ(s.Admit(99 * kMs, Criticality::kSheddable, 0), ShedCause::kAdmit);
  // The window closed: its minimum, 10 ms, is the standing delay. Sheddable (5 ms) is shed,
  // default (20 ms) and critical are not.
  EXPECT_EQ(s.Admit(100 * kMs, Criticality::kSheddable, 0), ShedCause::kDelay);
  EXPECT_EQ(s.Admit(100 * kMs, Criticality::kDefault, 0), ShedCause::kAdmit);
  EXPECT_EQ(s.Admit(100 * kMs, Criticality::kCritical, 0), ShedCause::kAdmit);
  EXPECT_EQ(s.recent_delay_ns(150 * kMs), 10 * kMs);
  // A window with a short delay brings it down again.
  s.OnDequeue(120 * kMs, 0, 1 * kMs);
  EXPECT_EQ(s.Admit(199 * kMs, Criticality::kSheddable, 0), ShedCause::kDelay);
  EXPECT_EQ(s.Admit(200 * kMs, Criticality::kSheddable, 0), ShedCause::kAdmit);
  EXPECT_EQ(s.recent_delay_ns(200 * kMs), 1 * kMs);
}

TEST(LoadShedderTest, NoDepartureKeepsTheEstimateUnlessTheQueueIsEmpty) {
  SheddingConfig c = ThreeClasses();
  c.classes[2] = {1.0, 1.0, 5 * kMs};
  LoadShedder s(c, 100);
  ASSERT_EQ(s.Admit(0, Criticality::kSheddable, 0), ShedCause::kAdmit);
  ASSERT_EQ(s.Admit(0, Criticality::kSheddable, 0), ShedCause::kAdmit);
  s.OnDequeue(10 * kMs, 0, 50 * kMs);
  EXPECT_EQ(s.recent_delay_ns(100 * kMs), 50 * kMs);
  // A whole interval without a departure while one order waits: still 50 ms (not draining).
  EXPECT_EQ(s.recent_delay_ns(250 * kMs), 50 * kMs);
  s.OnDequeue(260 * kMs, 0, -1);  // withdrawn without a sample: the queue is now empty
  // The next window without a departure finds the queue empty: no standing delay.
  EXPECT_EQ(s.recent_delay_ns(400 * kMs), 0);
}

TEST(LoadShedderTest, HoldsEachTenantToItsWeightedShareWhenCongested) {
  SheddingConfig c;
  c.classes = {ShedClassConfig{0.0, 1.0, 0}, ShedClassConfig{1.0, 1.0, 0},
               ShedClassConfig{0.0, 1.0, 0}};
  c.fair_share_above = 0.5;
  c.tenants = {{"noisy", 1.0, 10.0}, {"a", 1.0, 1.0}, {"b", 2.0, 1.0}};
  LoadShedder s(c, 12);
  // Below half full, no fairness: the noisy tenant takes 6 places.
  for (int i = 0; i < 6; ++i) ASSERT_EQ(s.Admit(0, Criticality::kDefault, 0), ShedCause::kAdmit);
  // Congested now; noisy alone is active, its share is the whole queue: 12 x 1/1.
  EXPECT_EQ(s.Admit(0, Criticality::kDefault, 0), ShedCause::kAdmit);
  // Tenant a arrives: shares 12 x 1/2 = 6 each; noisy (7) is over its share.
  EXPECT_EQ(s.Admit(0, Criticality::kDefault, 1), ShedCause::kAdmit);
  EXPECT_EQ(s.Admit(0, Criticality::kDefault, 0), ShedCause::kFairness);
  // Tenant b (weight 2) arrives: shares 3, 3, 6.
  EXPECT_EQ(s.Admit(0, Criticality::kDefault, 2), ShedCause::kAdmit);
  EXPECT_EQ(s.Admit(0, Criticality::kDefault, 2), ShedCause::kAdmit);
  EXPECT_EQ(s.Admit(0, Criticality::kDefault, 1), ShedCause::kAdmit);
  EXPECT_EQ(s.Admit(0, Criticality::kDefault, 1), ShedCause::kAdmit);
  EXPECT_EQ(s.Admit(0, Criticality::kDefault, 1), ShedCause::kFairness);  // a holds 3 of 3
  EXPECT_EQ(s.queued(0), 7);
  EXPECT_EQ(s.queued(1), 3);
  EXPECT_EQ(s.queued(2), 2);
  // The noisy tenant drains below its share of 3 only after 5 of its orders left.
  for (int i = 0; i < 4; ++i) s.OnDequeue(1, 0, 0);
  EXPECT_EQ(s.Admit(1, Criticality::kDefault, 0), ShedCause::kFairness);
  s.OnDequeue(1, 0, 0);
  EXPECT_EQ(s.Admit(1, Criticality::kDefault, 0), ShedCause::kAdmit);
}

TEST(LoadShedderTest, TheLongestTenantMayNotGrowWhileCongested) {
  SheddingConfig c;
  c.fair_share_above = 0.0;  // always congested
  c.classes[1].max_occupancy = 1.0;
  c.tenants = {{"noisy", 1.0, 1.0}, {"a", 1.0, 1.0}, {"b", 2.0, 1.0}};
  LoadShedder s(c, 100);  // shares of 25 / 25 / 50: far away
  // Alone, a tenant grows freely (up to its share).
  for (int i = 0; i < 3; ++i) ASSERT_EQ(s.Admit(0, Criticality::kDefault, 0), ShedCause::kAdmit);
  ASSERT_EQ(s.Admit(0, Criticality::kDefault, 1), ShedCause::kAdmit);
  // noisy holds 3, a holds 1: noisy may not grow; a may.
  EXPECT_EQ(s.Admit(0, Criticality::kDefault, 0), ShedCause::kFairness);
  EXPECT_EQ(s.Admit(0, Criticality::kDefault, 1), ShedCause::kAdmit);
  EXPECT_EQ(s.Admit(0, Criticality::kDefault, 1), ShedCause::kAdmit);
  // 3 and 3: equal is not longer, either may take one more.
  EXPECT_EQ(s.Admit(0, Criticality::kDefault, 0), ShedCause::kAdmit);
  EXPECT_EQ(s.Admit(0, Criticality::kDefault, 0), ShedCause::kFairness);
  // Weighted: b (weight 2) holding 8 counts as 4, less than noisy's 4? equal: b may grow.
  for (int i = 0; i < 8; ++i) ASSERT_EQ(s.Admit(0, Criticality::kDefault, 2), ShedCause::kAdmit);
  EXPECT_EQ(s.Admit(0, Criticality::kDefault, 2), ShedCause::kAdmit);     // 8 / 2 = 4 <= 4
  EXPECT_EQ(s.Admit(0, Criticality::kDefault, 2), ShedCause::kFairness);  // 9 / 2 > 4
  EXPECT_EQ(s.queued(), 4 + 3 + 9);
}

TEST(LoadShedderTest, EveryTenantMayQueueAtLeastOneOrder) {
  SheddingConfig c;
  c.fair_share_above = 0.0;
  c.classes[1].max_occupancy = 1.0;
  c.tenants = {{"big", 1000.0, 1.0}, {"small", 1.0, 1.0}};
  LoadShedder s(c, 4);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(s.Admit(0, Criticality::kDefault, 0), ShedCause::kAdmit);
  // small's share is 4 / 1001 of an order: it still gets one.
  EXPECT_EQ(s.Admit(0, Criticality::kDefault, 1), ShedCause::kAdmit);
  EXPECT_EQ(s.Admit(0, Criticality::kDefault, 1), ShedCause::kFairness);
}

TEST(LoadShedderTest, DrawsOriginsByTraffic) {
  SheddingConfig c;
  c.classes = {ShedClassConfig{1.0, 1.0, 0}, ShedClassConfig{0.0, 0.8, 0},
               ShedClassConfig{3.0, 0.5, 0}};
  c.tenants = {{"x", 1.0, 0.0}, {"y", 1.0, 1.0}};
  RandomStream rng(7);
  std::array<int, 3> by_class{};
  for (int i = 0; i < 40'000; ++i) {
    const OrderOrigin o = DrawOrigin(c, rng);
    ++by_class[static_cast<size_t>(o.criticality)];
    ASSERT_EQ(o.tenant, 1);  // x sends nothing
  }
  EXPECT_EQ(by_class[1], 0);
  EXPECT_NEAR(by_class[0] / 40'000.0, 0.25, 0.01);
  EXPECT_NEAR(by_class[2] / 40'000.0, 0.75, 0.01);
}

TEST(LoadShedderTest, ValidationNamesTheDottedPath) {
  SheddingConfig c;
  EXPECT_TRUE(Validate(c).ok());
  c.classes[2].max_occupancy = 0.0;
  EXPECT_EQ(Validate(c).message(),
            "intake.shedding.sheddable.max_occupancy must be a finite number in (0, 1], got 0");
  c = SheddingConfig();
  c.tenants = {{"a", 1.0, 1.0}, {"b", -1.0, 1.0}};
  EXPECT_EQ(Validate(c).message(),
            "intake.shedding.tenants[b].weight must be a finite number in (0, 1e+09], got -1");
  c.tenants = {{"a", 1.0, 1.0}, {"a", 1.0, 1.0}};
  EXPECT_NE(Validate(c).message().find("tenants[1].name must be unique"), std::string::npos);
  c = SheddingConfig();
  c.classes[1].traffic = 0.0;
  EXPECT_FALSE(Validate(c).ok());
  c = SheddingConfig();
  c.tenants.assign(kMaxTenants + 1, TenantConfig{"t", 1.0, 1.0});
  EXPECT_NE(Validate(c).message().find("at most 64"), std::string::npos);
}

}  // namespace
}  // namespace rlab::load_shedder_test
