// Service graphs in the live engine (live/live_services.*): each service's own workers and
// bounded queue, the caller's bounded wait, the outcome mapping, and shutdown with requests in
// flight at a callee. Runs under TSan in CI: several threads submit while the tiers call each
// other.

#include <array>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/live/live_engine.h"
#include "rlab/model/run_result.h"
#include "rlab/model/scenario.h"
#include "rlab/model/service_accounting.h"

namespace rlab::live_services_test {
namespace {

constexpr int64_t kMs = 1'000'000;

DependencyConfig Leaf(const std::string& name, double latency_s, double failure_rate = 0.0) {
  DependencyConfig d;
  d.name = name;
  d.faults.failure_rate = failure_rate;
  d.faults.latency.kind = LatencyDist::Kind::kConstant;
  d.faults.latency.a = latency_s;
  return d;
}

DependencyConfig Call(const std::string& name, const std::string& service,
                      int64_t attempt_timeout_ns = 0) {
  DependencyConfig d;
  d.name = name;
  d.service = service;
  d.attempt_timeout_ns = attempt_timeout_ns;
  return d;
}

ServiceConfig Svc(const std::string& name, int workers, int queue_capacity,
                  std::vector<DependencyConfig> deps) {
  ServiceConfig s;
  s.name = name;
  s.workers = workers;
  s.queue_capacity = queue_capacity;
  s.dependencies = std::move(deps);
  return s;
}

ScenarioConfig Graph() {
  ScenarioConfig c;
  c.arrivals.rate = 100.0;
  c.duration_ns = 100 * kMs;
  c.workers = 4;
  c.queue_capacity = 1000;
  c.seed = 3;
  c.dependencies = {Call("to_a", "a"), Call("to_b", "b")};
  c.services = {Svc("a", 2, 100, {Call("to_c", "c")}), Svc("b", 2, 100, {Leaf("db", 0.001, 0.3)}),
                Svc("c", 2, 100, {Leaf("kv", 0.001)})};
  return c;
}

// Per service: arrived = ended (every status) + in flight, and nothing left in flight.
void ExpectServicesConserved(const SimResult& r) {
  for (size_t t = 1; t < r.services.size(); ++t) {
    const ServiceTotals& s = r.services[t];
    int64_t ended = 0;
    for (int64_t n : s.by_status) ended += n;
    EXPECT_EQ(s.arrived, ended + s.in_flight) << "tier " << t;
    EXPECT_EQ(s.in_flight, 0) << "tier " << t;
    EXPECT_EQ(s.overran, 0) << "tier " << t;  // deadline propagation
  }
}

int64_t Status(const ServiceTotals& s, OrderStatus st) {
  return s.by_status[static_cast<size_t>(st)];
}

TEST(LiveServicesTest, ConcurrentSubmittersThroughThreeTiers) {
  auto e = LiveEngine::Create(Graph(), LiveOptions());
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_TRUE((*e)->Start().ok());
  std::vector<std::thread> submitters;
  for (int i = 0; i < 3; ++i) {
    submitters.emplace_back([&] {
      for (int k = 0; k < 40; ++k) ASSERT_TRUE((*e)->Submit().ok());
    });
  }
  for (std::thread& t : submitters) t.join();
  ASSERT_TRUE((*e)->WaitIdle(30 * kNsPerSecond));
  const ShutdownReport report = (*e)->Shutdown(5 * kNsPerSecond);
  EXPECT_TRUE(report.internal_error.empty()) << report.internal_error;
  const SimResult& r = **(*e)->result();
  EXPECT_EQ(r.arrived, 120);
  ASSERT_EQ(r.services.size(), 4u);
  ExpectServicesConserved(r);
  // Every order calls a (which calls c) and then b; b fails 30% of its requests.
  EXPECT_EQ(r.services[1].arrived, 120);
  EXPECT_EQ(r.services[3].arrived, 120);
  EXPECT_EQ(Status(r.services[1], OrderStatus::kCompleted), 120);
  EXPECT_EQ(r.services[2].arrived, 120);
  EXPECT_EQ(Status(r.services[2], OrderStatus::kFailed),
            r.by_status[static_cast<size_t>(OrderStatus::kFailed)]);
  // The flat dependency list: root's, then a's, b's and c's, as the simulator labels them.
  EXPECT_EQ((*e)->DependencyLabel(2), "a.to_c");
  EXPECT_EQ((*e)->DependencyLabel(4), "c.kv");
  EXPECT_EQ(r.deps[4].flow.calls, 120);
  // The series end with the services' columns.
  ASSERT_GE(r.ts_columns.size(), 24u);
  EXPECT_EQ(r.ts_columns.back(), "service.c.in_flight");
}

// Services with their own intake (model/service_intake.h): CoDel at one, an adaptive limit at
// another, a static limit at a third, while several threads submit (TSan in CI).
TEST(LiveServicesTest, ServiceIntakesUnderConcurrentSubmitters) {
  ScenarioConfig c = Graph();
  c.workers = 8;
  c.services[0].intake.limit.emplace();  // a: gradient2 (learns from every request)
  c.services[0].intake.limit->initial = 3;
  c.services[1].intake.discipline.kind = QueueDisciplineConfig::Kind::kCodel;  // b
  c.services[1].intake.discipline.codel_target_ns = kMs / 10;
  c.services[1].intake.discipline.codel_interval_ns = kMs;
  c.services[2].intake.limit.emplace();  // c: static 1
  c.services[2].intake.limit->kind = LimitConfig::Kind::kStatic;
  c.services[2].intake.limit->initial = 1;
  auto e = LiveEngine::Create(c, LiveOptions());
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_TRUE((*e)->Start().ok());
  std::vector<std::thread> submitters;
  for (int i = 0; i < 3; ++i) {
    submitters.emplace_back([&] {
      for (int k = 0; k < 40; ++k) ASSERT_TRUE((*e)->Submit().ok());
    });
  }
  for (std::thread& t : submitters) t.join();
  ASSERT_TRUE((*e)->WaitIdle(30 * kNsPerSecond));
  const ShutdownReport report = (*e)->Shutdown(5 * kNsPerSecond);
  EXPECT_TRUE(report.internal_error.empty()) << report.internal_error;
  const SimResult& r = **(*e)->result();
  EXPECT_EQ(r.arrived, 120);
  ExpectServicesConserved(r);
  int64_t ended = 0;
  for (int64_t n : r.by_status) ended += n;
  EXPECT_EQ(ended, 120);
  // Refusals and drops are rejections by their reasons only.
  const ServiceTotals& a = r.services[1];
  const ServiceTotals& b = r.services[2];
  const ServiceTotals& cc = r.services[3];
  EXPECT_EQ(Status(a, OrderStatus::kRejected),
            a.by_reason[static_cast<size_t>(FailReason::kLimited)] +
                a.by_reason[static_cast<size_t>(FailReason::kQueueFull)]);
  EXPECT_EQ(Status(b, OrderStatus::kRejected),
            b.by_reason[static_cast<size_t>(FailReason::kQueueDelay)] +
                b.by_reason[static_cast<size_t>(FailReason::kQueueFull)]);
  // c admits one request at a time: its leaf never has two calls at once.
  EXPECT_LE(r.deps[4].max_load, 1);
  EXPECT_EQ(Status(cc, OrderStatus::kRejected),
            cc.by_reason[static_cast<size_t>(FailReason::kLimited)] +
                cc.by_reason[static_cast<size_t>(FailReason::kQueueFull)]);
}

TEST(LiveServicesTest, ServiceRateLimitsUnderConcurrentSubmitters) {
  // a: a rate limit refusing at once; b: one parking requests up to 20 ms for their permit (per
  // order key), in front of a limit; c: a bursty one parking up to 5 ms. Requests are parked
  // and released by each tier's own thread while several threads submit.
  ScenarioConfig c = Graph();
  c.workers = 8;
  c.num_keys = 4;
  c.services[0].intake.rate_limit.emplace();
  c.services[0].intake.rate_limit->rate = 50.0;
  c.services[0].intake.rate_limit->burst = 2;
  c.services[1].intake.rate_limit.emplace();
  c.services[1].intake.rate_limit->rate = 300.0;
  c.services[1].intake.rate_limit->max_wait_ns = 20 * kMs;
  c.services[1].intake.rate_limit->per_key = true;
  c.services[1].intake.limit.emplace();
  c.services[1].intake.limit->kind = LimitConfig::Kind::kStatic;
  c.services[1].intake.limit->initial = 2;
  c.services[2].intake.rate_limit.emplace();
  c.services[2].intake.rate_limit->rate = 1000.0;
  c.services[2].intake.rate_limit->mode = RateLimitMode::kBursty;
  c.services[2].intake.rate_limit->burst = 3;
  c.services[2].intake.rate_limit->max_wait_ns = 5 * kMs;
  auto e = LiveEngine::Create(c, LiveOptions());
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_TRUE((*e)->Start().ok());
  std::vector<std::thread> submitters;
  for (int i = 0; i < 3; ++i) {
    submitters.emplace_back([&] {
      for (int k = 0; k < 40; ++k) ASSERT_TRUE((*e)->Submit().ok());
    });
  }
  for (std::thread& t : submitters) t.join();
  ASSERT_TRUE((*e)->WaitIdle(30 * kNsPerSecond));
  const ShutdownReport report = (*e)->Shutdown(5 * kNsPerSecond);
  EXPECT_TRUE(report.internal_error.empty()) << report.internal_error;
  const SimResult& r = **(*e)->result();
  EXPECT_EQ(r.arrived, 120);
  ExpectServicesConserved(r);
  int64_t ended = 0;
  for (int64_t n : r.by_status) ended += n;
  EXPECT_EQ(ended, 120);
  // 120 orders at once against a burst of 2: a refused most of its requests at once.
  const ServiceTotals& a = r.services[1];
  EXPECT_GE(a.by_reason[static_cast<size_t>(FailReason::kRateLimited)], 1);
  for (size_t t = 1; t < r.services.size(); ++t) {
    const ServiceTotals& s = r.services[t];
    EXPECT_EQ(Status(s, OrderStatus::kRejected),
              s.by_reason[static_cast<size_t>(FailReason::kRateLimited)] +
                  s.by_reason[static_cast<size_t>(FailReason::kLimited)] +
                  s.by_reason[static_cast<size_t>(FailReason::kQueueFull)])
        << "tier " << t;
  }
}

TEST(LiveServicesTest, ShutdownEndsRequestsParkedForARateLimitPermit) {
  ScenarioConfig c;
  c.workers = 4;
  c.queue_capacity = 100;
  c.dependencies = {Call("to_s", "s")};
  // One permit per 100 s, waits of up to 1000 s: all but the first request park far longer
  // than the test; only the shutdown ends them, none reaching a worker.
  c.services = {Svc("s", 2, 10, {Leaf("fast", 0.001)})};
  c.services[0].intake.rate_limit.emplace();
  c.services[0].intake.rate_limit->rate = 0.01;
  c.services[0].intake.rate_limit->max_wait_ns = 1000 * kNsPerSecond;
  auto e = LiveEngine::Create(c, LiveOptions());
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_TRUE((*e)->Start().ok());
  for (int k = 0; k < 4; ++k) ASSERT_TRUE((*e)->Submit().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const ShutdownReport report = (*e)->Shutdown(50 * kMs);
  EXPECT_TRUE(report.timed_out);
  EXPECT_TRUE(report.internal_error.empty()) << report.internal_error;
  const SimResult& r = **(*e)->result();
  EXPECT_EQ(r.in_flight, 0);
  EXPECT_EQ(r.by_status[static_cast<size_t>(OrderStatus::kCancelled)] +
                r.by_status[static_cast<size_t>(OrderStatus::kCompleted)],
            4);
  EXPECT_GE(report.cancelled, 3);
  ExpectServicesConserved(r);
  const ServiceTotals& s = r.services[1];
  EXPECT_EQ(s.arrived, 4);
  EXPECT_EQ(Status(s, OrderStatus::kRejected), 0);  // parked, not refused
  EXPECT_GE(s.dropped_unstarted, 3);                // their callers had gone
}

TEST(LiveServicesTest, AFullCalleeQueueAnswers503AtOnce) {
  ScenarioConfig c;
  c.workers = 6;
  c.queue_capacity = 100;
  c.dependencies = {Call("to_s", "s")};
  c.services = {Svc("s", 1, 0, {Leaf("slow", 0.3)})};
  auto e = LiveEngine::Create(c, LiveOptions());
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_TRUE((*e)->Start().ok());
  for (int k = 0; k < 6; ++k) ASSERT_TRUE((*e)->Submit().ok());
  ASSERT_TRUE((*e)->WaitIdle(30 * kNsPerSecond));
  (*e)->Shutdown(kNsPerSecond);
  const SimResult& r = **(*e)->result();
  const ServiceTotals& s = r.services[1];
  ExpectServicesConserved(r);
  // One worker, no queue: the calls that found it busy were refused, and their orders failed.
  EXPECT_GE(Status(s, OrderStatus::kRejected), 1);
  EXPECT_EQ(s.by_reason[static_cast<size_t>(FailReason::kQueueFull)],
            Status(s, OrderStatus::kRejected));
  EXPECT_EQ(r.by_status[static_cast<size_t>(OrderStatus::kFailed)],
            Status(s, OrderStatus::kRejected));
  EXPECT_EQ(r.by_status[static_cast<size_t>(OrderStatus::kCompleted)],
            Status(s, OrderStatus::kCompleted));
}

TEST(LiveServicesTest, ShutdownWithRequestsInFlightAtACalleeEndsEverything) {
  ScenarioConfig c;
  c.workers = 4;
  c.queue_capacity = 100;
  c.dependencies = {Call("to_mid", "mid")};
  // The back tier hangs far longer than the test: only the shutdown ends its requests.
  c.services = {Svc("mid", 2, 10, {Call("to_back", "back")}),
                Svc("back", 1, 10, {Leaf("hang", 600.0)})};
  auto e = LiveEngine::Create(c, LiveOptions());
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_TRUE((*e)->Start().ok());
  for (int k = 0; k < 20; ++k) ASSERT_TRUE((*e)->Submit().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const ShutdownReport report = (*e)->Shutdown(50 * kMs);
  EXPECT_TRUE(report.timed_out);
  EXPECT_TRUE(report.internal_error.empty()) << report.internal_error;
  const SimResult& r = **(*e)->result();
  EXPECT_EQ(r.in_flight, 0);
  EXPECT_EQ(r.by_status[static_cast<size_t>(OrderStatus::kCancelled)] +
                r.by_status[static_cast<size_t>(OrderStatus::kRejected)] +
                r.by_status[static_cast<size_t>(OrderStatus::kFailed)],
            20);
  EXPECT_GE(report.cancelled, 1);
  ExpectServicesConserved(r);
  EXPECT_GE(r.services[2].arrived, 1);
}

TEST(LiveServicesTest, ACallerThatTimesOutLeavesTheCalleesWorkWasted) {
  ScenarioConfig c;
  c.workers = 2;
  c.queue_capacity = 100;
  c.dependencies = {Call("to_s", "s", 30 * kMs)};
  c.services = {Svc("s", 2, 10, {Leaf("slow", 0.2)})};
  auto e = LiveEngine::Create(c, LiveOptions());
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_TRUE((*e)->Start().ok());
  for (int k = 0; k < 4; ++k) ASSERT_TRUE((*e)->Submit().ok());
  ASSERT_TRUE((*e)->WaitIdle(30 * kNsPerSecond));
  (*e)->Shutdown(5 * kNsPerSecond);
  const SimResult& r = **(*e)->result();
  EXPECT_EQ(r.by_status[static_cast<size_t>(OrderStatus::kFailed)], 4);
  const ServiceTotals& s = r.services[1];
  ExpectServicesConserved(r);
  EXPECT_EQ(Status(s, OrderStatus::kCompleted), 0);
  // Each request ran out of its propagated deadline (the caller's 30 ms): answered to nobody
  // (wasted) when the caller's own timer went first, or as the caller's timeout otherwise.
  EXPECT_EQ(s.arrived, 4);
  EXPECT_EQ(Status(s, OrderStatus::kFailed) + Status(s, OrderStatus::kExpired), 4);
}

TEST(LiveServicesTest, EachHedgeCopyIsARequestOfItsOwnAndTheLoserIsWasted) {
  // Both copies take 400 ms at a service with a free worker for each: the original (sent 100 ms
  // earlier) answers first, so every hedge loses and its request runs on for nobody. (The wide
  // margins keep this true on a loaded machine, where a thread may wake tens of ms late: the hedge
  // is sent long before the original answers, and the caller takes the winner's answer long
  // before the loser's arrives.)
  ScenarioConfig c;
  c.workers = 4;
  c.queue_capacity = 100;
  c.dependencies = {Call("to_s", "s")};
  c.dependencies[0].hedge.emplace();
  c.dependencies[0].hedge->delay_ns = 100 * kMs;
  c.dependencies[0].hedge->budget_ratio = -1.0;  // no budget: every call hedges
  c.services = {Svc("s", 8, 100, {Leaf("slow", 0.4)})};
  auto e = LiveEngine::Create(c, LiveOptions());
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_TRUE((*e)->Start().ok());
  std::vector<std::thread> submitters;
  for (int i = 0; i < 2; ++i) {
    submitters.emplace_back([&] {
      for (int k = 0; k < 6; ++k) ASSERT_TRUE((*e)->Submit().ok());
    });
  }
  for (std::thread& t : submitters) t.join();
  ASSERT_TRUE((*e)->WaitIdle(30 * kNsPerSecond));
  const ShutdownReport report = (*e)->Shutdown(5 * kNsPerSecond);
  EXPECT_TRUE(report.internal_error.empty()) << report.internal_error;
  const SimResult& r = **(*e)->result();
  ExpectServicesConserved(r);
  EXPECT_EQ(r.by_status[static_cast<size_t>(OrderStatus::kCompleted)], 12);
  const FlowStats& f = r.deps[0].flow;
  EXPECT_EQ(f.hedges, 12);
  EXPECT_EQ(f.calls, 24);
  EXPECT_EQ(f.cancelled, 12);
  const ServiceTotals& s = r.services[1];
  EXPECT_EQ(s.arrived, 24);  // every copy is a request
  // The loser ran on (a worker was free for it) and answered nobody, or was dropped unstarted.
  EXPECT_EQ(s.wasted + s.dropped_unstarted, 12);
  EXPECT_EQ(r.deps[1].flow.calls, 24 - s.dropped_unstarted);
}

TEST(LiveServicesTest, FanOutWithAQuorumToAService) {
  // Three copies, two needed, each failing 30 %: every copy is a request; each is reported to
  // the flow or cancelled once the call is decided. Several threads submit while it runs.
  ScenarioConfig c;
  c.workers = 4;
  c.queue_capacity = 1000;
  c.dependencies = {Call("to_s", "s")};
  c.dependencies[0].fanout = FanOutConfig{3, 2};
  c.services = {Svc("s", 6, 1000, {Leaf("db", 0.001, 0.3)})};
  auto e = LiveEngine::Create(c, LiveOptions());
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_TRUE((*e)->Start().ok());
  std::vector<std::thread> submitters;
  for (int i = 0; i < 3; ++i) {
    submitters.emplace_back([&] {
      for (int k = 0; k < 30; ++k) ASSERT_TRUE((*e)->Submit().ok());
    });
  }
  for (std::thread& t : submitters) t.join();
  ASSERT_TRUE((*e)->WaitIdle(30 * kNsPerSecond));
  const ShutdownReport report = (*e)->Shutdown(5 * kNsPerSecond);
  EXPECT_TRUE(report.internal_error.empty()) << report.internal_error;
  const SimResult& r = **(*e)->result();
  ExpectServicesConserved(r);
  EXPECT_EQ(r.arrived, 90);
  const FlowStats& f = r.deps[0].flow;
  EXPECT_EQ(f.calls, 270);
  EXPECT_EQ(f.successes + f.failures + f.cancelled, f.calls);
  EXPECT_EQ(r.services[1].arrived, 270);
  // P(at least 2 of 3 succeed) = 0.784: well away from both ends.
  const int64_t completed = r.by_status[static_cast<size_t>(OrderStatus::kCompleted)];
  EXPECT_GT(completed, 45);
  EXPECT_LT(completed, 90);
}

TEST(LiveServicesTest, ShutdownWakesARoundWaitingForAHangingService) {
  ScenarioConfig c;
  c.workers = 3;
  c.queue_capacity = 100;
  c.dependencies = {Call("to_s", "s")};
  c.dependencies[0].hedge.emplace();
  c.dependencies[0].hedge->delay_ns = 2 * kMs;
  c.dependencies[0].hedge->max_hedges = 2;
  c.services = {Svc("s", 2, 10, {Leaf("hang", 600.0)})};
  auto e = LiveEngine::Create(c, LiveOptions());
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_TRUE((*e)->Start().ok());
  for (int k = 0; k < 6; ++k) ASSERT_TRUE((*e)->Submit().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  const ShutdownReport report = (*e)->Shutdown(30 * kMs);
  EXPECT_TRUE(report.timed_out);
  EXPECT_TRUE(report.internal_error.empty()) << report.internal_error;
  const SimResult& r = **(*e)->result();
  EXPECT_EQ(r.in_flight, 0);
  EXPECT_GE(report.cancelled, 1);
  ExpectServicesConserved(r);
  EXPECT_GE(r.deps[0].flow.hedges, 1);
}

TEST(LiveServicesTest, AHedgedLeafWithACapacityLimitInAServiceIsStillRefused) {
  ScenarioConfig c = Graph();
  c.dependencies[0].hedge.emplace();  // a hedged call to a service: runs
  c.services[1].dependencies[0].hedge.emplace();
  c.services[1].dependencies[0].faults.capacity.max_in_service = 2;
  auto e = LiveEngine::Create(c, LiveOptions());
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("services[b].dependencies[db].hedge with a capacity limit"),
            std::string::npos)
      << e.status();
}

TEST(LiveServicesTest, TooManyWorkerThreadsAcrossServicesAreRefused) {
  ScenarioConfig c = Graph();
  for (ServiceConfig& s : c.services) s.workers = 40'000;
  auto e = LiveEngine::Create(c, LiveOptions());
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("add up to 120004 worker threads"), std::string::npos)
      << e.status();
}

TEST(ServiceAccountingTest, OutcomeMapping) {
  const int64_t until = 100;
  EXPECT_TRUE(ChildAnswer(OrderStatus::kCompleted, FailReason::kNone, until, until, false).ok());
  EXPECT_EQ(ChildAnswer(OrderStatus::kFailed, FailReason::kExhausted, until, until, false),
            Outcome::Http(503));
  EXPECT_EQ(ChildAnswer(OrderStatus::kExpired, FailReason::kNone, until, until, false).kind,
            OutcomeKind::kTimeout);
  EXPECT_EQ(ChildAnswer(OrderStatus::kFailed, FailReason::kDeadline, until, until, true).kind,
            OutcomeKind::kDeadlineExceeded);
  // The service's own deadline came first: 504.
  EXPECT_EQ(ChildAnswer(OrderStatus::kExpired, FailReason::kNone, 50, until, false),
            Outcome::Http(504));
  EXPECT_EQ(ChildDeadline(kNoDeadline, 0, 7), kNoDeadline);
  EXPECT_EQ(ChildDeadline(kNoDeadline, 10, 7), 17);
  EXPECT_EQ(ChildDeadline(12, 10, 7), 12);
}

}  // namespace
}  // namespace rlab::live_services_test
