#include "rlab/model/capacity_server.h"

#include <cstdint>
#include <optional>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace rlab::capacity_server_test {
namespace {

constexpr int64_t kMs = 1'000'000;
using Kind = QueueDisciplineConfig::Kind;
using Server = CapacityServer<int>;

CapacityConfig Cap(int max_in_service, int max_queue = -1, bool drop_abandoned = false,
                   Kind kind = Kind::kFifo) {
  CapacityConfig c;
  c.max_in_service = max_in_service;
  c.max_queue = max_queue;
  c.drop_abandoned = drop_abandoned;
  c.discipline.kind = kind;
  return c;
}

// One call at a time, a CoDel line with TARGET and INTERVAL in ms.
CapacityConfig Codel(int target_ms, int interval_ms, bool drop_abandoned = false) {
  CapacityConfig c = Cap(1, -1, drop_abandoned, Kind::kCodel);
  c.discipline.codel_target_ns = target_ms * kMs;
  c.discipline.codel_interval_ns = interval_ms * kMs;
  return c;
}

struct Step {
  int call;
  LineVerdict verdict;
};

// Frees one slot at `now_ns` and hands it out; `abandoned` are the calls nobody waits for.
std::vector<Step> ReleaseAt(Server& s, int64_t now_ns, const std::set<int>& abandoned = {}) {
  s.Release();
  std::vector<Step> steps;
  while (const std::optional<int> c = s.Take(now_ns)) {
    steps.push_back({*c, s.Judge(now_ns, !abandoned.contains(*c))});
  }
  return steps;
}

TEST(CapacityServerTest, AdmitsWhileSlotsAreFreeThenQueuesThenRejectsAtMaxQueue) {
  Server s(Cap(2, /*max_queue=*/2));
  EXPECT_EQ(s.Arrive(0, 0), CapacityAdmission::kServe);
  EXPECT_EQ(s.Arrive(0, 1), CapacityAdmission::kServe);
  EXPECT_EQ(s.in_service(), 2);
  EXPECT_EQ(s.Arrive(1, 2), CapacityAdmission::kQueued);
  EXPECT_EQ(s.Arrive(2, 3), CapacityAdmission::kQueued);
  EXPECT_EQ(s.Arrive(3, 4), CapacityAdmission::kRejected);  // the line holds 2
  EXPECT_EQ(s.queued(), 2u);
  EXPECT_EQ(s.counts().rejected, 1);
  EXPECT_EQ(s.counts().max_load, 4);  // 2 in service + 2 waiting
}

TEST(CapacityServerTest, MaxQueueZeroNeverQueuesAndMinusOneIsUnbounded) {
  Server none(Cap(1, /*max_queue=*/0));
  EXPECT_EQ(none.Arrive(0, 0), CapacityAdmission::kServe);
  EXPECT_EQ(none.Arrive(0, 1), CapacityAdmission::kRejected);
  Server unbounded(Cap(1, /*max_queue=*/-1));
  EXPECT_EQ(unbounded.Arrive(0, 0), CapacityAdmission::kServe);
  for (int i = 1; i <= 1000; ++i) ASSERT_EQ(unbounded.Arrive(i, i), CapacityAdmission::kQueued);
  EXPECT_EQ(unbounded.queued(), 1000u);
  EXPECT_EQ(unbounded.counts().rejected, 0);
}

TEST(CapacityServerTest, FifoServesTheOldestCallOnePerFreedSlot) {
  Server s(Cap(1));
  s.Arrive(0, 0);
  for (int i = 1; i <= 3; ++i) s.Arrive(i * kMs, i);
  EXPECT_EQ(s.Take(5 * kMs), std::nullopt);  // no slot free
  for (int expected = 1; expected <= 3; ++expected) {
    const std::vector<Step> steps = ReleaseAt(s, 10 * kMs * expected);
    ASSERT_EQ(steps.size(), 1u);
    EXPECT_EQ(steps[0].call, expected);
    EXPECT_EQ(steps[0].verdict, LineVerdict::kServe);
    EXPECT_EQ(s.in_service(), 1);
  }
  EXPECT_TRUE(ReleaseAt(s, 100 * kMs).empty());
  EXPECT_EQ(s.in_service(), 0);
}

TEST(CapacityServerTest, LifoServesTheNewestCall) {
  Server s(Cap(1, -1, false, Kind::kLifo));
  s.Arrive(0, 0);
  for (int i = 1; i <= 3; ++i) s.Arrive(i * kMs, i);
  std::vector<int> order;
  for (int k = 0; k < 3; ++k) order.push_back(ReleaseAt(s, (10 + k) * kMs).at(0).call);
  EXPECT_EQ(order, (std::vector<int>{3, 2, 1}));
}

TEST(CapacityServerTest, AdaptiveLifoIsFifoUntilTheOldestWaitedTheThreshold) {
  CapacityConfig c = Cap(1, -1, false, Kind::kAdaptiveLifo);
  c.discipline.lifo_threshold_ns = 10 * kMs;
  Server s(c);
  s.Arrive(0, 0);
  for (int i = 1; i <= 3; ++i) s.Arrive(i * kMs, i);
  // At 5 ms the oldest (call 1, since 1 ms) waited 4 ms: FIFO.
  EXPECT_EQ(ReleaseAt(s, 5 * kMs).at(0).call, 1);
  // At 20 ms the oldest (call 2, since 2 ms) waited 18 ms: a queue is forming, LIFO.
  EXPECT_EQ(ReleaseAt(s, 20 * kMs).at(0).call, 3);
  EXPECT_EQ(ReleaseAt(s, 21 * kMs).at(0).call, 2);
}

TEST(CapacityServerTest, CodelDropsCallsWhoseSojournStayedAboveTargetForAnInterval) {
  Server s(Codel(5, 100));
  s.Arrive(0, 0);
  for (int i = 1; i <= 400; ++i) s.Arrive(i * kMs, i);  // a standing line, one call per ms
  int served = 0, dropped = 0;
  int64_t now = 0, first_drop_ns = -1;
  for (int k = 0; k < 40 && s.queued() > 0; ++k) {
    now += 10 * kMs;  // a service takes 10 ms: the line only grows older
    for (const Step& st : ReleaseAt(s, now)) {
      if (st.verdict == LineVerdict::kServe) ++served;
      if (st.verdict == LineVerdict::kDrop && dropped++ == 0) first_drop_ns = now;
    }
  }
  // Nothing dropped for the first interval above target (from 10 ms on), then CoDel drops.
  EXPECT_GT(dropped, 1);
  EXPECT_GE(first_drop_ns, 110 * kMs);
  EXPECT_EQ(served, 40);  // every freed slot still served one call
  EXPECT_EQ(s.counts().dropped_by_queue, dropped);
  EXPECT_EQ(s.discipline()->drops_total(), dropped);
  EXPECT_EQ(s.in_service(), 1);
}

TEST(CapacityServerTest, CodelDropsOnceAboveTargetForAnIntervalThenServesTheNextCall) {
  Server s(Codel(1, 10));
  s.Arrive(0, 0);
  for (int i = 1; i <= 50; ++i) s.Arrive(0, i);
  // The first freed slot after an interval above target: CoDel starts dropping.
  s.Release();
  ASSERT_EQ(s.Take(20 * kMs), 1);
  EXPECT_EQ(s.Judge(20 * kMs, true), LineVerdict::kServe);  // first above target: noted only
  s.Release();
  ASSERT_EQ(s.Take(40 * kMs), 2);
  EXPECT_EQ(s.Judge(40 * kMs, true), LineVerdict::kDrop);
  ASSERT_EQ(s.Take(40 * kMs), 3);  // the slot is still free: the next call is taken
  EXPECT_EQ(s.Judge(40 * kMs, true), LineVerdict::kServe);
  EXPECT_EQ(s.in_service(), 1);
}

TEST(CapacityServerTest, AnAbandonedCallIsServedForNobodyAndCountedWasted) {
  Server s(Cap(1));
  s.Arrive(0, 0);
  s.Arrive(1, 1);
  s.Arrive(2, 2);
  const std::vector<Step> steps = ReleaseAt(s, 10, /*abandoned=*/{1});
  ASSERT_EQ(steps.size(), 1u);  // the slot went to the abandoned call: 2 still waits
  EXPECT_EQ(steps[0].call, 1);
  EXPECT_EQ(steps[0].verdict, LineVerdict::kServeWasted);
  EXPECT_EQ(s.counts().wasted, 1);
  EXPECT_EQ(s.in_service(), 1);
  EXPECT_EQ(s.queued(), 1u);
}

TEST(CapacityServerTest, DropAbandonedSkipsAbandonedCallsUnserved) {
  Server s(Cap(1, -1, /*drop_abandoned=*/true));
  s.Arrive(0, 0);
  for (int i = 1; i <= 3; ++i) s.Arrive(i, i);
  const std::vector<Step> steps = ReleaseAt(s, 10, /*abandoned=*/{1, 2});
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0].verdict, LineVerdict::kDiscard);
  EXPECT_EQ(steps[1].verdict, LineVerdict::kDiscard);
  EXPECT_EQ(steps[2].call, 3);
  EXPECT_EQ(steps[2].verdict, LineVerdict::kServe);
  EXPECT_EQ(s.counts().discarded, 2);
  EXPECT_EQ(s.counts().wasted, 0);
  // Nobody left: the freed slot stays free.
  EXPECT_TRUE(ReleaseAt(s, 20, {}).empty());
  EXPECT_EQ(s.in_service(), 0);
}

