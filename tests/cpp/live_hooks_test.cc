// The live engine's hooks for service mode: idempotency keys, the durable payment ledger, order
// status events, fault changes while running, and the internals snapshot.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlab/live/live_engine.h"
#include "rlab/live/payment_ledger.h"
#include "rlab/model/scenario.h"

namespace rlab::live_hooks_test {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kMs = 1'000'000;

ScenarioConfig Charging(bool idempotency_keys, int workers = 4) {
  ScenarioConfig sc;
  sc.arrivals.kind = ArrivalConfig::Kind::kPoisson;
  sc.arrivals.rate = 100;
  sc.workers = workers;
  sc.queue_capacity = 256;
  sc.duration_ns = 100 * kMs;
  sc.seed = 5;
  DependencyConfig dep;
  dep.name = "payment";
  dep.charges = true;
  dep.idempotency_keys = idempotency_keys;
  dep.faults.latency.kind = LatencyDist::Kind::kConstant;
  dep.faults.latency.a = 0.0002;
  sc.dependencies.push_back(dep);
  return sc;
}

// A fresh file path under the test's temporary directory.
std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string base = dir != nullptr ? dir : "/tmp";
  std::string p = absl::StrCat(base, "/rlab_", name, "_", ::getpid(), ".ledger");
  std::remove(p.c_str());
  return p;
}

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

std::unique_ptr<LiveEngine> Started(const ScenarioConfig& sc, const LiveOptions& o) {
  auto e = LiveEngine::Create(sc, o);
  EXPECT_TRUE(e.ok()) << e.status();
  if (!e.ok()) return nullptr;
  EXPECT_TRUE((*e)->Start().ok());
  return std::move(*e);
}

// Submits one order per key, waits for all and shuts down; returns the ids.
std::vector<int64_t> RunKeys(LiveEngine& e, const std::vector<std::string>& keys) {
  std::vector<int64_t> ids;
  for (const std::string& k : keys) {
    auto id = e.Submit(-1, k);
    EXPECT_TRUE(id.ok()) << id.status();
    if (id.ok()) ids.push_back(*id);
  }
  for (int64_t id : ids) EXPECT_TRUE(e.Wait(id, -1));
  e.Shutdown(-1);
  return ids;
}

TEST(PaymentLedgerTest, InMemoryDeduplicatesOnlyWithKeys) {
  auto l = PaymentLedger::Open("", false);
  ASSERT_TRUE(l.ok());
  EXPECT_FALSE((*l)->durable());
  EXPECT_TRUE((*l)->Charge("payment", "k1", true));
  EXPECT_FALSE((*l)->Charge("payment", "k1", true));
  EXPECT_TRUE((*l)->Charge("inventory", "k1", true));  // another dependency's charge
  EXPECT_EQ((*l)->double_charged(), 0);
  EXPECT_TRUE((*l)->Charge("payment", "k1", false));  // no key sent: the provider cannot tell
  EXPECT_EQ((*l)->double_charged(), 1);
  EXPECT_EQ((*l)->entries(), 3);
}

TEST(PaymentLedgerTest, FileRoundTripAndDuplicatesOnLoad) {
  const std::string path = TempPath("roundtrip");
  {
    auto l = PaymentLedger::Open(path, false);
    ASSERT_TRUE(l.ok()) << l.status();
    EXPECT_TRUE((*l)->Charge("payment", "a", true));
    EXPECT_TRUE((*l)->Charge("payment", "b", true));
    EXPECT_TRUE((*l)->Charge("payment", "a", false));
  }
  EXPECT_THAT(Lines(path), ::testing::ElementsAre("payment\ta", "payment\tb", "payment\ta"));
  auto again = PaymentLedger::Open(path, true);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->loaded(), 3);
  EXPECT_EQ((*again)->double_charged(), 1);
  EXPECT_FALSE((*again)->Charge("payment", "b", true));
  EXPECT_TRUE((*again)->Charge("payment", "c", true));
  EXPECT_EQ(Lines(path).size(), 4u);
  std::remove(path.c_str());
}

TEST(PaymentLedgerTest, MalformedFilesAreClearErrors) {
  const std::string path = TempPath("malformed");
  for (const std::string& text :
       {std::string("payment\ta\nno tab here\n"), std::string("payment\ta\npayment\tb"),
        std::string("payment\ta\tb\n"), std::string("\tkey\n"), std::string("payment\t\n")}) {
    WriteFile(path, text);
    auto l = PaymentLedger::Open(path, false);
    ASSERT_FALSE(l.ok()) << text;
    EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(l.status().message(), HasSubstr("ledger_path: " + path + " line "));
  }
  auto dir = PaymentLedger::Open("/", false);
  EXPECT_FALSE(dir.ok());
  std::remove(path.c_str());
}

TEST(PaymentLedgerTest, KeysAreValidated) {
  EXPECT_TRUE(ValidateIdempotencyKey("order-17_ab:CD").ok());
  EXPECT_FALSE(ValidateIdempotencyKey("").ok());
  EXPECT_FALSE(ValidateIdempotencyKey("with space").ok());
  EXPECT_FALSE(ValidateIdempotencyKey("tab\there").ok());
  EXPECT_FALSE(ValidateIdempotencyKey(std::string(kMaxIdempotencyKeyBytes + 1, 'k')).ok());
}

