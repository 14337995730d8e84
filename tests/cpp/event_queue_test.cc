#include "rlab/sim/event_queue.h"

#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace rlab::event_queue_test {
namespace {

// The events a queue hands out, in order, as (time, sequence, payload).
struct Popped {
  int64_t t_ns;
  uint64_t seq;
  uint32_t a;
  bool operator==(const Popped&) const = default;
};

// The lane (one event outside the heap) must not change the order of events: a run that puts
// every "arrival" in the lane pops exactly what a run with the heap alone pops, ties at the same
// instant included (they go by sequence number).
TEST(SimEventQueueTest, LaneKeepsTheHeapsOrder) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 gen(seed);
    std::uniform_int_distribution<int64_t> gap(0, 3);  // small gaps: many ties
    EventQueue heap_only, with_lane;
    std::vector<Popped> a, b;
    auto schedule = [&](int64_t t, bool arrival, uint32_t payload) {
      heap_only.Push(t, 0, payload);
      if (arrival) {
        with_lane.PushLane(t, 0, payload);
      } else {
        with_lane.Push(t, 0, payload);
      }
    };
    schedule(gap(gen), true, 0);
    uint32_t next_payload = 1;
    while (!heap_only.empty()) {
      ASSERT_FALSE(with_lane.empty());
      ASSERT_EQ(heap_only.size(), with_lane.size());
      ASSERT_EQ(heap_only.Top().seq, with_lane.Top().seq);
      const SimEvent x = heap_only.Pop();
      const SimEvent y = with_lane.Pop();
      a.push_back({x.t_ns, x.seq, x.a});
      b.push_back({y.t_ns, y.seq, y.a});
      // Even payloads are arrivals: each schedules the next arrival (the lane is free again)
      // and some work; odd ones sometimes schedule more work.
      const bool arrival = x.a % 2 == 0;
      if (arrival && next_payload < 4000) {
        ASSERT_TRUE(with_lane.lane_free());
        for (int k = static_cast<int>(gen() % 3); k > 0; --k) {
          schedule(x.t_ns + gap(gen), false, 2 * next_payload++ + 1);
        }
        schedule(x.t_ns + gap(gen), true, 2 * next_payload++);
      } else if (!arrival && gen() % 4 == 0) {
        schedule(x.t_ns + gap(gen), false, 2 * next_payload++ + 1);
      }
    }
    EXPECT_TRUE(with_lane.empty());
    EXPECT_EQ(a, b) << "seed " << seed;
    EXPECT_GE(a.size(), 4000u);
  }
}

TEST(SimEventQueueTest, LaneAloneAndHeapAlone) {
  EventQueue q;
  EXPECT_TRUE(q.empty());
  q.PushLane(5, 1, 7);
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.Top().a, 7u);
  EXPECT_EQ(q.Pop().t_ns, 5);
  EXPECT_TRUE(q.empty());
  EXPECT_TRUE(q.lane_free());
  q.Push(3, 1, 8);
  q.PushLane(3, 1, 9);  // same instant, scheduled later: after the heap's event
  EXPECT_EQ(q.Pop().a, 8u);
  EXPECT_EQ(q.Pop().a, 9u);
  EXPECT_TRUE(q.empty());
}

}  // namespace
}  // namespace rlab::event_queue_test