// Rule 1: the server learns that a caller gave up only when the call's turn comes; until then
// the call keeps its place in the line and counts against max_queue.
TEST(CapacityServerTest, Rule1AnAbandonedCallKeepsItsPlaceUntilItsTurn) {
  Server s(Cap(1, /*max_queue=*/2, /*drop_abandoned=*/true));
  s.Arrive(0, 0);
  s.Arrive(1, 1);
  s.Arrive(2, 2);
  // Both waiting callers gave up (the server is not told): the line is still full.
  EXPECT_EQ(s.Arrive(3, 3), CapacityAdmission::kRejected);
  const std::vector<Step> steps = ReleaseAt(s, 10, /*abandoned=*/{1, 2});
  EXPECT_EQ(steps.size(), 2u);
  EXPECT_EQ(s.queued(), 0u);
  EXPECT_EQ(s.Arrive(11, 4), CapacityAdmission::kServe);
}

// Rule 2: drop_abandoned comes before the discipline: CoDel never sees a call the server skips.
TEST(CapacityServerTest, Rule2DropAbandonedComesBeforeTheCodelVerdict) {
  Server s(Codel(1, 10, /*drop_abandoned=*/true));
  s.Arrive(0, 0);
  std::set<int> abandoned;
  for (int i = 1; i <= 20; ++i) {
    s.Arrive(0, i);
    abandoned.insert(i);
  }
  // Long sojourns, but every call was abandoned: all skipped, none shown to CoDel.
  const std::vector<Step> steps = ReleaseAt(s, 500 * kMs, abandoned);
  ASSERT_EQ(steps.size(), 20u);
  for (const Step& st : steps) EXPECT_EQ(st.verdict, LineVerdict::kDiscard);
  EXPECT_EQ(s.counts().dropped_by_queue, 0);
  EXPECT_EQ(s.discipline()->drops_total(), 0);
  EXPECT_FALSE(s.discipline()->dropping());
  // Without drop_abandoned the same calls reach CoDel, which drops some of them.
  Server keep(Cap(1, -1, false, Kind::kCodel));
  keep.Arrive(0, 0);
  for (int i = 1; i <= 20; ++i) keep.Arrive(0, i);
  int64_t now = 0;
  for (int k = 0; k < 20 && keep.queued() > 0; ++k) ReleaseAt(keep, now += 200 * kMs, abandoned);
  EXPECT_GT(keep.counts().dropped_by_queue, 0);
  EXPECT_EQ(keep.counts().wasted + keep.counts().dropped_by_queue, 20);
}