TEST(LiveHooksTest, SubmitRejectsBadIdempotencyKeys) {
  auto e = Started(Charging(true), LiveOptions{});
  auto bad = e->Submit(-1, "two words");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("idempotency_key"));
  EXPECT_EQ(e->arrived(), 0);  // nothing was submitted
  e->Shutdown(-1);
}

TEST(LiveHooksTest, InMemoryLedgerDeduplicatesExplicitKeysAcrossOrders) {
  auto e = Started(Charging(true), LiveOptions{});
  const auto ids = RunKeys(*e, {"k1", "k1", "k2"});
  const SimResult& r = **e->result();
  EXPECT_EQ(r.charges, 3);
  EXPECT_EQ(r.applied_charges, 2);  // the second k1 order's charge was deduplicated
  EXPECT_EQ(r.double_charged_orders, 0);
  int applied = 0;
  for (int64_t id : ids) applied += (*e->View(id)).record.applied;
  EXPECT_EQ(applied, 2);
}

// A durable ledger survives the engine: a second run re-driving the same keys (the service after
// kill -9) charges nothing again with idempotency keys, and twice without them.
TEST(LiveHooksTest, DurableLedgerSurvivesARestart) {
  for (const bool keys : {true, false}) {
    SCOPED_TRACE(keys ? "idempotency keys" : "no idempotency keys");
    const std::string path = TempPath(keys ? "restart_keys" : "restart_nokeys");
    LiveOptions o;
    o.ledger_path = path;
    std::vector<std::string> order_keys;
    for (int i = 0; i < 20; ++i) order_keys.push_back(absl::StrCat("order-", i));
    {
      auto e = Started(Charging(keys), o);
      RunKeys(*e, order_keys);
      EXPECT_EQ((*e->result())->applied_charges, 20);
    }
    EXPECT_EQ(Lines(path).size(), 20u);
    {
      auto e = Started(Charging(keys), o);
      RunKeys(*e, order_keys);
      const SimResult& r = **e->result();
      EXPECT_EQ(r.charges, 20);
      EXPECT_EQ(r.applied_charges, keys ? 0 : 20);
      const LiveInternals in = e->Internals();
      EXPECT_EQ(in.ledger_path, path);
      EXPECT_EQ(in.ledger_entries, keys ? 20 : 40);
      EXPECT_EQ(in.ledger_double_charged, keys ? 0 : 20);
      EXPECT_EQ(in.ledger_write_errors, 0);
    }
    EXPECT_EQ(Lines(path).size(), keys ? 20u : 40u);
    std::remove(path.c_str());
  }
}

TEST(LiveHooksTest, DerivedKeysDifferBetweenRuns) {
  const std::string path = TempPath("derived");
  LiveOptions o;
  o.ledger_path = path;
  for (int run = 0; run < 2; ++run) {
    auto e = Started(Charging(true), o);
    std::vector<int64_t> ids;
    for (int i = 0; i < 5; ++i) ids.push_back(*e->Submit());
    for (int64_t id : ids) EXPECT_TRUE(e->Wait(id, -1));
    e->Shutdown(-1);
    EXPECT_EQ((*e->result())->applied_charges, 5) << run;  // not mistaken for run 0's orders
  }
  EXPECT_EQ(Lines(path).size(), 10u);
  std::remove(path.c_str());
}

TEST(LiveHooksTest, CreateFailsOnAMalformedLedger) {
  const std::string path = TempPath("bad_create");
  WriteFile(path, "payment\tk1\ngarbage\n");
  LiveOptions o;
  o.ledger_path = path;
  auto e = LiveEngine::Create(Charging(true), o);
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(e.status().message(), HasSubstr("line 2 is malformed"));
  std::remove(path.c_str());
}

TEST(LiveHooksTest, OrderEventsTraceEveryStatusChange) {
  ScenarioConfig sc = Charging(true, /*workers=*/2);
  sc.queue_capacity = 4;
  LiveOptions o;
  o.order_events = true;
  auto e = Started(sc, o);
  std::vector<int64_t> ids;
  for (int i = 0; i < 40; ++i) ids.push_back(*e->Submit());
  for (int64_t id : ids) EXPECT_TRUE(e->Wait(id, -1));
  std::vector<LiveOrderEvent> events = e->TakeOrderEvents();
  e->Shutdown(-1);
  EXPECT_TRUE(e->TakeOrderEvents().empty());
  std::vector<std::vector<OrderStatus>> per_order(ids.size());
  for (const LiveOrderEvent& v : events) {
    ASSERT_GE(v.id, 0);
    ASSERT_LT(v.id, static_cast<int64_t>(ids.size()));
    per_order[v.id].push_back(v.status);
    if (v.status == OrderStatus::kCompleted) {
      EXPECT_EQ(v.attempts, 1);
      EXPECT_EQ(v.charges, 1);
    }
    if (v.status == OrderStatus::kRejected) {
      EXPECT_EQ(v.reason, FailReason::kQueueFull);
    }
  }
  int rejected = 0;
  for (size_t id = 0; id < ids.size(); ++id) {
    const auto& s = per_order[id];
    const OrderStatus end = (*e->View(static_cast<int64_t>(id))).status;
    if (end == OrderStatus::kRejected) {
      ++rejected;
      EXPECT_THAT(s, ::testing::ElementsAre(OrderStatus::kQueued, OrderStatus::kRejected));
    } else {
      EXPECT_THAT(s, ::testing::ElementsAre(OrderStatus::kQueued, OrderStatus::kProcessing, end));
    }
  }
  EXPECT_EQ(rejected, (*e->result())->by_status[static_cast<size_t>(OrderStatus::kRejected)]);
}

