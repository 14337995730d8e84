#include "rlab/live/bounded_queue.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rlab::bounded_queue_test {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr int64_t kMs = 1'000'000;

TEST(BoundedQueueTest, FifoAndRejectsWhenFull) {
  BoundedQueue<int> q(2);
  EXPECT_EQ(q.TryPush(1), PushResult::kOk);
  EXPECT_EQ(q.TryPush(2), PushResult::kOk);
  int third = 3;
  EXPECT_EQ(q.TryPush(third), PushResult::kFull);
  EXPECT_EQ(q.size(), 2u);
  int v = 0;
  EXPECT_EQ(q.Pop(&v, 0), PopResult::kOk);
  EXPECT_EQ(v, 1);
  EXPECT_EQ(q.TryPush(third), PushResult::kOk);
  EXPECT_TRUE(q.TryPop(&v));
  EXPECT_EQ(v, 2);
  EXPECT_EQ(q.Pop(&v, 0), PopResult::kOk);
  EXPECT_EQ(v, 3);
  EXPECT_FALSE(q.TryPop(&v));
}

TEST(BoundedQueueTest, RejectedItemStaysWithTheCaller) {
  BoundedQueue<std::unique_ptr<int>> q(1);
  EXPECT_EQ(q.TryPush(std::make_unique<int>(1)), PushResult::kOk);
  auto p = std::make_unique<int>(2);
  EXPECT_EQ(q.TryPush(p), PushResult::kFull);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 2);
}

TEST(BoundedQueueTest, PopTimesOutWhenEmpty) {
  BoundedQueue<int> q(4);
  int v = 0;
  EXPECT_EQ(q.Pop(&v, 0), PopResult::kTimeout);
  EXPECT_EQ(q.Pop(&v, 2 * kMs), PopResult::kTimeout);
}

TEST(BoundedQueueTest, CloseRefusesPushesButHandsOutQueuedItems) {
  BoundedQueue<int> q(4);
  q.TryPush(1);
  q.TryPush(2);
  q.Close();
  q.Close();  // idempotent
  EXPECT_TRUE(q.closed());
  EXPECT_EQ(q.TryPush(3), PushResult::kClosed);
  int v = 0;
  EXPECT_EQ(q.Pop(&v), PopResult::kOk);
  EXPECT_EQ(v, 1);
  EXPECT_EQ(q.Pop(&v), PopResult::kOk);
  EXPECT_EQ(v, 2);
  EXPECT_EQ(q.Pop(&v), PopResult::kClosed);
}

TEST(BoundedQueueTest, CloseWakesBlockedConsumers) {
  BoundedQueue<int> q(4);
  std::atomic<int> closed{0};
  std::vector<std::thread> consumers;
  for (int i = 0; i < 3; ++i) {
    consumers.emplace_back([&] {
      int v = 0;
      if (q.Pop(&v) == PopResult::kClosed) ++closed;
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  q.Close();
  for (auto& t : consumers) t.join();
  EXPECT_EQ(closed.load(), 3);
}

TEST(BoundedQueueTest, DrainTakesEverythingInOrder) {
  BoundedQueue<int> q(8);
  for (int i = 0; i < 5; ++i) q.TryPush(i);
  EXPECT_THAT(q.Drain(), ElementsAre(0, 1, 2, 3, 4));
  EXPECT_THAT(q.Drain(), IsEmpty());
  EXPECT_EQ(q.size(), 0u);
}

TEST(BoundedQueueTest, Names) {
  EXPECT_EQ(PushResultName(PushResult::kFull), "full");
  EXPECT_EQ(PopResultName(PopResult::kTimeout), "timeout");
  EXPECT_EQ(PopResultName(PopResult::kClosed), "closed");
}

// Many producers and consumers, a small capacity and a close in the middle: every accepted item
// is popped or drained exactly once, and every push is accounted as accepted or refused.
TEST(BoundedQueueTest, StressConservesEveryItem) {
  constexpr int kProducers = 4;
  constexpr int kConsumers = 4;
  constexpr int kPerProducer = 20'000;
  BoundedQueue<int> q(16);
  std::atomic<int64_t> accepted{0}, refused{0};
  std::vector<std::vector<int>> popped(kConsumers);
  std::vector<std::thread> threads;
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&, c] {
      int v = 0;
      for (;;) {
        const PopResult r = q.Pop(&v, c % 2 == 0 ? -1 : kMs);
        if (r == PopResult::kClosed) return;
        if (r == PopResult::kOk) popped[c].push_back(v);
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        int item = p * kPerProducer + i;
        if (q.TryPush(item) == PushResult::kOk) {
          ++accepted;
        } else {
          ++refused;
          if (i % 64 == 0) std::this_thread::yield();
        }
      }
    });
  }
  // Close while producers may still be pushing.
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  q.Close();
  for (auto& t : producers) t.join();
  const std::vector<int> left = q.Drain();
  for (auto& t : threads) t.join();
  EXPECT_EQ(accepted + refused, int64_t{kProducers} * kPerProducer);
  std::vector<int> all(left.begin(), left.end());
  for (const auto& v : popped) all.insert(all.end(), v.begin(), v.end());
  EXPECT_EQ(static_cast<int64_t>(all.size()), accepted.load());
  std::sort(all.begin(), all.end());
  EXPECT_TRUE(std::adjacent_find(all.begin(), all.end()) == all.end()) << "an item twice";
  // Each consumer sees each producer's items in push order (FIFO).
  for (const auto& v : popped) {
    std::vector<int> last(kProducers, -1);
    for (int item : v) {
      EXPECT_GT(item, last[item / kPerProducer]);
      last[item / kPerProducer] = item;
    }
  }
}

}  // namespace
}  // namespace rlab::bounded_queue_test
