// What the control room uses in the live engine: the open-loop arrival rate changed while the
// load runs (SetArrivalRate), and the retry budget's tokens exported as a gauge.
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlab/live/live_engine.h"
#include "rlab/model/scenario.h"

namespace rlab::live_controls_test {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kS = 1'000'000'000;

ScenarioConfig Open(ArrivalConfig::Kind kind, double rate) {
  ScenarioConfig sc;
  sc.arrivals.kind = kind;
  sc.arrivals.rate = rate;
  sc.workers = 4;
  sc.queue_capacity = 4096;
  sc.duration_ns = 600 * kS;  // far longer than any test: the test stops the load
  sc.seed = 11;
  DependencyConfig dep;
  dep.name = "payment";
  dep.faults.latency.kind = LatencyDist::Kind::kConstant;
  dep.faults.latency.a = 0.0001;
  sc.dependencies.push_back(dep);
  return sc;
}

std::unique_ptr<LiveEngine> Started(const ScenarioConfig& sc) {
  auto e = LiveEngine::Create(sc, LiveOptions{});
  EXPECT_TRUE(e.ok()) << e.status();
  if (!e.ok()) return nullptr;
  EXPECT_TRUE((*e)->Start().ok());
  return std::move(*e);
}

// Polls until at least `n` orders arrived; false after a generous bound (never a timing claim:
// without the rate change, the wait would need hours).
bool WaitArrived(const LiveEngine& e, int64_t n) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (e.arrived() >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

TEST(LiveArrivalRate, RejectsBadRatesNamingThePathAndTheRange) {
  auto e = Started(Open(ArrivalConfig::Kind::kPoisson, 10));
  ASSERT_NE(e, nullptr);
  for (double bad : {0.0, -1.0, 2e7, std::nan(""), std::numeric_limits<double>::infinity()}) {
    absl::Status s = e->SetArrivalRate(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(s.message(), HasSubstr("arrivals.rate")) << bad;
    EXPECT_THAT(s.message(), HasSubstr("(0, ")) << s.message();
  }
  EXPECT_EQ(e->arrival_rate(), 10.0);  // unchanged by the refusals
  EXPECT_TRUE(e->SetArrivalRate(1e7).ok());
  EXPECT_EQ(e->arrival_rate(), 1e7);
  e->Shutdown(kS);
}

TEST(LiveArrivalRate, RefusedForArrivalsWithoutOneRate) {
  ScenarioConfig sc = Open(ArrivalConfig::Kind::kPoisson, 10);
  sc.arrivals.kind = ArrivalConfig::Kind::kClosedLoop;
  sc.arrivals.clients = 2;
  auto e = Started(sc);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->arrival_rate(), 0.0);
  absl::Status s = e->SetArrivalRate(100);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("arrivals.rate"));
  e->Shutdown(kS);
}

// A generator waiting for an arrival drawn at a tiny rate wakes on the change and goes on at the
// new rate; then lowering the rate is picked up too.
TEST(LiveArrivalRate, RunningGeneratorFollowsTheNewRate) {
  for (ArrivalConfig::Kind kind : {ArrivalConfig::Kind::kPoisson, ArrivalConfig::Kind::kConstant}) {
    auto e = Started(Open(kind, 0.001));  // one arrival per 1,000 s on average
    ASSERT_NE(e, nullptr);
    ASSERT_TRUE(e->StartLoad().ok());
    ASSERT_TRUE(e->SetArrivalRate(2000).ok());
    EXPECT_TRUE(WaitArrived(*e, 200)) << "arrived " << e->arrived();
    ASSERT_TRUE(e->SetArrivalRate(0.001).ok());
    EXPECT_EQ(e->arrival_rate(), 0.001);
    EXPECT_TRUE(e->LoadRunning());
    e->StopLoad();  // wakes the generator from its long wait at once
    EXPECT_FALSE(e->LoadRunning());
    ShutdownReport r = e->Shutdown(5 * kS);
    EXPECT_TRUE(r.internal_error.empty()) << r.internal_error;
  }
}

// Changes from another thread while the generator runs (a ThreadSanitizer target).
TEST(LiveArrivalRate, ConcurrentChangesAreSafe) {
  auto e = Started(Open(ArrivalConfig::Kind::kPoisson, 500));
  ASSERT_NE(e, nullptr);
  ASSERT_TRUE(e->StartLoad().ok());
  std::thread changer([&] {
    for (int i = 0; i < 200; ++i) {
      EXPECT_TRUE(e->SetArrivalRate(i % 2 == 0 ? 1000.0 : 200.0).ok());
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
  });
  changer.join();
  EXPECT_TRUE(WaitArrived(*e, 20));
  e->StopLoad();
  ShutdownReport r = e->Shutdown(5 * kS);
  EXPECT_TRUE(r.internal_error.empty()) << r.internal_error;
}

// The token bucket's level is exported as rlab_retry_budget_tokens{dependency}, read at scrape
// time; dependencies without a token bucket have no series.
TEST(LiveBudgetGauge, ExportsTheTokenBucketLevel) {
  ScenarioConfig sc = Open(ArrivalConfig::Kind::kPoisson, 10);
  DependencyConfig plain = sc.dependencies[0];
  plain.name = "inventory";
  sc.dependencies[0].retry.emplace();
  sc.dependencies[0].retry->max_attempts = 3;
  TokenBucketConfig bucket;
  bucket.max_tokens = 42;  // also the starting level
  bucket.token_ratio = 0.1;
  sc.dependencies[0].token_bucket = bucket;
  sc.dependencies.push_back(plain);
  auto e = Started(sc);
  ASSERT_NE(e, nullptr);
  bool found = false;
  for (const FamilySnapshot& f : e->MetricsSnapshot()) {
    if (f.name != "rlab_retry_budget_tokens") continue;
    found = true;
    ASSERT_EQ(f.series.size(), 1u);
    EXPECT_EQ(f.series[0].label_values, std::vector<std::string>{"payment"});
    EXPECT_DOUBLE_EQ(f.series[0].value, 42.0);
  }
  EXPECT_TRUE(found);
  e->Shutdown(kS);
}

// The breaker knob: a threshold lowered while the engine runs applies to the next orders.
TEST(LiveBreakerConfig, ChangesTheRunningBreakerAndRefusesBadInput) {
  ScenarioConfig sc = Open(ArrivalConfig::Kind::kPoisson, 10);  // the load is never started
  sc.dependencies[0].faults.failure_rate = 1.0;                 // every attempt fails
  BreakerConfig b;
  b.consecutive_failures = 1000;
  b.open_for_ns = 600 * kS;
  sc.dependencies[0].breaker = b;
  DependencyConfig plain = sc.dependencies[0];
  plain.name = "inventory";
  plain.breaker.reset();
  sc.dependencies.push_back(plain);
  auto e = Started(sc);
  ASSERT_NE(e, nullptr);

  absl::Status s = e->SetBreakerConfig("nope", b);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  s = e->SetBreakerConfig("inventory", b);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("inventory has no circuit breaker"));
  BreakerConfig bad = b;
  bad.open_for_ns = -kS;
  s = e->SetBreakerConfig("payment", bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("payment.breaker.open_for must be"));

  auto run_orders = [&](int n) {
    for (int i = 0; i < n; ++i) {
      auto id = e->Submit();
      ASSERT_TRUE(id.ok()) << id.status();
      ASSERT_TRUE(e->Wait(*id, 60 * kS));
    }
  };
  auto payment_state = [&] { return e->Internals().deps[0].breaker; };
  run_orders(3);
  EXPECT_EQ(payment_state(), BreakerState::kClosed);  // 3 failures < 1000
  b.consecutive_failures = 2;
  ASSERT_TRUE(e->SetBreakerConfig("payment", b).ok());
  EXPECT_EQ(payment_state(), BreakerState::kClosed);  // the earlier failures do not count
  run_orders(1);
  EXPECT_EQ(payment_state(), BreakerState::kClosed);
  run_orders(1);
  EXPECT_EQ(payment_state(), BreakerState::kOpen);
  e->Shutdown(kS);
}

}  // namespace
}  // namespace rlab::live_controls_test
