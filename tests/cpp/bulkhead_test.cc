#include "rlab/policy/bulkhead.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/core/mutex.h"
#include "rlab/core/rng.h"
#include "rlab/live/blocking_bulkhead.h"

namespace rlab::bulkhead_test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kMs = 1'000'000;

BulkheadConfig Config(int64_t max_concurrent, int64_t max_waiting, int64_t max_wait_ns = -1) {
  return BulkheadConfig{max_concurrent, max_waiting, max_wait_ns};
}

// Polls `pred` until it holds or `timeout` passes (waiters reach the queue asynchronously).
template <typename Pred>
bool Eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pred();
}

TEST(BulkheadTest, AdmitsWaitsThenRejects) {
  Bulkhead b(Config(2, 1));
  EXPECT_EQ(b.TryAcquire(), BulkheadDecision::kAdmitted);
  EXPECT_EQ(b.TryAcquire(), BulkheadDecision::kAdmitted);
  EXPECT_EQ(b.TryAcquire(), BulkheadDecision::kMustWait);
  EXPECT_EQ(b.TryAcquire(), BulkheadDecision::kRejected);
  BulkheadStats s = b.Stats();
  EXPECT_EQ(s.active, 2);
  EXPECT_EQ(s.waiting, 1);
  EXPECT_EQ(s.admitted, 2);
  EXPECT_EQ(s.rejected, 1);
  // The release goes to the waiter: active stays at 2.
  EXPECT_EQ(b.Release(), BulkheadRelease::kHandedOff);
  s = b.Stats();
  EXPECT_EQ(s.active, 2);
  EXPECT_EQ(s.waiting, 0);
  EXPECT_EQ(s.admitted, 3);
  EXPECT_EQ(b.Release(), BulkheadRelease::kFreed);
  EXPECT_EQ(b.Release(), BulkheadRelease::kFreed);
  EXPECT_EQ(b.Release(), BulkheadRelease::kNotHeld);
  s = b.Stats();
  EXPECT_EQ(s.active, 0);
  EXPECT_EQ(s.admitted, 3);
}

TEST(BulkheadTest, NoWaitingRoomRejectsAtOnce) {
  Bulkhead b(Config(1, 0));
  EXPECT_EQ(b.TryAcquire(), BulkheadDecision::kAdmitted);
  EXPECT_EQ(b.TryAcquire(), BulkheadDecision::kRejected);
  EXPECT_EQ(b.Release(), BulkheadRelease::kFreed);
  EXPECT_EQ(b.TryAcquire(), BulkheadDecision::kAdmitted);
}

TEST(BulkheadTest, CancelWaitCountsTimeoutsAndAbandons) {
  Bulkhead b(Config(1, 2));
  EXPECT_FALSE(b.CancelWait()) << "nobody is waiting";
  EXPECT_EQ(b.TryAcquire(), BulkheadDecision::kAdmitted);
  EXPECT_EQ(b.TryAcquire(), BulkheadDecision::kMustWait);
  EXPECT_EQ(b.TryAcquire(), BulkheadDecision::kMustWait);
  EXPECT_TRUE(b.CancelWait(/*timed_out=*/true));
  EXPECT_TRUE(b.CancelWait(/*timed_out=*/false));
  const BulkheadStats s = b.Stats();
  EXPECT_EQ(s.waiting, 0);
  EXPECT_EQ(s.timed_out, 1);
  EXPECT_EQ(s.abandoned, 1);
  EXPECT_EQ(b.Release(), BulkheadRelease::kFreed) << "the waiters left: nobody to hand off to";
}

TEST(BulkheadTest, Names) {
  EXPECT_EQ(BulkheadDecisionName(BulkheadDecision::kMustWait), "must_wait");
  EXPECT_EQ(BulkheadReleaseName(BulkheadRelease::kHandedOff), "handed_off");
  EXPECT_EQ(AcquireResultName(AcquireResult::kRejectedTimeout), "rejected_timeout");
}

TEST(BulkheadTest, ValidationNamesTheParameter) {
  EXPECT_TRUE(Validate(Config(1, 0)).ok());
  EXPECT_TRUE(Validate(Config(1, 0, 0)).ok()) << "max_wait 0: give up at once";
  EXPECT_THAT(Validate(Config(0, 0)).message(),
              HasSubstr("max_concurrent must be an integer in [1, 1000000], got 0"));
  EXPECT_THAT(Validate(Config(1, -1)).message(), HasSubstr("max_waiting must be"));
  EXPECT_THAT(Validate(Config(1, 1, int64_t{2'000'000} * kNsPerSecond)).message(),
              HasSubstr("max_wait must be"));
  EXPECT_FALSE(Bulkhead::Create(Config(0, 0)).ok());
  EXPECT_FALSE(BlockingBulkhead::Create(Config(0, 0)).ok());
}

