// The run-time invariants (rlab/core/invariant.h): they abort with a message when on (Debug,
// sanitizer and -DRLAB_INVARIANTS=ON builds), and cost nothing when off. Also CondVar's waits.

#include "rlab/core/invariant.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "gtest/gtest.h"
#include "rlab/core/mutex.h"
#include "rlab/model/order_conservation.h"
#include "rlab/policy/circuit_breaker.h"

namespace rlab {

// Reaches into the breaker to break its invariants on purpose.
class CircuitBreakerTestPeer {
 public:
  static void SetHalfOpenInFlight(CircuitBreaker& b, int n) {
    MutexLock lock(&b.mu_);
    b.half_open_in_flight_ = n;
  }
  static void SetConsecutiveFailures(CircuitBreaker& b, int n) {
    MutexLock lock(&b.mu_);
    b.consecutive_failures_ = n;
  }
};

namespace invariant_test {
namespace {

class InvariantDeathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kInvariantsOn) GTEST_SKIP() << "invariants are off in this build (NDEBUG)";
    // The engines' tests start threads: re-execute rather than fork a threaded process.
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  }
};

TEST_F(InvariantDeathTest, AViolationAbortsWithWhereAndWhy) {
  const int arrived = 3;
  EXPECT_DEATH(RLAB_INVARIANT(arrived == 2, "%d arrived", arrived),
               "invariant violated: arrived == 2: 3 arrived");
}

TEST(InvariantTest, AHoldingInvariantDoesNothing) {
  int evaluated = 0;
  RLAB_INVARIANT(++evaluated == 1, "evaluated %d times", evaluated);
  // Evaluated exactly once when on, never when off.
  EXPECT_EQ(evaluated, kInvariantsOn ? 1 : 0);
}

TEST(InvariantTest, TerminalOrdersCountsTerminalStatusesOnly) {
  std::array<int64_t, kNumOrderStatuses> by_status{};
  for (int i = 0; i < kNumOrderStatuses; ++i) by_status[static_cast<size_t>(i)] = 1 << i;
  // pending 1, queued 2, processing 4 are not terminal.
  EXPECT_EQ(TerminalOrders(by_status), 8 + 16 + 32 + 64 + 128);
}

BreakerConfig HalfOpenConfig() {
  BreakerConfig c;
  c.consecutive_failures = 3;
  c.half_open_max_calls = 1;
  c.success_threshold = 2;
  return c;
}

TEST_F(InvariantDeathTest, BreakerWithMoreProbesThanPermittedAborts) {
  CircuitBreaker b(HalfOpenConfig());
  b.ForceState(BreakerState::kHalfOpen, 0);
  CircuitBreakerTestPeer::SetHalfOpenInFlight(b, 2);  // permitted: 1
  EXPECT_DEATH(b.Snapshot(0), "2 half-open probes in flight, 1 permitted");
}

TEST_F(InvariantDeathTest, BreakerCountingFailuresWhileOpenAborts) {
  CircuitBreaker b(HalfOpenConfig());
  b.ForceState(BreakerState::kOpen, 0);
  CircuitBreakerTestPeer::SetConsecutiveFailures(b, 1);
  EXPECT_DEATH(b.Snapshot(0), "breaker open: 1 consecutive failures, threshold 3");
}

// A probe's token recorded twice (a caller's mistake) once drove the probes in flight below
// zero, after which the half-open breaker let through more probes than half_open_max_calls.
TEST(BreakerInvariantTest, AProbeRecordedTwiceFreesOneSlotOnly) {
  CircuitBreaker b(HalfOpenConfig());
  b.ForceState(BreakerState::kHalfOpen, 0);
  const BreakerPermit probe = b.Allow(0);
  ASSERT_TRUE(probe.admitted);
  b.Record(probe.token, CallResult::kIgnored, 0);
  b.Record(probe.token, CallResult::kIgnored, 0);
  EXPECT_EQ(b.Snapshot(0).half_open_in_flight, 0);
  EXPECT_TRUE(b.Allow(0).admitted);
  EXPECT_FALSE(b.Allow(0).admitted);  // one probe at a time
}

// CondVar: a waiter sees the state guarded by the mutex change, and a bounded wait returns.
TEST(CondVarTest, WaitSeesTheSignalledStateAndWaitUntilTimesOut) {
  Mutex mu;
  CondVar cv;
  bool ready = false;  // guarded by mu
  std::thread t([&] {
    MutexLock lock(&mu);
    ready = true;
    cv.SignalAll();
  });
  {
    MutexLock lock(&mu);
    while (!ready) cv.Wait(&mu);
    EXPECT_TRUE(ready);
  }
  t.join();
  MutexLock lock(&mu);
  // Nobody signals: the wait ends at its deadline, reporting the timeout.
  EXPECT_TRUE(cv.WaitFor(&mu, std::chrono::milliseconds(1)));
  EXPECT_TRUE(cv.WaitUntil(&mu, std::chrono::steady_clock::now()));
  // The mutex is still held by the MutexLock after the waits (TryLock fails).
  std::atomic<bool> took{true};
  std::thread probe([&] {
    if (mu.TryLock()) {
      mu.Unlock();
    } else {
      took = false;
    }
  });
  probe.join();
  EXPECT_FALSE(took.load());
}

}  // namespace
}  // namespace invariant_test
}  // namespace rlab
