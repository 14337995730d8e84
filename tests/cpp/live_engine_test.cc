#include "rlab/live/live_engine.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/core/rng.h"
#include "rlab/model/scenario.h"

namespace rlab::live_engine_test {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kMs = 1'000'000;

LatencyDist Const(double v_s) {
  LatencyDist d;
  d.kind = LatencyDist::Kind::kConstant;
  d.a = v_s;
  return d;
}

LatencyDist Exp(double mean_s) {
  LatencyDist d;
  d.kind = LatencyDist::Kind::kExponential;
  d.a = mean_s;
  return d;
}

ScenarioConfig Basic(double latency_s, int workers = 4, int queue_capacity = 64) {
  ScenarioConfig sc;
  sc.arrivals.kind = ArrivalConfig::Kind::kPoisson;
  sc.arrivals.rate = 200;
  sc.workers = workers;
  sc.queue_capacity = queue_capacity;
  sc.duration_ns = 200 * kMs;
  sc.seed = 1;
  DependencyConfig dep;
  dep.name = "payment";
  dep.faults.latency = Const(latency_s);
  sc.dependencies.push_back(dep);
  return sc;
}

LiveOptions FastOptions() {
  LiveOptions o;
  o.sample_every_ns = 20 * kMs;
  return o;
}

std::unique_ptr<LiveEngine> MakeStarted(const ScenarioConfig& sc, LiveOptions o = FastOptions()) {
  auto e = LiveEngine::Create(sc, o);
  EXPECT_TRUE(e.ok()) << e.status();
  if (!e.ok()) return nullptr;
  EXPECT_TRUE((*e)->Start().ok());
  return std::move(*e);
}

int64_t TerminalCount(const SimResult& r) {
  int64_t n = 0;
  for (int s = static_cast<int>(OrderStatus::kCompleted); s < kNumOrderStatuses; ++s) {
    n += r.by_status[s];
  }
  return n;
}

// Every order ever submitted is in exactly one terminal state, and the counters agree with the
// per-order records.
void ExpectConserved(const LiveEngine& e) {
  auto res = e.result();
  ASSERT_TRUE(res.ok());
  const SimResult& r = **res;
  EXPECT_EQ(r.in_flight, 0);
  EXPECT_EQ(TerminalCount(r), r.arrived);
  ASSERT_EQ(static_cast<int64_t>(r.orders.size()), r.arrived);
  std::array<int64_t, kNumOrderStatuses> from_records{};
  for (int64_t id = 0; id < r.arrived; ++id) {
    auto v = e.View(id);
    ASSERT_TRUE(v.ok());
    ASSERT_TRUE(IsTerminal(v->status)) << "order " << id << " is " << OrderStatusName(v->status);
    ++from_records[r.orders[id].status];
    EXPECT_EQ(r.orders[id].status, static_cast<uint8_t>(v->status));
    EXPECT_GE(r.orders[id].end_ns, r.orders[id].arrival_ns);
  }
  for (int s = 0; s < kNumOrderStatuses; ++s) EXPECT_EQ(from_records[s], r.by_status[s]) << s;
}

const FamilySnapshot* FindFamily(const std::vector<FamilySnapshot>& snap, const std::string& n) {
  for (const auto& f : snap) {
    if (f.name == n) return &f;
  }
  return nullptr;
}

double SeriesValue(const FamilySnapshot& f, const std::vector<std::string>& labels) {
  for (const auto& s : f.series) {
    if (s.label_values == labels) return s.value;
  }
  ADD_FAILURE() << "no series in " << f.name;
  return -1;
}

TEST(LiveEngineTest, CompletesSubmittedOrdersAndReportsInTheSimShape) {
  auto e = MakeStarted(Basic(0.001));
  std::vector<int64_t> ids;
  for (int i = 0; i < 50; ++i) {
    auto id = e->Submit();
    ASSERT_TRUE(id.ok());
    ids.push_back(*id);
  }
  for (int64_t id : ids) ASSERT_TRUE(e->Wait(id, -1));
  EXPECT_TRUE(e->WaitIdle(-1));
  const auto snap = e->MetricsSnapshot();
  const ShutdownReport rep = e->Shutdown(1'000 * kMs);
  EXPECT_FALSE(rep.timed_out);
  EXPECT_EQ(rep.cancelled, 0);
  ExpectConserved(*e);
  const SimResult& r = **e->result();
  EXPECT_EQ(r.arrived, 50);
  EXPECT_EQ(r.by_status[static_cast<size_t>(OrderStatus::kCompleted)], 50);
  EXPECT_EQ(r.deps[0].flow.calls, 50);
  EXPECT_EQ(r.latency_completed.count(), 50);
  EXPECT_GE(r.latency_completed.min(), 1 * kMs);  // the dependency really took its latency
  EXPECT_GT(r.busy_integral_ns, 0);
  EXPECT_FALSE(r.ts_columns.empty());
  EXPECT_EQ(r.ts.size(), r.ts_columns.size());

  const FamilySnapshot* jobs = FindFamily(snap, "rlab_worker_jobs");
  ASSERT_NE(jobs, nullptr);
  EXPECT_EQ(SeriesValue(*jobs, {"completed"}), 50);
  const FamilySnapshot* calls = FindFamily(snap, "rlab_dependency_calls");
  ASSERT_NE(calls, nullptr);
  EXPECT_EQ(SeriesValue(*calls, {"payment"}), 50);
  const FamilySnapshot* lat = FindFamily(snap, "rlab_order_latency_seconds");
  ASSERT_NE(lat, nullptr);
  EXPECT_EQ(lat->series[0].count, 50);
  for (const char* name : {"rlab_queue_depth", "rlab_busy_workers", "rlab_retry_attempts",
                           "rlab_policy_rejections", "rlab_orders_arrived"}) {
    EXPECT_NE(FindFamily(snap, name), nullptr) << name;
  }
}

TEST(LiveEngineTest, FullQueueRejectsAtOnce) {
  auto e = MakeStarted(Basic(0.2, /*workers=*/1, /*queue_capacity=*/1));
  std::vector<int64_t> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(*e->Submit());
  // One order is being processed or queued, the queue holds one more: at least four rejected.
  int rejected = 0;
  for (int64_t id : ids) {
    auto v = e->View(id);
    ASSERT_TRUE(v.ok());
    if (v->status == OrderStatus::kRejected) {
      EXPECT_EQ(v->reason, FailReason::kQueueFull);
      ++rejected;
    }
  }
  EXPECT_GE(rejected, 4);
  e->Shutdown(0);
  ExpectConserved(*e);
}

TEST(LiveEngineTest, ShutdownCancelsWhatTheGraceTimeCannotFinish) {
  auto e = MakeStarted(Basic(10.0, /*workers=*/2, /*queue_capacity=*/16));
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(e->Submit().ok());
  const ShutdownReport rep = e->Shutdown(30 * kMs);
  EXPECT_TRUE(rep.timed_out);
  EXPECT_EQ(rep.cancelled, 6);
  EXPECT_LT(rep.elapsed_ns, 5'000 * kMs);  // hung calls were interrupted, not waited out
  ExpectConserved(*e);
  const SimResult& r = **e->result();
  EXPECT_EQ(r.by_status[static_cast<size_t>(OrderStatus::kCancelled)], 6);
  EXPECT_EQ(r.by_reason[static_cast<size_t>(FailReason::kShutdown)], 6);
  // After shutdown, intake is closed with a clear error.
  auto late = e->Submit();
  EXPECT_FALSE(late.ok());
  EXPECT_THAT(std::string(late.status().message()), HasSubstr("accepts no new orders"));
  // Idempotent.
  EXPECT_EQ(e->Shutdown(0).cancelled, 6);
}

TEST(LiveEngineTest, GraceTimeLetsQueuedOrdersFinish) {
  auto e = MakeStarted(Basic(0.005, /*workers=*/2));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(e->Submit().ok());
  const ShutdownReport rep = e->Shutdown(-1);
  EXPECT_FALSE(rep.timed_out);
  ExpectConserved(*e);
  EXPECT_EQ((**e->result()).by_status[static_cast<size_t>(OrderStatus::kCompleted)], 10);
}

TEST(LiveEngineTest, RejectsWhatItCannotRun) {
  ScenarioConfig sc = Basic(0.001);
  sc.release_worker_during_backoff = true;
  EXPECT_EQ(LiveEngine::Create(sc, {}).status().code(), absl::StatusCode::kUnimplemented);
  sc = Basic(0.001);
  sc.workers = 0;
  EXPECT_FALSE(LiveEngine::Create(sc, {}).ok());
  auto e = LiveEngine::Create(Basic(0.001), {});
  ASSERT_TRUE(e.ok());
  EXPECT_FALSE((*e)->Submit().ok());  // not started
  EXPECT_FALSE((*e)->View(0).ok());
}

TEST(LiveEngineTest, DeadlinesExpireQueuedOrders) {
  ScenarioConfig sc = Basic(0.05, /*workers=*/1);
  sc.order_deadline_ns = 20 * kMs;
  auto e = MakeStarted(sc);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(e->Submit().ok());
  e->Shutdown(-1);
  ExpectConserved(*e);
  const SimResult& r = **e->result();
  // The first order's attempt is capped by its deadline; the others find it passed.
  EXPECT_EQ(r.by_status[static_cast<size_t>(OrderStatus::kCompleted)], 0);
  EXPECT_GE(r.by_status[static_cast<size_t>(OrderStatus::kExpired)], 2);
}

TEST(LiveEngineTest, BulkheadWaitersAreHandedSlots) {
  ScenarioConfig sc = Basic(0.002, /*workers=*/6);
  BulkheadConfig b;
  b.max_concurrent = 1;
  b.max_waiting = 16;
  sc.dependencies[0].bulkhead = b;
  auto e = MakeStarted(sc);
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(e->Submit().ok());
  e->Shutdown(-1);
  ExpectConserved(*e);
  const SimResult& r = **e->result();
  EXPECT_EQ(r.by_status[static_cast<size_t>(OrderStatus::kCompleted)], 30);
  EXPECT_EQ(r.deps[0].flow.rejected_bulkhead, 0);
  EXPECT_EQ(r.deps[0].max_load, 1);  // never two calls at once
}

TEST(LiveEngineTest, LimitedCapacityServesInLineAndCountsWastedWork) {
  ScenarioConfig sc = Basic(0.01, /*workers=*/6);
  sc.dependencies[0].faults.capacity.max_in_service = 1;
  sc.dependencies[0].attempt_timeout_ns = 25 * kMs;
  auto e = MakeStarted(sc);
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(e->Submit().ok());
  e->Shutdown(-1);
  ExpectConserved(*e);
  const SimResult& r = **e->result();
  // With one call at a time and 10 ms each, callers deep in the line time out; the server still
  // serves their calls (not drop_abandoned).
  EXPECT_GT(r.by_status[static_cast<size_t>(OrderStatus::kFailed)], 0);
  EXPECT_GT(r.by_status[static_cast<size_t>(OrderStatus::kCompleted)], 0);
  EXPECT_GT(r.deps[0].wasted_service, 0);
}

TEST(LiveEngineTest, ClosedLoopClientsRunForTheDuration) {
  ScenarioConfig sc = Basic(0.001);
  sc.arrivals.kind = ArrivalConfig::Kind::kClosedLoop;
  sc.arrivals.clients = 3;
  sc.arrivals.think_time = Const(0.002);
  sc.duration_ns = 100 * kMs;
  auto e = MakeStarted(sc);
  ASSERT_TRUE(e->StartLoad().ok());
  EXPECT_FALSE(e->StartLoad().ok());
  EXPECT_TRUE(e->WaitIdle(-1));
  EXPECT_FALSE(e->LoadRunning());
  e->Shutdown(-1);
  ExpectConserved(*e);
  const SimResult& r = **e->result();
  EXPECT_GT(r.arrived, 3);
  EXPECT_EQ(r.by_status[static_cast<size_t>(OrderStatus::kCompleted)], r.arrived);
}

TEST(LiveEngineTest, OpenLoopGeneratorsProduceOrders) {
  for (auto kind : {ArrivalConfig::Kind::kPoisson, ArrivalConfig::Kind::kConstant,
                    ArrivalConfig::Kind::kSchedule}) {
    ScenarioConfig sc = Basic(0.0);
    sc.arrivals.kind = kind;
    sc.arrivals.rate = 500;
    sc.arrivals.schedule = {{0, 100 * kMs, 500, 500}};
    sc.duration_ns = 100 * kMs;
    auto e = MakeStarted(sc);
    ASSERT_TRUE(e->StartLoad().ok());
    EXPECT_TRUE(e->WaitIdle(-1));
    e->Shutdown(-1);
    ExpectConserved(*e);
    // About 50 arrivals; a wide band keeps the test robust on a loaded machine.
    EXPECT_GT((**e->result()).arrived, 10) << static_cast<int>(kind);
    EXPECT_LT((**e->result()).arrived, 100) << static_cast<int>(kind);
  }
}

// A hostile mix of policies, load from generators and from extra submitting threads, and a
// shutdown at a random moment with a random grace time: every order ends in exactly one terminal
// state. Run under ThreadSanitizer too.
TEST(LiveEngineTest, ConservationThroughRandomShutdowns) {
  RandomStream rng(2024);
  for (int round = 0; round < 12; ++round) {
    ScenarioConfig sc = Basic(0.0, /*workers=*/1 + static_cast<int>(rng.UniformIndex(6)),
                              /*queue_capacity=*/1 + static_cast<int>(rng.UniformIndex(20)));
    sc.seed = round;
    sc.arrivals.rate = 2000;
    sc.duration_ns = 1'000 * kMs;
    DependencyConfig& d = sc.dependencies[0];
    d.faults.latency = Exp(0.002);
    d.faults.failure_rate = rng.Uniform(0.0, 0.8);
    d.faults.mix.timeout = 0.3;
    d.faults.ambiguous_rate = 0.1;
    d.charges = true;
    d.idempotency_keys = rng.Bernoulli(0.5);
    d.attempt_timeout_ns = 5 * kMs;
    RetryConfig retry;
    retry.max_attempts = 4;
    retry.backoff.initial_ns = 1 * kMs;
    retry.backoff.max_ns = 4 * kMs;
    d.retry = retry;
    if (rng.Bernoulli(0.7)) {
      BreakerConfig b;
      b.consecutive_failures = 3;
      b.open_for_ns = 10 * kMs;
      b.half_open_max_calls = 2;
      d.breaker = b;
      if (rng.Bernoulli(0.5)) d.composition = Composition::kBreakerOutsideRetry;
    }
    if (rng.Bernoulli(0.6)) {
      BulkheadConfig b;
      b.max_concurrent = 1 + static_cast<int64_t>(rng.UniformIndex(3));
      b.max_waiting = static_cast<int64_t>(rng.UniformIndex(4));
      b.max_wait_ns = rng.Bernoulli(0.5) ? -1 : 3 * kMs;
      d.bulkhead = b;
    }
    if (rng.Bernoulli(0.4)) {
      d.faults.capacity.max_in_service = 2;
      d.faults.capacity.max_queue = rng.Bernoulli(0.5) ? -1 : 2;
      d.faults.capacity.drop_abandoned = rng.Bernoulli(0.5);
    }
    if (rng.Bernoulli(0.5)) sc.order_deadline_ns = 15 * kMs;
    auto e = MakeStarted(sc);
    ASSERT_TRUE(e->StartLoad().ok());
    std::atomic<bool> stop{false};
    std::vector<std::thread> submitters;
    for (int t = 0; t < 2; ++t) {
      submitters.emplace_back([&] {
        while (!stop.load()) {
          if (!e->Submit().ok()) return;  // intake closed
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng.UniformIndex(40)));
    const int64_t grace = rng.Bernoulli(0.3) ? 0 : static_cast<int64_t>(rng.UniformIndex(20)) * kMs;
    e->Shutdown(grace);
    stop = true;
    for (auto& t : submitters) t.join();
    ExpectConserved(*e);
    if (HasFailure()) {
      ADD_FAILURE() << "round " << round;
      return;
    }
  }
}

// The wall-clock story of DESIGN §2: an outage phase trips the breaker during the outage, and
// after it ends, half-open probes succeed and close it again.
TEST(LiveEngineTest, OutageOpensTheBreakerAndRecoveryClosesIt) {
  ScenarioConfig sc = Basic(0.001, /*workers=*/4);
  sc.arrivals.kind = ArrivalConfig::Kind::kConstant;
  sc.arrivals.rate = 400;
  sc.duration_ns = 600 * kMs;
  DependencyConfig& d = sc.dependencies[0];
  FaultPhase outage;
  outage.name = "outage";
  outage.start_ns = 150 * kMs;
  outage.end_ns = 350 * kMs;
  outage.failure_rate = 1.0;
  d.faults.phases.push_back(outage);
  BreakerConfig b;
  b.consecutive_failures = 5;
  b.open_for_ns = 40 * kMs;
  d.breaker = b;
  auto e = MakeStarted(sc);
  ASSERT_TRUE(e->StartLoad().ok());
  EXPECT_TRUE(e->WaitIdle(-1));
  const auto snap = e->MetricsSnapshot();
  e->Shutdown(-1);
  ExpectConserved(*e);
  const SimResult& r = **e->result();
  int64_t first_open = -1, last_close = -1;
  BreakerState last = BreakerState::kClosed;
  for (const SimTransition& t : r.transitions) {
    if (t.kind != SimTransition::Kind::kBreaker) continue;
    if (t.to == BreakerState::kOpen && first_open < 0) first_open = t.t_ns;
    if (t.to == BreakerState::kClosed) last_close = t.t_ns;
    last = t.to;
  }
  EXPECT_GE(first_open, outage.start_ns);
  EXPECT_LT(first_open, outage.end_ns);
  EXPECT_GT(last_close, outage.end_ns);
  EXPECT_EQ(last, BreakerState::kClosed);
  EXPECT_GE(r.deps[0].trips, 1);
  EXPECT_GT(r.deps[0].flow.rejected_breaker, 0);
  const FamilySnapshot* state = FindFamily(snap, "rlab_breaker_state");
  ASSERT_NE(state, nullptr);
  EXPECT_EQ(SeriesValue(*state, {"payment", "closed"}), 1.0);
  const FamilySnapshot* changes = FindFamily(snap, "rlab_breaker_transitions");
  ASSERT_NE(changes, nullptr);
  EXPECT_GE(SeriesValue(*changes, {"payment", "closed", "open"}), 1.0);
  EXPECT_GE(SeriesValue(*changes, {"payment", "half_open", "closed"}), 1.0);
  // The transitions were also handed out for logging, exactly once.
  const auto taken = e->TakeTransitions();
  EXPECT_FALSE(taken.empty());
  EXPECT_TRUE(e->TakeTransitions().empty());
}

// Many threads submitting and waiting against a small pool with every blocking path in use;
// meant for ThreadSanitizer.
TEST(LiveEngineTest, StressManySubmittersAndWaiters) {
  ScenarioConfig sc = Basic(0.0, /*workers=*/4, /*queue_capacity=*/32);
  DependencyConfig& d = sc.dependencies[0];
  d.faults.latency = Exp(0.0002);
  d.faults.failure_rate = 0.3;
  RetryConfig retry;
  retry.max_attempts = 3;
  retry.backoff.initial_ns = kMs / 10;
  retry.backoff.max_ns = kMs;
  d.retry = retry;
  BreakerConfig b;
  b.consecutive_failures = 4;
  b.open_for_ns = 2 * kMs;
  d.breaker = b;
  BulkheadConfig bh;
  bh.max_concurrent = 2;
  bh.max_waiting = 2;
  d.bulkhead = bh;
  auto e = MakeStarted(sc);
  std::vector<std::thread> threads;
  std::atomic<int64_t> waited{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 300; ++i) {
        auto id = e->Submit();
        if (!id.ok()) return;
        if (i % 10 == 0 && e->Wait(*id, -1)) ++waited;
        if (i % 50 == 0) e->MetricsSnapshot();
      }
    });
  }
  for (auto& t : threads) t.join();
  e->Shutdown(-1);
  ExpectConserved(*e);
  EXPECT_EQ((**e->result()).arrived, 6 * 300);
  EXPECT_EQ(waited.load(), 6 * 30);
}

}  // namespace
}  // namespace rlab::live_engine_test
