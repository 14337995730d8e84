// Bounded memory in the live engine: order slots, idempotency keys, ledger pairs and result
// records stay bounded by the orders in flight plus the configured history sizes, however many
// orders a run makes; references outlive their slot's release; every run ends conserved.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlab/live/live_engine.h"
#include "rlab/live/payment_ledger.h"
#include "rlab/model/scenario.h"

namespace rlab::live_memory_test {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kChunk = LiveEngine::kOrderChunk;

// One charging dependency that answers at once (a tenth of its calls fail and are retried), so
// that many orders go through quickly and each charges through the ledger.
ScenarioConfig FastCharging() {
  ScenarioConfig sc;
  sc.arrivals.kind = ArrivalConfig::Kind::kPoisson;
  sc.arrivals.rate = 1000;
  sc.workers = 2;
  sc.queue_capacity = 512;
  sc.duration_ns = 100 * kMs;
  sc.seed = 11;
  DependencyConfig dep;
  dep.name = "payment";
  dep.charges = true;
  dep.idempotency_keys = true;
  dep.faults.latency.kind = LatencyDist::Kind::kConstant;
  dep.faults.latency.a = 0.0;
  dep.faults.failure_rate = 0.1;
  RetryConfig retry;
  retry.max_attempts = 3;
  retry.backoff.initial_ns = 0;  // retry at once
  retry.backoff.max_ns = 0;
  dep.retry = retry;
  sc.dependencies.push_back(dep);
  return sc;
}

std::unique_ptr<LiveEngine> Started(const ScenarioConfig& sc, const LiveOptions& o) {
  auto e = LiveEngine::Create(sc, o);
  EXPECT_TRUE(e.ok()) << e.status();
  if (!e.ok()) return nullptr;
  EXPECT_TRUE((*e)->Start().ok());
  return std::move(*e);
}

int64_t TerminalSum(const SimResult& r) {
  int64_t n = 0;
  for (OrderStatus s : {OrderStatus::kCompleted, OrderStatus::kFailed, OrderStatus::kRejected,
                        OrderStatus::kExpired, OrderStatus::kCancelled}) {
    n += r.by_status[static_cast<size_t>(s)];
  }
  return n;
}

// Many orders with their own idempotency keys: the table, the keys, the ledger and the records
// stay bounded by the history sizes (checked whenever nothing is in flight), not by the orders.
TEST(LiveMemoryTest, SlotsKeysLedgerAndRecordsStayBounded) {
  LiveOptions o;
  o.retain_orders = 2000;
  o.max_order_records = 3000;
  o.idempotency_window = 500;
  o.sample_every_ns = 0;
  auto e = Started(FastCharging(), o);
  ASSERT_NE(e, nullptr);
  constexpr int kBatches = 150;
  constexpr int kBatch = 200;
  int64_t max_slots = 0;
  for (int b = 0; b < kBatches; ++b) {
    for (int i = 0; i < kBatch; ++i) {
      ASSERT_TRUE(e->Submit(-1, absl::StrCat("order-", b, "-", i)).ok());
    }
    ASSERT_TRUE(e->WaitIdle(-1));
    const LiveInternals in = e->Internals();
    max_slots = std::max(max_slots, in.order_slots);
    // Young chunks span the retained window (plus the one being filled); old ones only hold
    // orders that were in flight at the last release, at most two chunks of one batch.
    EXPECT_LE(in.order_slots, o.retain_orders + 4 * kChunk) << "batch " << b;
    EXPECT_LE(in.retained_orders, o.retain_orders + 4 * kChunk);
    EXPECT_GE(in.retained_orders, std::min<int64_t>(in.arrived, o.retain_orders));
    EXPECT_EQ(in.idempotency_keys_held, 0);  // nothing in flight holds a key
    EXPECT_LE(in.ledger_tracked, o.idempotency_window);  // nothing in flight pins a pair
    EXPECT_LE(in.recorded_orders, o.max_order_records + kChunk);
  }
  const int64_t arrived = e->arrived();
  EXPECT_EQ(arrived, kBatches * kBatch);
  EXPECT_LT(max_slots, arrived / 4);  // far below one slot per order run
  const ShutdownReport report = e->Shutdown(-1);
  EXPECT_EQ(report.internal_error, "");
  const SimResult& r = **e->result();
  EXPECT_EQ(r.arrived, arrived);
  EXPECT_EQ(TerminalSum(r), arrived);
  EXPECT_EQ(r.in_flight, 0);
  EXPECT_GT(r.by_status[static_cast<size_t>(OrderStatus::kCompleted)], arrived / 2);
  // The records are those of the most recent max_order_records orders, in id order.
  ASSERT_EQ(static_cast<int64_t>(r.orders.size()), o.max_order_records);
  EXPECT_EQ(e->recorded_first_id(), arrived - o.max_order_records);
  for (int64_t i = o.max_order_records - o.retain_orders; i < o.max_order_records; i += 97) {
    const int64_t id = e->recorded_first_id() + i;
    const absl::StatusOr<LiveOrderView> v = e->View(id);
    ASSERT_TRUE(v.ok()) << id;  // among the last retain_orders
    EXPECT_EQ(r.orders[static_cast<size_t>(i)].arrival_ns, v->record.arrival_ns) << id;
    EXPECT_EQ(r.orders[static_cast<size_t>(i)].status, static_cast<uint8_t>(v->status)) << id;
    EXPECT_TRUE(IsTerminal(v->status));
  }
}

// A reference taken at submit time answers after its slot left the table; lookups by id then
// say why they cannot, and Wait by id knows a released order is over.
TEST(LiveMemoryTest, ReferencesOutliveTheirSlotsRelease) {
  LiveOptions o;
  o.retain_orders = 0;
  o.sample_every_ns = 0;
  auto e = Started(FastCharging(), o);
  ASSERT_NE(e, nullptr);
  absl::StatusOr<LiveEngine::OrderRef> first = e->SubmitOrder(-1, "first");
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(e->Wait(*first, -1));
  const LiveOrderView before = e->View(*first);
  for (int64_t i = 0; i < 3 * kChunk; ++i) {
    ASSERT_TRUE(e->Submit(-1).ok());
    if (i % 256 == 0) {
      ASSERT_TRUE(e->WaitIdle(-1));
    }
  }
  ASSERT_TRUE(e->WaitIdle(-1));
  ASSERT_TRUE(e->Submit(-1).ok());  // a fresh chunk: releases what is over
  ASSERT_TRUE(e->WaitIdle(-1));
  const absl::StatusOr<LiveEngine::OrderRef> again = e->Find(first->id());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(again.status().message(), HasSubstr("retain_orders"));
  EXPECT_FALSE(e->View(first->id()).ok());
  EXPECT_TRUE(e->Wait(first->id(), 0));  // released, hence terminal
  EXPECT_FALSE(e->Wait(e->arrived(), 0));  // never submitted
  const LiveOrderView after = e->View(*first);
  EXPECT_TRUE(IsTerminal(after.status));
  EXPECT_EQ(after.status, before.status);
  EXPECT_EQ(after.record.end_ns, before.record.end_ns);
  LiveEngine::OrderRef copy = *first;  // copies share the chunk
  first->Reset();
  EXPECT_EQ(e->View(copy).status, before.status);
  EXPECT_LE(e->Internals().order_slots, 2 * kChunk);
  EXPECT_EQ(e->Shutdown(-1).internal_error, "");
  EXPECT_EQ(e->View(copy).status, before.status);  // and after the run
}

// The engine outlives no reference's need: a reference kept past the engine's destruction
// still frees its chunk (ASan checks the memory).
TEST(LiveMemoryTest, ReferenceMayOutliveTheEngine) {
  LiveEngine::OrderRef kept;
  {
    LiveOptions o;
    o.sample_every_ns = 0;
    auto e = Started(FastCharging(), o);
    ASSERT_NE(e, nullptr);
    absl::StatusOr<LiveEngine::OrderRef> r = e->SubmitOrder();
    ASSERT_TRUE(r.ok());
    kept = *r;
    e->Shutdown(-1);
  }
  EXPECT_TRUE(kept.valid());
  EXPECT_EQ(kept.Sibling(kept.id() + kChunk).valid(), false);
  kept.Reset();
  EXPECT_FALSE(kept.valid());
}

TEST(LiveMemoryTest, HistoryOptionsAreValidated) {
  for (int which = 0; which < 3; ++which) {
    LiveOptions o;
    (which == 0 ? o.retain_orders : which == 1 ? o.max_order_records : o.idempotency_window) = -1;
    auto e = LiveEngine::Create(FastCharging(), o);
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(e.status().message(), HasSubstr(">= 0, got -1"));
  }
}

// Many shutdowns in the middle of a load: whatever the moment, every order ends in exactly one
// terminal state.
TEST(LiveMemoryTest, ShutdownMidLoadConservesOrders) {
  for (int round = 0; round < 5; ++round) {
    ScenarioConfig sc = FastCharging();
    sc.dependencies[0].faults.latency.a = 0.002;
    sc.arrivals.rate = 5000;
    sc.queue_capacity = 64;
    LiveOptions o;
    o.retain_orders = round * 300;
    o.sample_every_ns = 0;
    auto e = Started(sc, o);
    ASSERT_NE(e, nullptr);
    ASSERT_TRUE(e->StartLoad().ok());
    usleep(static_cast<useconds_t>(5000 * round));
    const ShutdownReport report = e->Shutdown(round % 2 == 0 ? 0 : 2 * kMs);
    EXPECT_EQ(report.internal_error, "") << round;
    const SimResult& r = **e->result();
    EXPECT_EQ(TerminalSum(r), r.arrived) << round;
    EXPECT_EQ(r.in_flight, 0);
  }
}

// The time series keeps its most recent rows: a run of many sampling intervals stays bounded.
TEST(LiveMemoryTest, TimeSeriesKeepsItsMostRecentRows) {
  LiveOptions o;
  o.sample_every_ns = kMs / 2;
  o.max_samples = 10;
  auto e = Started(FastCharging(), o);
  ASSERT_NE(e, nullptr);
  usleep(60'000);  // about 120 intervals
  e->Shutdown(-1);
  const SimResult& r = **e->result();
  ASSERT_FALSE(r.ts.empty());
  EXPECT_GE(r.ts[0].size(), 10u);
  EXPECT_LE(r.ts[0].size(), 21u);
  for (const auto& column : r.ts) EXPECT_EQ(column.size(), r.ts[0].size());
  EXPECT_GT(r.ts[0].back(), 0.03);  // the rows kept are the last ones
  o.max_samples = 0;
  EXPECT_EQ(LiveEngine::Create(FastCharging(), o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A flapping breaker keeps only its most recent transitions (the counters keep every one), and
// TakeTransitions hands out each kept transition once.
TEST(LiveMemoryTest, BreakerTransitionsKeepTheMostRecent) {
  ScenarioConfig sc = FastCharging();
  sc.dependencies[0].faults.failure_rate = 1.0;
  sc.dependencies[0].retry.reset();
  BreakerConfig b;
  b.consecutive_failures = 1;
  b.open_for_ns = kMs / 4;
  sc.dependencies[0].breaker = b;
  LiveOptions o;
  o.sample_every_ns = 0;
  o.max_transitions = 8;
  auto e = Started(sc, o);
  ASSERT_NE(e, nullptr);
  ASSERT_TRUE(e->StartLoad().ok());
  usleep(30'000);
  const auto early = e->TakeTransitions();
  EXPECT_LE(early.size(), 8u);
  EXPECT_TRUE(e->WaitIdle(-1));
  const auto snap = e->MetricsSnapshot();
  e->Shutdown(-1);
  const auto late = e->TakeTransitions();
  EXPECT_LE(late.size(), 8u);
  EXPECT_TRUE(e->TakeTransitions().empty());
  const SimResult& r = **e->result();
  int64_t kept = 0;
  int64_t last_t_ns = -1;
  for (const SimTransition& t : r.transitions) {
    if (t.kind != SimTransition::Kind::kBreaker) continue;
    ++kept;
    EXPECT_GE(t.t_ns, last_t_ns);
    last_t_ns = t.t_ns;
  }
  EXPECT_EQ(kept, 8);
  double counted = 0;
  for (const FamilySnapshot& f : snap) {
    if (f.name != "rlab_breaker_transitions") continue;
    for (const auto& series : f.series) counted += series.value;
  }
  EXPECT_GT(counted, 20.0);  // far more transitions happened than were kept
  o.max_transitions = 0;
  EXPECT_EQ(LiveEngine::Create(FastCharging(), o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(OrderConservationTest, NamesWhatDiffers) {
  SimResult r;
  r.arrived = 10;
  r.by_status[static_cast<size_t>(OrderStatus::kCompleted)] = 6;
  r.by_status[static_cast<size_t>(OrderStatus::kFailed)] = 2;
  r.by_status[static_cast<size_t>(OrderStatus::kRejected)] = 1;
  r.by_status[static_cast<size_t>(OrderStatus::kCancelled)] = 1;
  EXPECT_TRUE(CheckOrderConservation(r, 0, 0).ok());
  r.by_status[static_cast<size_t>(OrderStatus::kCancelled)] = 0;
  r.in_flight = 1;
  const absl::Status lost = CheckOrderConservation(r, 0, 0);
  EXPECT_EQ(lost.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(lost.message(), HasSubstr("arrived 10 != completed 6 + failed 2 + rejected 1 + "
                                        "expired 0 + cancelled 0"));
  EXPECT_THAT(lost.message(), HasSubstr("1 orders in flight"));
  r.by_status[static_cast<size_t>(OrderStatus::kCancelled)] = 1;
  r.in_flight = 0;
  EXPECT_THAT(CheckOrderConservation(r, 2, 0).message(), HasSubstr("terminal state twice"));
  EXPECT_THAT(CheckOrderConservation(r, 0, 3).message(), HasSubstr("3 order slots"));
}

// The ledger remembers the pairs of orders in flight (pinned) and a window of recent ones.
TEST(PaymentLedgerWindowTest, PinnedPairsOutliveTheWindow) {
  auto l = PaymentLedger::Open("", false, 2);
  ASSERT_TRUE(l.ok());
  PaymentLedger& p = **l;
  EXPECT_TRUE(p.Charge("payment", "a", true, /*pin=*/true));
  for (const char* k : {"b", "c", "d", "e"}) EXPECT_TRUE(p.Charge("payment", k, true));
  EXPECT_EQ(p.tracked(), 3);                      // a (pinned) + the 2 most recent
  EXPECT_FALSE(p.Charge("payment", "a", true));   // the retry of an order in flight: deduplicated
  EXPECT_FALSE(p.Charge("payment", "e", true));   // recent: deduplicated
  EXPECT_TRUE(p.Charge("payment", "b", true));    // forgotten: applied again (documented)
  p.Unpin("payment", "a");
  EXPECT_EQ(p.tracked(), 2);
  EXPECT_TRUE(p.Charge("payment", "a", true));  // its order ended and the window moved on
  p.Unpin("payment", "never");                  // harmless
  EXPECT_EQ(p.entries(), 7);
  EXPECT_EQ(PaymentLedger::Open("", false, -1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PaymentLedgerWindowTest, LoadingStreamsThroughTheWindow) {
  const std::string path = absl::StrCat("/tmp/rlab_window_", ::getpid(), ".ledger");
  {
    std::ofstream out(path, std::ios::trunc);
    // More than one read block, to cross block boundaries mid-line.
    for (int i = 0; i < 5000; ++i) {
      out << "payment\tkey-" << i << "-" << std::string(20, 'x') << "\n";
    }
    out << "payment\tkey-4999-" << std::string(20, 'x') << "\n";  // a double charge, recent
  }
  auto l = PaymentLedger::Open(path, false, 100);
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ((*l)->loaded(), 5001);
  EXPECT_EQ((*l)->tracked(), 100);
  EXPECT_EQ((*l)->double_charged(), 1);
  EXPECT_FALSE((*l)->Charge("payment", "key-4990-" + std::string(20, 'x'), true));  // recent
  EXPECT_TRUE((*l)->Charge("payment", "key-3-" + std::string(20, 'x'), true));  // forgotten
  std::remove(path.c_str());
}

}  // namespace
}  // namespace rlab::live_memory_test
