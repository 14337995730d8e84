// The live engine's invariants fire on a broken order (rlab/core/invariant.h): an order that
// reaches a terminal state twice aborts the process where invariants are on.
#include <memory>

#include "gtest/gtest.h"
#include "rlab/core/invariant.h"
#include "rlab/live/live_engine.h"
#include "rlab/model/scenario.h"

namespace rlab {

// Reaches into the engine to end an order a second time, as a buggy path would.
class LiveEngineTestPeer {
 public:
  static void FinishAgain(LiveEngine& e, int64_t id) {
    LiveEngine::Chunk* c = nullptr;
    {
      MutexLock lock(&e.index_mu_);
      c = e.FindChunkLocked(id);
    }
    ASSERT_NE(c, nullptr);
    c->unfinished.fetch_add(1);  // as if the order were still in flight
    e.Finish(nullptr, *c, id, OrderStatus::kFailed, FailReason::kNone, nullptr, e.NowNs(),
             /*admitted=*/false);
  }
};

namespace live_invariant_test {
namespace {

ScenarioConfig OneInstantDependency() {
  ScenarioConfig sc;
  sc.arrivals.kind = ArrivalConfig::Kind::kPoisson;
  sc.arrivals.rate = 10;
  sc.workers = 1;
  sc.queue_capacity = 8;
  sc.duration_ns = 1'000'000'000;
  DependencyConfig dep;
  dep.name = "payment";
  dep.faults.latency.kind = LatencyDist::Kind::kConstant;
  dep.faults.latency.a = 0.0;
  sc.dependencies.push_back(dep);
  return sc;
}

TEST(LiveInvariantDeathTest, AnOrderEndingTwiceAborts) {
  if (!kInvariantsOn) GTEST_SKIP() << "invariants are off in this build (NDEBUG)";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto e = LiveEngine::Create(OneInstantDependency(), LiveOptions{});
        if (!e.ok() || !(*e)->Start().ok()) return;
        absl::StatusOr<int64_t> id = (*e)->Submit();
        if (!id.ok() || !(*e)->Wait(*id, -1)) return;
        LiveEngineTestPeer::FinishAgain(**e, *id);
      },
      "order 0: failed from status completed");
}

}  // namespace
}  // namespace live_invariant_test
}  // namespace rlab