// Rule 3: a freed slot goes to the line at the instant it frees; an arrival never takes it
// while calls wait.
TEST(CapacityServerTest, Rule3AFreedSlotGoesToTheLineNotToAnArrival) {
  Server s(Cap(1));
  s.Arrive(0, 0);
  s.Arrive(1, 1);
  s.Release();  // the slot is free, call 1 not handed it yet
  EXPECT_EQ(s.Arrive(5, 2), CapacityAdmission::kQueued);
  EXPECT_EQ(s.Take(5), 1);  // the oldest call gets it
  EXPECT_EQ(s.Judge(5, true), LineVerdict::kServe);
  EXPECT_EQ(s.Take(5), std::nullopt);  // one freed slot, one serve
  EXPECT_EQ(s.queued(), 1u);
}

TEST(CapacityServerTest, NewLimitsApplyToTheNextDecisions) {
  Server s(Cap(1, /*max_queue=*/1));
  s.Arrive(0, 0);
  s.Arrive(0, 1);
  EXPECT_EQ(s.Arrive(0, 2), CapacityAdmission::kRejected);
  s.SetLimits(Cap(3, /*max_queue=*/5));
  // The raised limit frees two slots: the waiting call is served at once, then arrivals.
  ASSERT_EQ(s.Take(1), 1);
  EXPECT_EQ(s.Judge(1, true), LineVerdict::kServe);
  EXPECT_EQ(s.Arrive(2, 3), CapacityAdmission::kServe);
  EXPECT_EQ(s.in_service(), 3);
  // Lowered below the calls in service: they finish, no new call starts until below it.
  s.SetLimits(Cap(1, /*max_queue=*/5));
  EXPECT_EQ(s.Arrive(3, 4), CapacityAdmission::kQueued);
  EXPECT_TRUE(ReleaseAt(s, 4).empty());
  EXPECT_TRUE(ReleaseAt(s, 5).empty());
  EXPECT_EQ(ReleaseAt(s, 6).at(0).call, 4);
}