TEST(LiveHooksTest, NoOrderEventsWhenOff) {
  auto e = Started(Charging(true), LiveOptions{});
  EXPECT_TRUE(e->Wait(*e->Submit(), -1));
  EXPECT_TRUE(e->TakeOrderEvents().empty());
  e->Shutdown(-1);
}

TEST(LiveHooksTest, SetFaultsTakesEffectForLaterAttempts) {
  ScenarioConfig sc = Charging(true);
  auto e = Started(sc, LiveOptions{});
  auto run = [&](int n) {
    std::vector<int64_t> ids;
    for (int i = 0; i < n; ++i) ids.push_back(*e->Submit());
    int completed = 0;
    for (int64_t id : ids) {
      EXPECT_TRUE(e->Wait(id, -1));
      completed += (*e->View(id)).status == OrderStatus::kCompleted;
    }
    return completed;
  };
  EXPECT_EQ(run(10), 10);
  FaultsConfig down = sc.dependencies[0].faults;
  down.failure_rate = 1.0;
  ASSERT_TRUE(e->SetFaults("payment", down).ok());
  EXPECT_EQ(e->Internals().deps[0].faults_version, 1u);
  EXPECT_EQ(run(10), 0);
  ASSERT_TRUE(e->SetFaults("payment", sc.dependencies[0].faults).ok());
  EXPECT_EQ(run(10), 10);

  FaultsConfig bad = sc.dependencies[0].faults;
  bad.failure_rate = 2.0;
  const absl::Status s = e->SetFaults("payment", bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("payment.faults.failure_rate"));
  EXPECT_EQ(e->SetFaults("nope", down).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(e->Internals().deps[0].faults_version, 2u);  // failed calls change nothing
  e->Shutdown(-1);
}

// Fault changes racing with attempts, including limited-capacity ones; meant for TSan.
TEST(LiveHooksTest, SetFaultsWhileRunningIsRaceFree) {
  ScenarioConfig sc = Charging(true, /*workers=*/4);
  sc.dependencies[0].faults.capacity.max_in_service = 2;
  auto e = Started(sc, LiveOptions{});
  std::atomic<bool> stop{false};
  std::thread chaos([&] {
    FaultsConfig f = sc.dependencies[0].faults;
    for (int i = 0; !stop.load(); ++i) {
      f.failure_rate = (i % 4) * 0.25;
      f.capacity.max_in_service = i % 3;  // 0: unlimited
      EXPECT_TRUE(e->SetFaults("payment", f).ok());
      (void)e->Internals();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  std::vector<int64_t> ids;
  for (int i = 0; i < 300; ++i) {
    auto id = e->Submit();
    if (id.ok()) ids.push_back(*id);
  }
  for (int64_t id : ids) EXPECT_TRUE(e->Wait(id, -1));
  stop = true;
  chaos.join();
  e->Shutdown(-1);
  const SimResult& r = **e->result();
  EXPECT_EQ(r.in_flight, 0);
  EXPECT_EQ(r.arrived, static_cast<int64_t>(ids.size()));
}

TEST(LiveHooksTest, InternalsDescribeTheEngine) {
  ScenarioConfig sc = Charging(true, /*workers=*/3);
  BreakerConfig b;
  b.consecutive_failures = 3;
  sc.dependencies[0].breaker = b;
  auto created = LiveEngine::Create(sc, LiveOptions{});
  ASSERT_TRUE(created.ok());
  LiveEngine& e = **created;
  LiveInternals in = e.Internals();
  EXPECT_FALSE(in.running);
  ASSERT_TRUE(e.Start().ok());
  in = e.Internals();
  EXPECT_TRUE(in.running);
  EXPECT_EQ(in.queue_capacity, 256);
  EXPECT_EQ(in.workers, 3);
  EXPECT_EQ(in.queue_depth, 0);
  ASSERT_EQ(in.deps.size(), 1u);
  EXPECT_EQ(in.deps[0].name, "payment");
  ASSERT_TRUE(in.deps[0].breaker.has_value());
  EXPECT_EQ(*in.deps[0].breaker, BreakerState::kClosed);
  EXPECT_TRUE(in.ledger_path.empty());
  e.Shutdown(-1);
  EXPECT_FALSE(e.Internals().running);
}

}  // namespace
}  // namespace rlab::live_hooks_test
