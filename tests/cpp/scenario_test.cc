#include "rlab/model/scenario.h"

#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlab/core/clock.h"

namespace rlab::scenario_test {
namespace {

constexpr int64_t kS = kNsPerSecond;

std::string Check(const ScenarioConfig& c) {
  const absl::Status s = ValidateScenario(c);
  return s.ok() ? "OK" : std::string(s.message());
}

ScenarioConfig Valid() {
  ScenarioConfig c;
  c.dependencies.emplace_back();  // "payment" with every default
  return c;
}

// inventory -> pricing -> payment, every policy present.
ScenarioConfig Rich() {
  ScenarioConfig c;
  c.arrivals.kind = ArrivalConfig::Kind::kClosedLoop;
  c.arrivals.clients = 50;
  c.arrivals.think_time = {LatencyDist::Kind::kExponential, 0.5, 0.0, {}, {}};
  c.order_deadline_ns = 2 * kS;
  DependencyConfig inventory;
  inventory.name = "inventory";
  inventory.bulkhead = BulkheadConfig{};
  DependencyConfig pricing;
  pricing.name = "pricing";
  pricing.fallback.kind = FallbackConfig::Kind::kCacheOrDefault;
  pricing.throttle = ThrottleConfig{};
  DependencyConfig payment;
  payment.faults.failure_rate = 0.3;
  FaultPhase outage;
  outage.name = "outage";
  outage.start_ns = 20 * kS;
  outage.end_ns = 35 * kS;
  outage.failure_rate = 1.0;
  payment.faults.phases = {outage};
  payment.retry = RetryConfig{};
  payment.breaker = BreakerConfig{};
  payment.token_bucket = TokenBucketConfig{};
  payment.attempt_timeout_ns = kS / 2;
  payment.charges = true;
  c.dependencies = {inventory, pricing, payment};
  return c;
}

TEST(ValidateScenarioTest, ValidScenariosPass) {
  EXPECT_EQ(Check(Valid()), "OK");
  EXPECT_EQ(Check(Rich()), "OK");
}

TEST(ValidateScenarioTest, TopLevelFields) {
  ScenarioConfig c = Valid();
  c.workers = 0;
  EXPECT_EQ(Check(c), "workers must be an integer in [1, 100000], got 0");
  c = Valid();
  c.queue_capacity = -1;
  EXPECT_EQ(Check(c), "queue_capacity must be an integer in [0, 10000000], got -1");
  c = Valid();
  c.queue_capacity = 0;  // every order is rejected or handed straight over: an experiment too
  EXPECT_EQ(Check(c), "OK");
  c.duration_ns = 0;
  EXPECT_EQ(Check(c), "duration must be a finite number in (0, 1e+06], got 0");
  c = Valid();
  c.order_deadline_ns = -kS;
  EXPECT_EQ(Check(c), "order_deadline must be a finite number in [0, 1e+06], got -1");
  c = Valid();
  c.num_keys = 0;
  EXPECT_EQ(Check(c), "num_keys must be an integer in [1, 1000000000], got 0");
}

TEST(ValidateScenarioTest, PoissonAndConstantRates) {
  ScenarioConfig c = Valid();
  c.arrivals.rate = 0;
  EXPECT_EQ(Check(c), "arrivals.rate must be a finite number in (0, 1e+07], got 0");
  c.arrivals.rate = std::numeric_limits<double>::infinity();
  EXPECT_EQ(Check(c), "arrivals.rate must be a finite number in (0, 1e+07], got inf");
  c.arrivals.kind = ArrivalConfig::Kind::kConstant;
  c.arrivals.rate = 2e7;
  EXPECT_EQ(Check(c), "arrivals.rate must be a finite number in (0, 1e+07], got 2e+07");
  // The rate is ignored by the kinds that do not use it.
  c.arrivals.kind = ArrivalConfig::Kind::kClosedLoop;
  EXPECT_EQ(Check(c), "OK");
}

TEST(ValidateScenarioTest, Schedule) {
  ScenarioConfig c = Valid();
  c.arrivals.kind = ArrivalConfig::Kind::kSchedule;
  EXPECT_EQ(Check(c), "arrivals.segments must have at least one segment");
  c.arrivals.schedule = {
      {0, 10 * kS, 100, 100}, {10 * kS, 12 * kS, 1000, 1000}, {20 * kS, 30 * kS, 100, 0}};
  EXPECT_EQ(Check(c), "OK");
  ScenarioConfig bad = c;
  bad.arrivals.schedule[1].end_ns = 10 * kS;
  EXPECT_EQ(Check(bad), "arrivals.segments[1].end must be greater than start (10), got 10");
  bad = c;
  bad.arrivals.schedule[0].start_ns = -kS;
  EXPECT_EQ(Check(bad), "arrivals.segments[0].start must be a finite number in [0, 1e+06], got -1");
  bad = c;
  bad.arrivals.schedule[2].rate_end = -1;
  EXPECT_EQ(Check(bad),
            "arrivals.segments[2].rate_end must be a finite number in [0, 1e+07], got -1");
  bad = c;
  bad.arrivals.schedule[1].rate_start = std::nan("");
  EXPECT_EQ(Check(bad),
            "arrivals.segments[1].rate_start must be a finite number in [0, 1e+07], got nan");
  bad = c;
  bad.arrivals.schedule[2].start_ns = 11 * kS;
  EXPECT_EQ(Check(bad),
            "arrivals.segments[2].start must be >= segments[1].end (12), got 11: "
            "segments must be sorted and must not overlap");
  bad = c;
  for (RateSegment& s : bad.arrivals.schedule) s.rate_start = s.rate_end = 0;
  EXPECT_EQ(Check(bad), "arrivals.segments must have a positive rate somewhere");
}

TEST(ValidateScenarioTest, Trace) {
  ScenarioConfig c = Valid();
  c.arrivals.kind = ArrivalConfig::Kind::kTrace;
  EXPECT_EQ(Check(c), "arrivals.times must have at least one arrival time");
  c.arrivals.trace_ns = {0, kS, kS, 3 * kS};  // equal times are a burst
  EXPECT_EQ(Check(c), "OK");
  c.arrivals.trace_ns = {0, 2 * kS, kS};
  EXPECT_EQ(Check(c),
            "arrivals.times must be in ascending order, got times[2] = 1 after times[1] = 2");
  c.arrivals.trace_ns = {-kS / 2, kS};
  EXPECT_EQ(Check(c), "arrivals.times[0] must be a finite number in [0, 1e+06], got -0.5");
}

TEST(ValidateScenarioTest, ClosedLoop) {
  ScenarioConfig c = Rich();
  c.arrivals.clients = 0;
  EXPECT_EQ(Check(c), "arrivals.clients must be an integer in [1, 1000000], got 0");
  c = Rich();
  c.arrivals.think_time.a = -1;
  EXPECT_EQ(Check(c), "arrivals.think_time.mean must be a finite number in [0, 1e+06], got -1");
}

TEST(ValidateScenarioTest, DependencyCountAndNames) {
  ScenarioConfig c;
  EXPECT_EQ(Check(c), "dependencies must have between 1 and 16 entries, got 0");
  for (int i = 0; i < 17; ++i) {
    c.dependencies.emplace_back();
    // StrCat, not "d" + std::to_string(i): GCC 12 at -O3 reports a false -Wrestrict there.
    c.dependencies.back().name = absl::StrCat("d", i);
  }
  EXPECT_EQ(Check(c), "dependencies must have between 1 and 16 entries, got 17");
  c.dependencies.pop_back();
  EXPECT_EQ(Check(c), "OK");

  c = Rich();
  c.dependencies[1].name = "";
  EXPECT_EQ(Check(c), "dependencies[1].name must not be empty");
  c.dependencies[1].name = "pay-ment";
  EXPECT_EQ(Check(c),
            "dependencies[1].name must contain only letters, digits and underscores, got "
            "\"pay-ment\"");
  c.dependencies[1].name = "a.b";
  EXPECT_THAT(Check(c), ::testing::HasSubstr("got \"a.b\""));
  c.dependencies[1].name = "Pricing_V2";
  EXPECT_EQ(Check(c), "OK");
  c.dependencies[2].name = "inventory";
  EXPECT_EQ(Check(c), "dependencies[2].name \"inventory\" is already used by dependencies[0]");
  c.dependencies[2].name = "workers";
  EXPECT_EQ(Check(c),
            "dependencies[2].name must not be \"workers\": it is a scenario field, and paths "
            "would be ambiguous");
  // Every field of the scenario's table is reserved (intake and services included), and the
  // seed and the run options, which rl.Scenario holds beside them.
  for (const char* reserved : {"intake", "services", "dependencies", "num_keys", "seed",
                               "sample_every", "record_events"}) {
    c.dependencies[2].name = reserved;
    EXPECT_EQ(Check(c), absl::StrCat("dependencies[2].name must not be \"", reserved,
                                     "\": it is a scenario field, and paths would be ambiguous"));
  }
}

TEST(ValidateScenarioTest, FaultsAreCheckedUnderTheDependencyName) {
  ScenarioConfig c = Rich();
  c.dependencies[2].faults.failure_rate = -0.1;
  EXPECT_EQ(Check(c), "payment.faults.failure_rate must be a finite number in [0, 1], got -0.1");
  c = Rich();
  c.dependencies[0].faults.latency = {LatencyDist::Kind::kExponential, -1, 0, {}, {}};
  EXPECT_EQ(Check(c),
            "inventory.faults.latency.mean must be a finite number in [0, 1e+06], got -1");
  c = Rich();
  c.dependencies[2].faults.phases[0].end_ns = 5 * kS;
  EXPECT_EQ(Check(c), "payment.faults.phases[outage].end must be greater than start (20), got 5");
}

TEST(ValidateScenarioTest, PoliciesArePrefixedWithTheirPath) {
  ScenarioConfig c = Rich();
  c.dependencies[2].breaker->open_for_ns = 0;
  EXPECT_EQ(Check(c), "payment.breaker.open_for must be a finite number in (0, 1e+06], got 0");
  c = Rich();
  c.dependencies[2].retry->max_attempts = 0;
  EXPECT_EQ(Check(c), "payment.retry.max_attempts must be an integer in [1, 1000000], got 0");
  c = Rich();
  c.dependencies[2].retry->backoff.multiplier = 0.5;
  EXPECT_THAT(Check(c), ::testing::StartsWith("payment.retry.backoff.multiplier must be"));
  c = Rich();
  c.dependencies[2].token_bucket->token_ratio = 0;
  EXPECT_THAT(Check(c), ::testing::StartsWith("payment.budget.token_ratio must be"));
  c = Rich();
  c.dependencies[2].token_bucket.reset();
  c.dependencies[2].ratio_budget = RatioBudgetConfig{};
  EXPECT_EQ(Check(c), "OK");
  c.dependencies[2].ratio_budget->ratio = -1;
  EXPECT_THAT(Check(c), ::testing::StartsWith("payment.budget.ratio must be"));
  c = Rich();
  c.dependencies[2].ratio_budget = RatioBudgetConfig{};
  EXPECT_EQ(Check(c), "payment.budget must be either a token bucket or a ratio budget, not both");
  c = Rich();
  c.dependencies[0].bulkhead->max_concurrent = 0;
  EXPECT_THAT(Check(c), ::testing::StartsWith("inventory.bulkhead.max_concurrent must be"));
  c = Rich();
  c.dependencies[1].throttle->k = 0.5;
  EXPECT_THAT(Check(c), ::testing::StartsWith("pricing.throttle.k must be"));
}

TEST(ValidateScenarioTest, AttemptTimeoutAndFallback) {
  ScenarioConfig c = Rich();
  c.dependencies[2].attempt_timeout_ns = -1;
  EXPECT_EQ(Check(c), "payment.attempt_timeout must be a finite number in [0, 1e+06], got -1e-09");
  c = Rich();
  c.dependencies[1].fallback.cache_capacity = 0;
  EXPECT_EQ(Check(c), "pricing.fallback.cache_capacity must be an integer in [1, 10000000], got 0");
  c = Rich();
  c.dependencies[1].fallback.cache_ttl_ns = 0;
  EXPECT_EQ(Check(c), "pricing.fallback.cache_ttl must be a finite number in (0, 1e+06], got 0");
  // Checked by the table whatever the kind, as the Python Fallback always checked them.
  c.dependencies[1].fallback.kind = FallbackConfig::Kind::kDefault;
  EXPECT_EQ(Check(c), "pricing.fallback.cache_ttl must be a finite number in (0, 1e+06], got 0");
}

TEST(ValidateScenarioTest, AChargingDependencyCannotHaveAFallback) {
  // A fallback on a write would complete the order as paid while nothing was charged.
  ScenarioConfig c = Rich();
  for (FallbackConfig::Kind kind : {FallbackConfig::Kind::kCache, FallbackConfig::Kind::kDefault,
                                    FallbackConfig::Kind::kCacheOrDefault}) {
    c.dependencies[2].fallback.kind = kind;
    EXPECT_NE(Check(c).find("payment.fallback must be \"none\" on a dependency that charges"),
              std::string::npos)
        << Check(c);
  }
  EXPECT_EQ(Check(c),
            "payment.fallback must be \"none\" on a dependency that charges (a failed charge "
            "cannot be served from a fallback: the order would complete without being charged), "
            "got \"cache_or_default\"");
  // The same fallback on a dependency that does not charge is fine.
  c.dependencies[2].charges = false;
  EXPECT_EQ(Check(c), "OK");
}

TEST(ValidateScenarioTest, TheFirstBadDependencyIsReported) {
  ScenarioConfig c = Rich();
  c.dependencies[0].faults.hang_ns = 0;
  c.dependencies[2].faults.hang_ns = 0;
  EXPECT_EQ(Check(c), "inventory.faults.hang must be a finite number in (0, 1e+06], got 0");
}

}  // namespace
}  // namespace rlab::scenario_test
