// Service graphs: a service's own intake (model/service_intake.h), the state machine both
// engines run at a service's job queue, and its validation.

#include "rlab/model/service_intake.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/model/scenario.h"
#include "rlab/model/service_accounting.h"

namespace rlab::service_intake_test {
namespace {

constexpr int64_t kMs = 1'000'000;

// A queued request: when it joined.
struct Job {
  int id = 0;
  int64_t enqueued_ns = 0;
};

IntakeConfig WithDiscipline(QueueDisciplineConfig::Kind kind) {
  IntakeConfig c;
  c.discipline.kind = kind;
  return c;
}

IntakeConfig WithStaticLimit(int64_t limit) {
  IntakeConfig c;
  c.limit.emplace();
  c.limit->kind = LimitConfig::Kind::kStatic;
  c.limit->initial = limit;
  return c;
}

// Takes one job (dropped ones collected), as an engine's worker does.
bool TakeOne(ServiceIntake& in, std::deque<Job>& q, int64_t now_ns, std::vector<int>* dropped,
             Job* out) {
  return in.Take(
      q, now_ns, [](const Job& j) { return j.enqueued_ns; },
      [dropped](Job j) { dropped->push_back(j.id); }, out);
}

TEST(ServiceIntakeTest, DefaultIsFifoWithoutLimit) {
  ServiceIntake in{IntakeConfig{}};
  EXPECT_TRUE(in.fifo());
  EXPECT_FALSE(in.has_limit());
  std::deque<Job> q = {{1, 0}, {2, kMs}, {3, 2 * kMs}};
  std::vector<int> dropped;
  Job j;
  for (int want : {1, 2, 3}) {
    ASSERT_TRUE(TakeOne(in, q, 100 * kMs, &dropped, &j));
    EXPECT_EQ(j.id, want);
  }
  EXPECT_TRUE(dropped.empty());
  // Without a limit every request is admitted, holding nothing.
  for (int i = 0; i < 1000; ++i) {
    const std::optional<ServicePermit> p = in.Admit(0);
    ASSERT_TRUE(p.has_value());
    EXPECT_FALSE(p->held);
  }
}

TEST(ServiceIntakeTest, LifoServesTheNewestFirst) {
  ServiceIntake in{WithDiscipline(QueueDisciplineConfig::Kind::kLifo)};
  std::deque<Job> q = {{1, 0}, {2, kMs}, {3, 2 * kMs}};
  std::vector<int> dropped;
  Job j;
  for (int want : {3, 2, 1}) {
    ASSERT_TRUE(TakeOne(in, q, 3 * kMs, &dropped, &j));
    EXPECT_EQ(j.id, want);
  }
  EXPECT_TRUE(dropped.empty());
}

TEST(ServiceIntakeTest, AdaptiveLifoSwitchesOnceTheOldestWaitedTheThreshold) {
  IntakeConfig c = WithDiscipline(QueueDisciplineConfig::Kind::kAdaptiveLifo);
  c.discipline.lifo_threshold_ns = 10 * kMs;
  ServiceIntake in{c};
  std::vector<int> dropped;
  Job j;
  std::deque<Job> q = {{1, 0}, {2, kMs}};
  ASSERT_TRUE(TakeOne(in, q, 5 * kMs, &dropped, &j));  // oldest waited 5 ms: FIFO
  EXPECT_EQ(j.id, 1);
  q = {{1, 0}, {2, kMs}};
  ASSERT_TRUE(TakeOne(in, q, 20 * kMs, &dropped, &j));  // 20 ms: congested, LIFO
  EXPECT_EQ(j.id, 2);
}

TEST(ServiceIntakeTest, CodelDropsUnderAStandingQueueAndNotWhenIdle) {
  IntakeConfig c = WithDiscipline(QueueDisciplineConfig::Kind::kCodel);
  c.discipline.codel_target_ns = 5 * kMs;
  c.discipline.codel_interval_ns = 100 * kMs;
  // Idle: every request is taken as soon as it comes (sojourn 0): never a drop.
  {
    ServiceIntake in{c};
    std::vector<int> dropped;
    Job j;
    for (int i = 0; i < 1000; ++i) {
      std::deque<Job> q = {{i, i * kMs}};
      ASSERT_TRUE(TakeOne(in, q, i * kMs, &dropped, &j));
    }
    EXPECT_TRUE(dropped.empty());
  }
  // A standing queue: every request waited 50 ms (> target) for a second: drops start after an
  // interval above target, and a dropped request is handed to `drop`, not served.
  {
    ServiceIntake in{c};
    std::vector<int> dropped;
    std::vector<int> served;
    std::deque<Job> q;
    int next = 0;
    for (int64_t t = 0; t < 1000 * kMs; t += kMs) {
      q.push_back({next++, t});
      while (!q.empty() && t - q.front().enqueued_ns >= 50 * kMs) {
        Job j;
        if (TakeOne(in, q, t, &dropped, &j)) served.push_back(j.id);
        break;  // one worker: one take per ms
      }
    }
    EXPECT_GT(dropped.size(), 0u);
    EXPECT_GT(served.size(), dropped.size());
    for (int id : dropped) {
      EXPECT_EQ(std::count(served.begin(), served.end(), id), 0) << id;
    }
  }
}

TEST(ServiceIntakeTest, CodelDropsAtDequeueThenServesTheNext) {
  IntakeConfig c = WithDiscipline(QueueDisciplineConfig::Kind::kCodel);
  c.discipline.codel_target_ns = 1 * kMs;
  c.discipline.codel_interval_ns = 2 * kMs;
  ServiceIntake in{c};
  std::vector<int> dropped;
  Job j;
  // Above target with others behind it: CoDel starts timing (first_above_time), serves.
  std::deque<Job> q = {{0, 0}, {1, 0}};
  ASSERT_TRUE(TakeOne(in, q, 10 * kMs, &dropped, &j));
  EXPECT_EQ(j.id, 0);
  EXPECT_TRUE(dropped.empty());
  // Still above target an interval later: the head is dropped (handed to `drop`, not
  // served) and the next one served, in the same dequeue.
  q = {{1, 0}, {2, 0}, {3, 0}};
  ASSERT_TRUE(TakeOne(in, q, 20 * kMs, &dropped, &j));
  EXPECT_EQ(dropped, std::vector<int>{1});
  EXPECT_EQ(j.id, 2);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_TRUE(in.discipline().dropping());
  // CoDel never drops the last waiting request (RFC 8289: a queue below one packet is never
  // "above target"), so a worker always gets one.
  ASSERT_TRUE(TakeOne(in, q, 40 * kMs, &dropped, &j));
  EXPECT_EQ(j.id, 3);
}

TEST(ServiceIntakeTest, LimitCapsAdmittedRequestsAndReleasesOnEnd) {
  ServiceIntake in{WithStaticLimit(3)};
  ASSERT_TRUE(in.has_limit());
  std::vector<ServicePermit> held;
  for (int i = 0; i < 3; ++i) {
    std::optional<ServicePermit> p = in.Admit(i * kMs);
    ASSERT_TRUE(p.has_value());
    EXPECT_TRUE(p->held);
    held.push_back(*p);
  }
  EXPECT_FALSE(in.Admit(3 * kMs).has_value());  // over the limit: refused at once
  // An abandoned permit (the queue was full after all) frees its place without a sample.
  in.Abandon(held.back());
  EXPECT_FALSE(held.back().held);
  held.pop_back();
  std::optional<ServicePermit> p = in.Admit(4 * kMs);
  ASSERT_TRUE(p.has_value());
  held.push_back(*p);
  EXPECT_FALSE(in.Admit(5 * kMs).has_value());
  // Ends of each kind release it (completed: a success sample; expired: a drop).
  in.OnEnd(held[0], OrderStatus::kCompleted, FailReason::kNone, 10 * kMs, 0.5);
  in.OnEnd(held[1], OrderStatus::kExpired, FailReason::kNone, 10 * kMs, 0.5);
  EXPECT_FALSE(held[0].held);
  EXPECT_EQ(in.limiter()->Peek().inflight, 1);
  // Ending twice (or a permit never held) changes nothing.
  in.OnEnd(held[0], OrderStatus::kCompleted, FailReason::kNone, 11 * kMs, 0.5);
  EXPECT_EQ(in.limiter()->Peek().inflight, 1);
  const LimiterSnapshot s = in.limiter()->Peek();
  EXPECT_EQ(s.succeeded, 1);
  EXPECT_EQ(s.dropped, 1);
}

TEST(ServiceIntakeTest, AimdLimitLearnsFromDrops) {
  IntakeConfig c;
  c.limit.emplace();
  c.limit->kind = LimitConfig::Kind::kAimd;
  c.limit->initial = 20;
  c.limit->min = 1;
  ServiceIntake in{c};
  const int64_t before = in.limiter()->Peek().limit;
  for (int i = 0; i < 10; ++i) {
    std::optional<ServicePermit> p = in.Admit(i * kMs);
    ASSERT_TRUE(p.has_value());
    // Failed on its deadline: the service ran out of time, a drop (as at the root).
    in.OnEnd(*p, OrderStatus::kFailed, FailReason::kDeadline, (i + 1) * kMs, 0.5);
  }
  EXPECT_LT(in.limiter()->Peek().limit, before);
}

TEST(ServiceIntakeTest, ValidatorNamesTheServicePath) {
  // A service's intake is checked by the scenario's tables and rules, under the service's path.
  ScenarioConfig c;
  c.dependencies.emplace_back();
  c.dependencies[0].name = "call";
  c.dependencies[0].service = "b";
  ServiceConfig& s = c.services.emplace_back();
  s.name = "b";
  s.dependencies.emplace_back().name = "d";
  EXPECT_TRUE(ValidateScenario(c).ok()) << ValidateScenario(c);
  s.intake.shedding.emplace();
  absl::Status st = ValidateScenario(c);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.message().find("services[b].intake.shedding"), 0u) << st;
  s.intake.shedding.reset();
  s.intake.rate_limit.emplace();  // modelled at a service: valid, its fields checked by path
  EXPECT_TRUE(ValidateScenario(c).ok());
  s.intake.rate_limit->rate = -1.0;
  st = ValidateScenario(c);
  EXPECT_NE(st.message().find("services[b].intake.rate_limit.rate"), std::string::npos) << st;
  s.intake.rate_limit.reset();
  s.intake.discipline.kind = QueueDisciplineConfig::Kind::kCodel;
  s.intake.discipline.codel_target_ns = -1;
  st = ValidateScenario(c);
  EXPECT_NE(st.message().find("services[b].intake.discipline.codel_target"), std::string::npos)
      << st;
  s.intake.discipline.codel_target_ns = 5 * kMs;
  s.intake.limit.emplace();
  s.intake.limit->min = 0;
  st = ValidateScenario(c);
  EXPECT_NE(st.message().find("services[b].intake.limit.min"), std::string::npos) << st;
}

IntakeConfig WithRate(double rate, int64_t burst, int64_t max_wait_ns, bool per_key = false) {
  IntakeConfig c;
  c.rate_limit.emplace();
  c.rate_limit->rate = rate;
  c.rate_limit->burst = burst;
  c.rate_limit->max_wait_ns = max_wait_ns;
  c.rate_limit->per_key = per_key;
  return c;
}

TEST(ServiceIntakeTest, NoRateLimitNeverWaits) {
  ServiceIntake in(IntakeConfig{});
  EXPECT_EQ(in.rate(), nullptr);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(in.ReserveRate(0, 0, kNoDeadline), 0);
}

TEST(ServiceIntakeTest, RateLimitAdmitsTheBurstThenRefusesWithoutMaxWait) {
  ServiceIntake in(WithRate(10.0, 3, 0));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(in.ReserveRate(0, 0, kNoDeadline), 0) << i;
  EXPECT_FALSE(in.ReserveRate(0, 0, kNoDeadline).has_value());
  // One permit every 100 ms afterwards.
  EXPECT_EQ(in.ReserveRate(0, 100 * kMs, kNoDeadline), 0);
  EXPECT_FALSE(in.ReserveRate(0, 150 * kMs, kNoDeadline).has_value());
  EXPECT_EQ(in.rate()->counts().refused, 2);
}

TEST(ServiceIntakeTest, RateLimitWaitsWithinMaxWaitAndTheRequestsDeadline) {
  ServiceIntake in(WithRate(10.0, 1, 250 * kMs));
  EXPECT_EQ(in.ReserveRate(0, 0, kNoDeadline), 0);
  EXPECT_EQ(in.ReserveRate(0, 0, kNoDeadline), 100 * kMs);
  // Due at 200 ms: after a deadline at 150 ms it is of no use (refused, nothing reserved).
  EXPECT_FALSE(in.ReserveRate(0, 0, 150 * kMs).has_value());
  EXPECT_EQ(in.ReserveRate(0, 0, 300 * kMs), 200 * kMs);
  EXPECT_FALSE(in.ReserveRate(0, 0, kNoDeadline).has_value());  // 300 ms > max_wait
  EXPECT_EQ(in.rate()->counts().waits, 2);
}

TEST(ServiceIntakeTest, PerKeyRateLimitKeepsARatePerKey) {
  ServiceIntake in(WithRate(10.0, 1, 0, /*per_key=*/true));
  EXPECT_EQ(in.ReserveRate(1, 0, kNoDeadline), 0);
  EXPECT_FALSE(in.ReserveRate(1, 0, kNoDeadline).has_value());
  EXPECT_EQ(in.ReserveRate(2, 0, kNoDeadline), 0);
}

TEST(ServiceIntakeTest, RefusalsAreCountedByReason) {
  ServiceTotals t;
  CountServiceArrival(t);
  CountServiceRejected(t, FailReason::kLimited);
  CountServiceArrival(t);
  CountServiceRejected(t);
  CountServiceArrival(t);
  CountServiceRejected(t, FailReason::kRateLimited);
  EXPECT_EQ(t.by_status[static_cast<size_t>(OrderStatus::kRejected)], 3);
  EXPECT_EQ(t.by_reason[static_cast<size_t>(FailReason::kRateLimited)], 1);
  EXPECT_EQ(t.by_reason[static_cast<size_t>(FailReason::kLimited)], 1);
  EXPECT_EQ(t.by_reason[static_cast<size_t>(FailReason::kQueueFull)], 1);
  EXPECT_EQ(ChildRejectedAnswer().http_status, 503);
}

}  // namespace
}  // namespace rlab::service_intake_test
