// The live engine's parking lot for intake rate-limit waits (rlab/live/rate_wait_queue.h), and
// the engine's use of it (intake.rate_limit.max_wait > 0): the submitter never blocks, every
// order ends in exactly one terminal state through either shutdown mode. Real threads, no timed
// assertions: due times are either already past or far in the future.

#include "rlab/live/rate_wait_queue.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/core/mutex.h"
#include "rlab/live/live_engine.h"
#include "rlab/model/scenario.h"

namespace rlab::rate_wait_queue_test {
namespace {

using ::testing::ElementsAre;
using SteadyTime = std::chrono::steady_clock::time_point;

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kHour = 3600 * kNsPerSecond;

// Items of one queue, as released (in release order).
struct Released {
  Mutex mu;
  std::vector<int> items ABSL_GUARDED_BY(mu);
  std::vector<int> Take() {
    MutexLock lock(&mu);
    return items;
  }
};

std::unique_ptr<RateWaitQueue<int>> MakeQueue(Released& out, SteadyTime t0) {
  return std::make_unique<RateWaitQueue<int>>(
      [t0](int64_t t_ns) { return t0 + std::chrono::nanoseconds(t_ns); },
      [&out](int item) {
        MutexLock lock(&out.mu);
        out.items.push_back(item);
      });
}

SteadyTime Forever() { return std::chrono::steady_clock::now() + std::chrono::hours(1); }

TEST(RateWaitQueueTest, ReleasesByDueTimeThenInParkingOrder) {
  Released out;
  auto q = MakeQueue(out, std::chrono::steady_clock::now());
  // All due already (t0 is in the past by the time the thread runs): parked before Start, so
  // the thread finds them all in the heap and must take them by due time, ties first parked.
  ASSERT_TRUE(q->Park(3, 3));
  ASSERT_TRUE(q->Park(1, 1));
  ASSERT_TRUE(q->Park(20, 2));
  ASSERT_TRUE(q->Park(21, 2));
  ASSERT_TRUE(q->Park(0, 0));
  EXPECT_EQ(q->size(), 5);
  q->Start();
  EXPECT_TRUE(q->WaitEmpty(Forever(), false));
  EXPECT_THAT(out.Take(), ElementsAre(0, 1, 20, 21, 3));
  EXPECT_EQ(q->size(), 0);
  EXPECT_EQ(q->max_size(), 5);
  EXPECT_TRUE(q->Stop().empty());
}

TEST(RateWaitQueueTest, StopHandsBackWhatIsStillParkedAndRefusesLaterParks) {
  Released out;
  auto q = MakeQueue(out, std::chrono::steady_clock::now());
  q->Start();
  ASSERT_TRUE(q->Park(9, 0));  // due now: released
  EXPECT_TRUE(q->WaitEmpty(Forever(), false));
  ASSERT_TRUE(q->Park(7, 2 * kHour));
  ASSERT_TRUE(q->Park(5, kHour));
  // The far ones are never released: the wait runs out (the deadline is already past).
  EXPECT_FALSE(q->WaitEmpty(std::chrono::steady_clock::now(), false));
  EXPECT_THAT(q->Stop(), ElementsAre(5, 7));  // earliest first
  EXPECT_THAT(out.Take(), ElementsAre(9));
  EXPECT_FALSE(q->Park(11, 0));
  EXPECT_TRUE(q->Stop().empty());  // idempotent
  EXPECT_TRUE(q->WaitEmpty(Forever(), true)) << "stopped and empty: no wait";
}

TEST(RateWaitQueueTest, WaitEmptyReturnsAtOnceWithoutAThread) {
  Released out;
  auto q = MakeQueue(out, std::chrono::steady_clock::now());
  ASSERT_TRUE(q->Park(1, 0));
  EXPECT_FALSE(q->WaitEmpty(Forever(), true)) << "nothing would release it";
  EXPECT_THAT(q->Stop(), ElementsAre(1));
}

TEST(RateWaitQueueTest, ManyParkersEachItemReleasedOnce) {
  Released out;
  auto q = MakeQueue(out, std::chrono::steady_clock::now());
  q->Start();
  constexpr int kThreads = 4;
  constexpr int kEach = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&q, t] {
      // Due times spread over the first few milliseconds: some past, some ahead of the thread.
      for (int i = 0; i < kEach; ++i) ASSERT_TRUE(q->Park(t * kEach + i, (i % 5) * kMs));
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_TRUE(q->WaitEmpty(Forever(), false));
  std::vector<int> got = out.Take();
  std::sort(got.begin(), got.end());
  ASSERT_EQ(got.size(), static_cast<size_t>(kThreads * kEach));
  for (int i = 0; i < kThreads * kEach; ++i) EXPECT_EQ(got[i], i);
  EXPECT_TRUE(q->Stop().empty());
}

// --- in the live engine ------------------------------------------------------------------------

LatencyDist Const(double v_s) {
  LatencyDist d;
  d.kind = LatencyDist::Kind::kConstant;
  d.a = v_s;
  return d;
}

// One permit every `period_s` (burst 1), waits up to a minute, ample workers and queue.
ScenarioConfig RateWaitScenario(double period_s) {
  ScenarioConfig sc;
  sc.arrivals.kind = ArrivalConfig::Kind::kPoisson;
  sc.arrivals.rate = 100;
  sc.workers = 4;
  sc.queue_capacity = 64;
  sc.duration_ns = 100 * kMs;
  sc.seed = 1;
  RateLimitConfig r;
  r.rate = 1.0 / period_s;
  r.max_wait_ns = 60 * kNsPerSecond;
  sc.intake.rate_limit = r;
  DependencyConfig dep;
  dep.name = "payment";
  dep.faults.latency = Const(0.001);
  sc.dependencies.push_back(dep);
  return sc;
}

std::unique_ptr<LiveEngine> Started(const ScenarioConfig& sc) {
  LiveOptions o;
  o.sample_every_ns = 10 * kMs;
  auto e = LiveEngine::Create(sc, o);
  EXPECT_TRUE(e.ok()) << e.status();
  if (!e.ok()) return nullptr;
  EXPECT_TRUE((*e)->Start().ok());
  return std::move(*e);
}

void ExpectEveryOrderTerminal(const LiveEngine& e, const ShutdownReport& rep) {
  EXPECT_EQ(rep.internal_error, "");
  auto res = e.result();
  ASSERT_TRUE(res.ok());
  const SimResult& r = **res;
  EXPECT_EQ(r.in_flight, 0);
  for (int64_t id = 0; id < r.arrived; ++id) {
    auto v = e.View(id);
    ASSERT_TRUE(v.ok());
    EXPECT_TRUE(IsTerminal(v->status)) << "order " << id << " is " << OrderStatusName(v->status);
  }
}

TEST(LiveRateWaitTest, ParkedOrdersArePendingAndTheImmediateShutdownCancelsThem) {
  // A permit every 10 s: after the first order, each waits 10 s more (far past any stall).
  auto e = Started(RateWaitScenario(10.0));
  ASSERT_NE(e, nullptr);
  std::vector<int64_t> ids;
  for (int i = 0; i < 4; ++i) {
    auto id = e->Submit();  // returns at once: nothing here waits 10 s
    ASSERT_TRUE(id.ok());
    ids.push_back(*id);
  }
  ASSERT_TRUE(e->Wait(ids[0], -1));
  for (int i = 1; i < 4; ++i) {
    auto v = e->View(ids[i]);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->status, OrderStatus::kPending) << i;
  }
  EXPECT_EQ(e->in_system(), 3);
  const ShutdownReport rep = e->Shutdown(0);
  EXPECT_TRUE(rep.timed_out);
  EXPECT_EQ(rep.cancelled, 3);
  ExpectEveryOrderTerminal(*e, rep);
  const SimResult& r = **e->result();
  EXPECT_EQ(r.by_status[static_cast<size_t>(OrderStatus::kCancelled)], 3);
  EXPECT_EQ(r.by_reason[static_cast<size_t>(FailReason::kShutdown)], 3);
  EXPECT_EQ(r.by_status[static_cast<size_t>(OrderStatus::kCompleted)], 1);
}

TEST(LiveRateWaitTest, GracefulShutdownServesParkedOrdersDueWithinTheGrace) {
  // A permit every 20 ms, waits up to a minute: 10 orders, the last due 180 ms after the first.
  auto e = Started(RateWaitScenario(0.02));
  ASSERT_NE(e, nullptr);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(e->Submit().ok());
  const ShutdownReport rep = e->Shutdown(-1);  // no limit: the waits bound it
  EXPECT_FALSE(rep.timed_out);
  EXPECT_EQ(rep.cancelled, 0);
  ExpectEveryOrderTerminal(*e, rep);
  const SimResult& r = **e->result();
  EXPECT_EQ(r.by_status[static_cast<size_t>(OrderStatus::kCompleted)], 10);
}

TEST(LiveRateWaitTest, ConcurrentSubmittersAndAShutdownLeaveNoOrderBehind) {
  // Many threads submit against a gate of a permit every millisecond with up to 50 ms of wait
  // (some orders go at once, many wait, the rest are refused) while the engine shuts down with
  // a short grace: whatever interleaving, every order ends once (TSan: the hand-offs between
  // submitters, the parking thread, workers and Shutdown).
  ScenarioConfig sc = RateWaitScenario(0.001);
  sc.intake.rate_limit->max_wait_ns = 50 * kMs;
  sc.queue_capacity = 8;
  sc.workers = 2;
  LimitConfig limit;
  limit.kind = LimitConfig::Kind::kStatic;
  limit.initial = 6;
  sc.intake.limit = limit;
  for (int64_t grace_ms : {0, 5, 1000}) {
    auto e = Started(sc);
    ASSERT_NE(e, nullptr);
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
      threads.emplace_back([&e, &go] {
        while (!go.load()) std::this_thread::yield();
        for (int i = 0; i < 100; ++i) {
          if (!e->Submit().ok()) return;  // shutting down
        }
      });
    }
    go.store(true);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const ShutdownReport rep = e->Shutdown(grace_ms * kMs);
    for (std::thread& t : threads) t.join();
    ExpectEveryOrderTerminal(*e, rep);
    const SimResult& r = **e->result();
    int64_t terminal = 0;
    for (int s = static_cast<int>(OrderStatus::kCompleted); s < kNumOrderStatuses; ++s) {
      terminal += r.by_status[s];
    }
    EXPECT_EQ(terminal, r.arrived) << "grace " << grace_ms << " ms";
  }
}

}  // namespace
}  // namespace rlab::rate_wait_queue_test