TEST(BlockingBulkheadTest, RejectsAtOnceWhenFull) {
  BlockingBulkhead b(Config(1, 0));
  EXPECT_EQ(b.Acquire(), AcquireResult::kAdmitted);
  EXPECT_EQ(b.Acquire(), AcquireResult::kRejectedFull);
  EXPECT_TRUE(b.Release().ok());
  EXPECT_EQ(b.Release().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b.Stats().rejected, 1);
}

TEST(BlockingBulkheadTest, TimesOut) {
  BlockingBulkhead b(Config(1, 1, 20 * kMs));
  ASSERT_EQ(b.Acquire(), AcquireResult::kAdmitted);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(b.Acquire(), AcquireResult::kRejectedTimeout);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(20));
  const BulkheadStats s = b.Stats();
  EXPECT_EQ(s.timed_out, 1);
  EXPECT_EQ(s.waiting, 0);
  EXPECT_EQ(b.Acquire(0), AcquireResult::kRejectedTimeout) << "max_wait 0 gives up at once";
  EXPECT_TRUE(b.Release().ok());
  EXPECT_EQ(b.Stats().active, 0) << "nobody left waiting: the slot is free";
}

TEST(BlockingBulkheadTest, HandsOffInFifoOrder) {
  BlockingBulkhead b(Config(1, 8));
  ASSERT_EQ(b.Acquire(), AcquireResult::kAdmitted);
  Mutex mu;
  std::vector<int> order;
  std::vector<std::thread> threads;
  for (int i = 0; i < 5; ++i) {
    threads.emplace_back([&, i] {
      ASSERT_EQ(b.Acquire(), AcquireResult::kAdmitted);
      {
        MutexLock lock(&mu);
        order.push_back(i);
      }
      ASSERT_TRUE(b.Release().ok());
    });
    // Let each thread take its place before starting the next, so the queue order is known.
    ASSERT_TRUE(Eventually([&] { return b.Stats().waiting == i + 1; }));
  }
  ASSERT_TRUE(b.Release().ok());
  for (std::thread& t : threads) t.join();
  EXPECT_THAT(order, ElementsAre(0, 1, 2, 3, 4));
  const BulkheadStats s = b.Stats();
  EXPECT_EQ(s.active, 0);
  EXPECT_EQ(s.admitted, 6);
}

TEST(BlockingBulkheadTest, NewcomersDoNotOvertakeWaiters) {
  BlockingBulkhead b(Config(1, 1));
  ASSERT_EQ(b.Acquire(), AcquireResult::kAdmitted);
  std::atomic<bool> waiter_admitted{false};
  std::thread waiter([&] {
    ASSERT_EQ(b.Acquire(-1), AcquireResult::kAdmitted);
    waiter_admitted = true;
  });
  ASSERT_TRUE(Eventually([&] { return b.Stats().waiting == 1; }));
  ASSERT_TRUE(b.Release().ok());
  // The slot went to the waiter, not to whoever asks next.
  EXPECT_EQ(b.Stats().active, 1);
  waiter.join();
  EXPECT_TRUE(waiter_admitted);
  EXPECT_EQ(b.Acquire(0), AcquireResult::kRejectedTimeout);
  ASSERT_TRUE(b.Release().ok());
}

TEST(BlockingBulkheadTest, AbortCallbackGivesUpThePlace) {
  BlockingBulkhead b(Config(1, 1));
  ASSERT_EQ(b.Acquire(), AcquireResult::kAdmitted);
  std::atomic<int> polls{0};
  const AcquireResult r = b.Acquire(
      -1, [&] { return polls.fetch_add(1) + 1 >= 3; }, 1 * kMs);
  EXPECT_EQ(r, AcquireResult::kAborted);
  EXPECT_EQ(polls.load(), 3);
  const BulkheadStats s = b.Stats();
  EXPECT_EQ(s.waiting, 0);
  EXPECT_EQ(s.abandoned, 1);
  EXPECT_EQ(s.timed_out, 0);
  ASSERT_TRUE(b.Release().ok());
}

TEST(BlockingBulkheadTest, ThrowingAbortCallbackLeaksNothing) {
  BlockingBulkhead b(Config(1, 1));
  ASSERT_EQ(b.Acquire(), AcquireResult::kAdmitted);
  EXPECT_THROW(b.Acquire(
                   -1, []() -> bool { throw std::runtime_error("interrupted"); }, 1 * kMs),
               std::runtime_error);
  EXPECT_EQ(b.Stats().waiting, 0);
  ASSERT_TRUE(b.Release().ok());
  EXPECT_EQ(b.Stats().active, 0);
}

