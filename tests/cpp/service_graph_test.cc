// Service graphs: validation of the graph as a whole, and the simulated engine running it.

#include "rlab/model/service_graph.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "rlab/core/clock.h"
#include "rlab/model/scenario.h"
#include "rlab/sim/sim_engine.h"

namespace rlab::service_graph_test {
namespace {

DependencyConfig Leaf(const std::string& name, double failure_rate = 0.0) {
  DependencyConfig d;
  d.name = name;
  d.faults.failure_rate = failure_rate;
  d.faults.latency.kind = LatencyDist::Kind::kConstant;
  d.faults.latency.a = 0.001;
  return d;
}

DependencyConfig Call(const std::string& name, const std::string& service) {
  DependencyConfig d;
  d.name = name;
  d.service = service;
  return d;
}

ServiceConfig Svc(const std::string& name, std::vector<DependencyConfig> deps) {
  ServiceConfig s;
  s.name = name;
  s.dependencies = std::move(deps);
  return s;
}

ScenarioConfig Graph() {
  ScenarioConfig c;
  c.arrivals.rate = 100.0;
  c.duration_ns = 2 * kNsPerSecond;
  c.dependencies = {Call("to_a", "a")};
  c.services = {Svc("a", {Call("to_b", "b")}), Svc("b", {Leaf("db")})};
  return c;
}

TEST(ServiceGraphTest, AValidGraphPasses) { EXPECT_TRUE(ValidateScenario(Graph()).ok()); }

TEST(ServiceGraphTest, UnknownServiceIsNamedWithItsPath) {
  ScenarioConfig c = Graph();
  c.services[1].dependencies.push_back(Call("to_x", "x"));
  EXPECT_EQ(ValidateScenario(c).message(),
            "services[b].dependencies[to_x].service: unknown service 'x'; known: a, b");
}

TEST(ServiceGraphTest, CycleIsNamed) {
  ScenarioConfig c = Graph();
  c.services[1].dependencies.push_back(Call("back", "a"));
  EXPECT_EQ(ValidateScenario(c).message(),
            "services form a cycle: root → a → b → a (a service must not call itself, directly or "
            "through others)");
}

TEST(ServiceGraphTest, UnreachableAndDuplicateServicesAreErrors) {
  ScenarioConfig c = Graph();
  c.services.push_back(Svc("lonely", {Leaf("db")}));
  EXPECT_NE(ValidateScenario(c).message().find("services[lonely] is unreachable"),
            std::string::npos);
  c = Graph();
  c.services.push_back(Svc("a", {Leaf("db")}));
  EXPECT_EQ(ValidateScenario(c).message(), "services[2].name \"a\" is already used by services[0]");
}

TEST(ServiceGraphTest, ServiceNamesDependencyListsAndCountAreChecked) {
  ScenarioConfig c = Graph();
  c.services[1].name = "b-2";
  EXPECT_EQ(ValidateScenario(c).message(),
            "services[1].name must contain only letters, digits and underscores, got \"b-2\"");
  c.services[1].name = "";
  EXPECT_EQ(ValidateScenario(c).message(), "services[1].name must not be empty");
  c = Graph();
  c.services[0].dependencies.push_back(Call("to_b", "b"));
  EXPECT_EQ(ValidateScenario(c).message(),
            "services[a].dependencies[1].name \"to_b\" is already used by dependencies[0]");
  c = Graph();
  c.services[1].dependencies.clear();
  EXPECT_EQ(ValidateScenario(c).message(),
            "services[b].dependencies must have between 1 and 16 entries, got 0");
  c = Graph();
  for (int i = 2; i < kMaxServices; ++i) {  // Graph() has two
    c.services.push_back(Svc(absl::StrCat("s", i), {Leaf("db")}));
  }
  EXPECT_NE(ValidateScenario(c).message().find("services[s2] is unreachable"), std::string::npos);
  c.services.push_back(Svc("one_too_many", {Leaf("db")}));
  EXPECT_EQ(ValidateScenario(c).message(), "services must have at most 256 entries, got 257");
}

TEST(ServiceGraphTest, ACallerHasNoFaultsOfItsOwn) {
  ScenarioConfig c = Graph();
  c.dependencies[0].faults.failure_rate = 0.5;
  EXPECT_NE(ValidateScenario(c).message().find("to_a.faults must keep its default"),
            std::string::npos);
}

TEST(ServiceGraphTest, ServiceDependencyErrorsNameTheirPath) {
  ScenarioConfig c = Graph();
  c.services[1].dependencies[0].faults.failure_rate = 2.0;
  EXPECT_NE(ValidateScenario(c).message().find("services[b].dependencies[db].faults.failure_rate"),
            std::string::npos);
}

TEST(ServiceGraphTest, EngineRunsTheGraphAndEveryRequestEnds) {
  ScenarioConfig c = Graph();
  c.services[1].dependencies[0] = Leaf("db", 0.3);
  ASSERT_TRUE(ValidateScenario(c).ok());
  SimEngine engine(c, {});
  ASSERT_TRUE(engine.Run().ok());
  const SimResult& r = engine.result();
  ASSERT_EQ(r.services.size(), 3u);
  ASSERT_EQ(r.deps.size(), 3u);  // to_a, a.to_b, b.db
  for (size_t t = 1; t < r.services.size(); ++t) {
    const ServiceTotals& s = r.services[t];
    int64_t ended = 0;
    for (int64_t n : s.by_status) ended += n;
    EXPECT_EQ(s.arrived, ended);
    EXPECT_EQ(s.in_flight, 0);
    EXPECT_EQ(s.overran, 0);
  }
  // No retries: one request per order at each tier, and a failure at the leaf fails the order.
  EXPECT_EQ(r.services[1].arrived, r.arrived);
  EXPECT_EQ(r.services[2].arrived, r.arrived);
  EXPECT_EQ(r.by_status[static_cast<size_t>(OrderStatus::kFailed)],
            r.services[2].by_status[static_cast<size_t>(OrderStatus::kFailed)]);
  EXPECT_EQ(r.deps[2].flow.calls, r.arrived);
}

}  // namespace
}  // namespace rlab::service_graph_test
