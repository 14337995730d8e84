// The time series both engines write (model/series_row.h): its columns and its rows.
#include "rlab/model/series_row.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "rlab/model/scenario.h"

namespace rlab::series_row_test {
namespace {

using ::testing::ElementsAre;

constexpr int64_t kS = 1'000'000'000;

LimitConfig StaticLimit(int64_t n) {
  LimitConfig c;
  c.kind = LimitConfig::Kind::kStatic;
  c.initial = n;
  c.min = 1;
  c.max = 200;
  return c;
}

// Two dependencies: "plain" without policies, "guarded" with a breaker, a limit and a rate limit.
struct TwoDeps {
  TwoDeps() {
    DependencyConfig plain;
    plain.name = "plain";
    DependencyConfig guarded;
    guarded.name = "guarded";
    guarded.breaker = BreakerConfig{};
    guarded.limit = StaticLimit(2);
    guarded.rate_limit = RateLimitConfig{};
    config.dependencies = {plain, guarded};
    EXPECT_TRUE(ValidateScenario(config).ok()) << ValidateScenario(config);
    for (const DependencyConfig& d : config.dependencies) deps.emplace_back(d);
    layout.labels = {"plain", "guarded"};
  }
  std::vector<std::string> Row(SeriesRow& series, int64_t now_ns, const SeriesCounts& now) {
    values.clear();
    series.Put(now_ns, layout, now, deps, nullptr, nullptr,
               [this](double v) { values.push_back(v); });
    return SeriesColumns(layout, deps);
  }
  ScenarioConfig config;
  std::vector<DependencyRuntime> deps;
  SeriesLayout layout;
  std::vector<double> values;
};

TEST(SeriesRowTest, ColumnsFollowTheDependenciesPolicies) {
  TwoDeps r;
  const std::vector<std::string> c = SeriesColumns(r.layout, r.deps);
  ASSERT_EQ(c.size(), 16u + 2 * 7 + 3 + 2);
  EXPECT_EQ(c[0], "t");
  EXPECT_EQ(c[7], "failed_exhausted");
  EXPECT_EQ(c[13], "queue_depth");
  EXPECT_EQ(c[16], "plain.calls");
  EXPECT_EQ(c[23], "guarded.calls");
  // Optional columns come after every dependency's fixed ones, only where the policy exists.
  EXPECT_THAT(std::vector<std::string>(c.end() - 5, c.end()),
              ElementsAre("guarded.limit", "guarded.limit_inflight", "guarded.rejected_limit",
                          "guarded.rate_limited", "guarded.rate_limit_waits"));
  SeriesLayout intake = r.layout;
  intake.intake_discipline = intake.intake_limit = intake.intake_rate = true;
  const std::vector<std::string> all = SeriesColumns(intake, r.deps);
  EXPECT_EQ(all.size(), c.size() + 2 + 3 + 2);
  EXPECT_EQ(all.back(), "intake.rate_limit_waits");
}

TEST(SeriesRowTest, RowsHoldDeltasOfCountersAndLevelsAsTheyAre) {
  TwoDeps r;
  SeriesRow series(2);
  SeriesCounts now;
  now.deps.resize(2);
  now.arrived = 10;
  now.by_status[static_cast<size_t>(OrderStatus::kCompleted)] = 7;
  now.queue_depth = 3;
  now.deps[0].calls = 12;
  now.deps[0].in_flight = 2;
  const std::vector<std::string> columns = r.Row(series, kS, now);
  ASSERT_EQ(r.values.size(), columns.size());
  auto at = [&](const std::string& name) {
    for (size_t i = 0; i < columns.size(); ++i) {
      if (columns[i] == name) return r.values[i];
    }
    ADD_FAILURE() << name;
    return std::nan("");
  };
  EXPECT_EQ(at("t"), 1.0);
  EXPECT_EQ(at("arrivals"), 10);
  EXPECT_EQ(at("completed"), 7);
  EXPECT_EQ(at("queue_depth"), 3);
  EXPECT_EQ(at("plain.calls"), 12);
  EXPECT_TRUE(std::isnan(at("plain.budget_tokens")));  // no token bucket
  EXPECT_EQ(at("guarded.breaker_state"), 0);           // closed
  EXPECT_EQ(at("guarded.limit"), 2);

  // The next row: counters as differences, levels (queue, in flight) as they are.
  now.arrived = 15;
  now.queue_depth = 1;
  now.deps[0].calls = 20;
  ASSERT_TRUE(r.deps[1].limiter->TryAcquire(kS).has_value());
  ASSERT_TRUE(r.deps[1].limiter->TryAcquire(kS).has_value());
  EXPECT_FALSE(r.deps[1].limiter->TryAcquire(kS).has_value());  // refused: counted once
  r.Row(series, 2 * kS, now);
  EXPECT_EQ(at("t"), 2.0);
  EXPECT_EQ(at("arrivals"), 5);
  EXPECT_EQ(at("completed"), 0);
  EXPECT_EQ(at("queue_depth"), 1);
  EXPECT_EQ(at("plain.calls"), 8);
  EXPECT_EQ(at("plain.in_flight"), 2);
  EXPECT_EQ(at("guarded.limit_inflight"), 2);
  EXPECT_EQ(at("guarded.rejected_limit"), 1);
  r.Row(series, 3 * kS, now);
  EXPECT_EQ(at("arrivals"), 0);
  EXPECT_EQ(at("guarded.rejected_limit"), 0);
  EXPECT_EQ(series.last().arrived, 15);
}

}  // namespace
}  // namespace rlab::series_row_test