TEST(CapacityServerTest, LoadIsTheCountInServiceAfterAServe) {
  Server s(Cap(3));
  EXPECT_EQ(s.Arrive(0, 0), CapacityAdmission::kServe);
  EXPECT_EQ(s.in_service(), 1);  // the first call's service is drawn with load 1
  s.Arrive(0, 1);
  s.Arrive(0, 2);
  s.Arrive(0, 3);
  EXPECT_EQ(ReleaseAt(s, 1).at(0).call, 3);
  EXPECT_EQ(s.in_service(), 3);  // call 3's service is drawn with load 3
  EXPECT_EQ(s.counts().max_load, 4);
}

TEST(CapacityServerTest, TotalsAddUpOverServers) {
  DependencyTotals t;
  t.max_load = 3;
  AddCapacityTotals({.rejected = 1, .wasted = 2, .dropped_by_queue = 3, .max_load = 7}, t);
  AddCapacityTotals({.rejected = 10, .wasted = 20, .dropped_by_queue = 30, .max_load = 5}, t);
  EXPECT_EQ(t.rejected_by_capacity, 11);
  EXPECT_EQ(t.wasted_service, 22);
  EXPECT_EQ(t.dropped_by_queue, 33);
  EXPECT_EQ(t.max_load, 7);
}

TEST(CapacityServerDeathTest, TakingTwiceWithoutAVerdictIsAnEngineBug) {
  if (!kInvariantsOn) GTEST_SKIP() << "invariants are off in this build";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Server s(Cap(1));
  s.Arrive(0, 0);
  s.Arrive(0, 1);
  s.Arrive(0, 2);
  s.Release();
  ASSERT_EQ(s.Take(1), 1);
  EXPECT_DEATH(s.Take(1), "Take\\(\\) before Judge\\(\\)");
}

}  // namespace
}  // namespace rlab::capacity_server_test