// Many threads hammer one bulkhead with mixed waits: never more than max_concurrent inside, and
// every admission is matched by exactly one release. Run under ThreadSanitizer in CI.
TEST(BlockingBulkheadTest, StressNeverExceedsMaxConcurrent) {
  constexpr int kMaxConcurrent = 3;
  constexpr int kThreads = 12;
  constexpr int kIterations = 1500;
  BlockingBulkhead b(Config(kMaxConcurrent, 4, 2 * kMs));
  std::atomic<int> inside{0};
  std::atomic<int> max_inside{0};
  std::atomic<int64_t> admitted{0}, full{0}, timed_out{0}, aborted{0};
  std::atomic<bool> release_failed{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      RandomStream rng(Rng::DeriveSeed(t, "bulkhead"));
      for (int i = 0; i < kIterations; ++i) {
        AcquireResult r;
        const double u = rng.Uniform01();
        if (u < 0.5) {
          r = b.Acquire();
        } else if (u < 0.8) {
          r = b.Acquire(-1);  // unlimited: always admitted eventually (or rejected full)
        } else {
          r = b.Acquire(
              5 * kMs, [&rng] { return rng.Bernoulli(0.3); }, 1 * kMs);
        }
        switch (r) {
          case AcquireResult::kAdmitted: {
            admitted.fetch_add(1);
            const int now_inside = inside.fetch_add(1) + 1;
            int seen = max_inside.load();
            while (now_inside > seen && !max_inside.compare_exchange_weak(seen, now_inside)) {
            }
            if (rng.Bernoulli(0.3)) std::this_thread::sleep_for(std::chrono::microseconds(200));
            inside.fetch_sub(1);
            if (!b.Release().ok()) release_failed = true;
            break;
          }
          case AcquireResult::kRejectedFull:
            full.fetch_add(1);
            break;
          case AcquireResult::kRejectedTimeout:
            timed_out.fetch_add(1);
            break;
          case AcquireResult::kAborted:
            aborted.fetch_add(1);
            break;
          case AcquireResult::kClosed:
            ADD_FAILURE() << "the bulkhead was never closed";
            break;
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_LE(max_inside.load(), kMaxConcurrent);
  EXPECT_GE(max_inside.load(), 1);
  EXPECT_FALSE(release_failed);
  const BulkheadStats s = b.Stats();
  EXPECT_EQ(s.active, 0);
  EXPECT_EQ(s.waiting, 0);
  EXPECT_EQ(s.admitted, admitted.load());
  EXPECT_EQ(s.rejected, full.load());
  EXPECT_EQ(s.timed_out, timed_out.load());
  EXPECT_EQ(s.abandoned, aborted.load());
  EXPECT_EQ(admitted + full + timed_out + aborted, int64_t{kThreads} * kIterations);
}

TEST(BlockingBulkheadTest, CloseReleasesEveryWaiterAndRefusesLaterAcquires) {
  BlockingBulkhead b(BulkheadConfig{1, 3, -1});
  ASSERT_EQ(b.Acquire(), AcquireResult::kAdmitted);
  std::vector<AcquireResult> results(3, AcquireResult::kAdmitted);
  std::vector<std::thread> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.emplace_back([&b, &results, i] { results[i] = b.Acquire(-1); });  // no time limit
  }
  for (int spin = 0; spin < 30'000 && b.Stats().waiting < 3; ++spin) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(b.Stats().waiting, 3);
  EXPECT_FALSE(b.closed());
  b.Close();
  for (std::thread& t : waiters) t.join();
  for (AcquireResult r : results) EXPECT_EQ(r, AcquireResult::kClosed);
  EXPECT_TRUE(b.closed());
  EXPECT_EQ(b.Acquire(), AcquireResult::kClosed);
  const BulkheadStats s = b.Stats();
  EXPECT_EQ(s.waiting, 0);
  EXPECT_EQ(s.abandoned, 3);
  EXPECT_EQ(s.active, 1);
  EXPECT_TRUE(b.Release().ok()) << "a slot held before the close is released normally";
  EXPECT_EQ(b.Stats().active, 0);
  b.Close();  // idempotent
  EXPECT_EQ(b.Acquire(0), AcquireResult::kClosed);
  EXPECT_EQ(AcquireResultName(AcquireResult::kClosed), "closed");
}

}  // namespace
}  // namespace rlab::bulkhead_test
