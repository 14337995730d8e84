#include "rlab/core/metrics.h"

#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rlab::metrics_test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(MetricsTest, CountersByFixedLabels) {
  MetricsRegistry r;
  auto jobs = r.AddCounter("rlab_worker_jobs", "jobs", {"status"}, {{"completed"}, {"failed"}});
  ASSERT_TRUE(jobs.ok());
  (*jobs)->at(0).Add();
  (*jobs)->at(0).Add(2);
  (*jobs)->at((*jobs)->Find({"failed"})).Add();
  EXPECT_EQ((*jobs)->Find({"nope"}), -1);
  const auto snap = r.Snapshot();
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap[0].name, "rlab_worker_jobs");
  EXPECT_EQ(snap[0].type, MetricType::kCounter);
  EXPECT_THAT(snap[0].label_names, ElementsAre("status"));
  ASSERT_EQ(snap[0].series.size(), 2u);
  EXPECT_THAT(snap[0].series[0].label_values, ElementsAre("completed"));
  EXPECT_EQ(snap[0].series[0].value, 3.0);
  EXPECT_EQ(snap[0].series[1].value, 1.0);
}

TEST(MetricsTest, GaugesGoBothWays) {
  MetricsRegistry r;
  auto g = *r.AddGauge("rlab_queue_depth", "depth", {}, {{}});
  g->at(0).Set(5);
  g->at(0).Add(-2.5);
  EXPECT_EQ(r.Snapshot()[0].series[0].value, 2.5);
}

TEST(MetricsTest, HistogramBucketsAreCumulativeAndInclusive) {
  MetricsRegistry r;
  auto h = *r.AddHistogram("rlab_order_latency_seconds", "latency", {}, {{}}, {0.1, 1.0});
  for (double v : {0.05, 0.1, 0.5, 2.0}) h->at(0).Observe(v);
  const auto s = r.Snapshot()[0];
  EXPECT_EQ(s.type, MetricType::kHistogram);
  EXPECT_THAT(s.bounds, ElementsAre(0.1, 1.0));
  EXPECT_THAT(s.series[0].cumulative, ElementsAre(2, 3));
  EXPECT_EQ(s.series[0].count, 4);
  EXPECT_DOUBLE_EQ(s.series[0].sum, 2.65);
}

TEST(MetricsTest, RejectsBadFamilies) {
  MetricsRegistry r;
  ASSERT_TRUE(r.AddCounter("a", "", {}, {{}}).ok());
  EXPECT_THAT(r.AddCounter("a", "", {}, {{}}).status().message(), HasSubstr("duplicate"));
  EXPECT_FALSE(r.AddCounter("bad name", "", {}, {{}}).ok());
  EXPECT_FALSE(r.AddCounter("b", "", {"x"}, {{"1", "2"}}).ok());
  EXPECT_FALSE(r.AddCounter("c", "", {"x"}, {{"1"}, {"1"}}).ok());
  EXPECT_FALSE(r.AddCounter("d", "", {"le"}, {{"1"}}).ok());
  EXPECT_FALSE(r.AddHistogram("e", "", {}, {{}}, {1.0, 0.5}).ok());
}

TEST(MetricsTest, LabelProduct) {
  EXPECT_THAT(LabelProduct({{"a", "b"}, {"x", "y"}}),
              ElementsAre(ElementsAre("a", "x"), ElementsAre("a", "y"), ElementsAre("b", "x"),
                          ElementsAre("b", "y")));
}

TEST(MetricsTest, ConcurrentUpdatesAreNotLost) {
  MetricsRegistry r;
  auto c = *r.AddCounter("c", "", {}, {{}});
  auto g = *r.AddGauge("g", "", {}, {{}});
  auto h = *r.AddHistogram("h", "", {}, {{}}, {0.5});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10'000; ++i) {
        c->at(0).Add();
        g->at(0).Add(1.0);
        h->at(0).Observe(i % 2 ? 1.0 : 0.0);
        if (i % 1000 == 0) r.Snapshot();
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto s = r.Snapshot();
  EXPECT_EQ(s[0].series[0].value, 40'000);
  EXPECT_EQ(s[1].series[0].value, 40'000);
  EXPECT_EQ(s[2].series[0].count, 40'000);
  EXPECT_THAT(s[2].series[0].cumulative, ElementsAre(20'000));
  EXPECT_EQ(s[2].series[0].sum, 20'000);
}

}  // namespace
}  // namespace rlab::metrics_test
