// Concurrency limits in the scenario (model/limits.h): validation by dotted path, the mapping
// onto the policy, and the client-side permit in the shared OrderFlow, driven by hand.
#include "rlab/model/limits.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "rlab/core/rng.h"
#include "rlab/model/order_flow.h"
#include "rlab/model/scenario.h"

namespace rlab::limits_test {
namespace {

using Kind = FlowAction::Kind;
constexpr int64_t kMs = 1'000'000;

LimitConfig Static(int64_t n) {
  LimitConfig c;
  c.kind = LimitConfig::Kind::kStatic;
  c.initial = n;
  c.min = 1;
  c.max = std::max<int64_t>(n, 200);
  return c;
}

TEST(LimitConfigTest, ValidationNamesTheDottedPath) {
  LimitConfig c;
  EXPECT_TRUE(ValidateAt("payment.limit", LimitSchema(), c).ok());
  c.initial = 0;
  absl::Status s = ValidateAt("payment.limit", LimitSchema(), c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(s.message()).find("payment.limit.initial"), std::string::npos) << s;
  c = LimitConfig();
  c.initial = 300;  // above max
  EXPECT_NE(std::string(ValidateAt("intake.limit", LimitSchema(), c).message())
                .find("intake.limit.initial"),
            std::string::npos);
  c = LimitConfig();
  c.kind = LimitConfig::Kind::kEnvoy;
  c.window_ns = kMs;
  EXPECT_NE(std::string(ValidateAt("intake.limit", LimitSchema(), c).message())
                .find("intake.limit.window"),
            std::string::npos);
  c = LimitConfig();
  c.smoothing = 0.0;
  EXPECT_FALSE(ValidateAt("x", LimitSchema(), c).ok());
}

TEST(LimitConfigTest, RulesWordABoundSetByAnotherFieldAsARange) {
  LimitConfig c;
  c.min = 250;  // above max (200)
  EXPECT_EQ(ValidateAt("", LimitSchema(), c).message(),
            "min must be an integer in [1, 200], got 250");
  c = LimitConfig();
  c.min = 30;  // above initial (20)
  EXPECT_EQ(ValidateAt("", LimitSchema(), c).message(),
            "initial must be an integer in [30, 200], got 20");
  c = LimitConfig();
  c.alpha_factor = 7;  // above beta_factor (6)
  EXPECT_EQ(ValidateAt("", LimitSchema(), c).message(),
            "alpha_factor must be an integer in [0, 6], got 7");
  c.beta_factor = 7;
  EXPECT_TRUE(ValidateAt("", LimitSchema(), c).ok());
  c.kind = LimitConfig::Kind::kEnvoy;
  c.window_ns = kNsPerSecond;
  EXPECT_EQ(ValidateAt("", LimitSchema(), c).message(),
            "window must be 0 when kind is 'envoy' (Envoy has its own sample windows), got 1");
}

TEST(LimitConfigTest, EveryKindMapsOntoAValidPolicy) {
  for (LimitConfig::Kind k :
       {LimitConfig::Kind::kStatic, LimitConfig::Kind::kAimd, LimitConfig::Kind::kVegas,
        LimitConfig::Kind::kGradient2, LimitConfig::Kind::kEnvoy}) {
    LimitConfig c;
    c.kind = k;
    c.min = 3;
    c.initial = 7;
    c.max = 50;
    const ConcurrencyLimitConfig p = ToConcurrencyLimitConfig(c);
    EXPECT_TRUE(Validate(p).ok()) << LimitKindName(k) << ": " << Validate(p);
    ConcurrencyLimiter limiter(p);
    EXPECT_EQ(limiter.Limit(0), k == LimitConfig::Kind::kEnvoy ? 3 : 7) << LimitKindName(k);
  }
}

TEST(LimitConfigTest, AStaticLimitNeverMoves) {
  ConcurrencyLimiter limiter(ToConcurrencyLimitConfig(Static(4)));
  for (int i = 0; i < 100; ++i) {
    std::optional<LimitToken> t = limiter.TryAcquire(i * kMs);
    ASSERT_TRUE(t.has_value());
    if (i % 2 == 0) {
      limiter.OnDropped(*t, i * kMs + 10 * kMs, 0.5);
    } else {
      limiter.OnSuccess(*t, i * kMs + kMs, 0.5);
    }
  }
  EXPECT_EQ(limiter.Limit(0), 4);
}

TEST(LimitConfigTest, SamplesFollowTheOutcome) {
  EXPECT_EQ(ClientLimitSample(Outcome::Success()), LimitSampleKind::kSuccess);
  EXPECT_EQ(ClientLimitSample(Outcome::Of(OutcomeKind::kTimeout)), LimitSampleKind::kDropped);
  EXPECT_EQ(ClientLimitSample(Outcome::Http(503)), LimitSampleKind::kDropped);
  EXPECT_EQ(ClientLimitSample(Outcome::Http(429)), LimitSampleKind::kDropped);
  EXPECT_EQ(ClientLimitSample(Outcome::Http(500)), LimitSampleKind::kSuccess);  // an answer
  EXPECT_EQ(ClientLimitSample(Outcome::Of(OutcomeKind::kDeadlineExceeded)),
            LimitSampleKind::kIgnore);
  EXPECT_EQ(IntakeLimitSample(OrderStatus::kCompleted, FailReason::kNone),
            LimitSampleKind::kSuccess);
  EXPECT_EQ(IntakeLimitSample(OrderStatus::kExpired, FailReason::kNone), LimitSampleKind::kDropped);
  EXPECT_EQ(IntakeLimitSample(OrderStatus::kFailed, FailReason::kDeadline),
            LimitSampleKind::kDropped);
  EXPECT_EQ(IntakeLimitSample(OrderStatus::kFailed, FailReason::kExhausted),
            LimitSampleKind::kSuccess);
  EXPECT_EQ(IntakeLimitSample(OrderStatus::kCancelled, FailReason::kShutdown),
            LimitSampleKind::kIgnore);
  EXPECT_EQ(FailReasonName(FailReason::kLimited), "limited");
}

// One dependency with a client-side limit, driven by hand.
struct Harness {
  explicit Harness(DependencyConfig dep) : rng(Rng(1).Stream("t")) {
    config.dependencies.push_back(std::move(dep));
    EXPECT_TRUE(ValidateScenario(config).ok()) << ValidateScenario(config);
    deps.emplace_back(config.dependencies[0]);
    stats.resize(1);
  }
  OrderFlow Flow() { return OrderFlow(&deps, &stats, 0, kNoDeadline); }
  ScenarioConfig config;
  std::vector<DependencyRuntime> deps;
  std::vector<FlowStats> stats;
  RandomStream rng;
};

TEST(LimitFlowTest, AnAttemptOverTheLimitFailsTheOrderAsLimited) {
  DependencyConfig d;
  d.limit = Static(1);
  Harness t(d);
  OrderFlow first = t.Flow();
  ASSERT_EQ(first.Begin(0, t.rng).kind, Kind::kAttempt);
  OrderFlow second = t.Flow();
  EXPECT_EQ(second.Begin(kMs, t.rng).kind, Kind::kDone);
  EXPECT_EQ(second.status(), OrderStatus::kFailed);
  EXPECT_EQ(second.reason(), FailReason::kLimited);
  EXPECT_EQ(second.attempts(), 1);
  EXPECT_EQ(t.stats[0].rejected_limit, 1);
  EXPECT_EQ(t.stats[0].calls, 1);  // the refused attempt never reached the dependency
  EXPECT_EQ(t.deps[0].limiter->Snapshot(kMs).inflight, 1);
  // The first call's answer hands its permit back: the next order gets one.
  EXPECT_EQ(first.OnAttemptDone(10 * kMs, Outcome::Success(), false, t.rng).kind, Kind::kDone);
  EXPECT_EQ(first.status(), OrderStatus::kCompleted);
  const LimiterSnapshot s = t.deps[0].limiter->Snapshot(10 * kMs);
  EXPECT_EQ(s.inflight, 0);
  EXPECT_EQ(s.succeeded, 1);
  OrderFlow third = t.Flow();
  EXPECT_EQ(third.Begin(11 * kMs, t.rng).kind, Kind::kAttempt);
  // Cancelled (shutdown): released without a sample.
  third.Cancel(12 * kMs);
  const LimiterSnapshot c = t.deps[0].limiter->Snapshot(12 * kMs);
  EXPECT_EQ(c.inflight, 0);
  EXPECT_EQ(c.ignored, 1);
}

TEST(LimitFlowTest, AnOverloadAnswerIsADropAndARetryTakesANewPermit) {
  DependencyConfig d;
  LimitConfig l;
  l.kind = LimitConfig::Kind::kAimd;
  l.initial = 10;
  l.min = 1;
  l.max = 10;
  l.backoff_ratio = 0.5;
  d.limit = l;
  RetryConfig r;
  r.max_attempts = 2;
  r.backoff.initial_ns = kMs;
  r.backoff.jitter = Jitter::kNone;
  d.retry = r;
  Harness t(d);
  OrderFlow f = t.Flow();
  ASSERT_EQ(f.Begin(0, t.rng).kind, Kind::kAttempt);
  FlowAction a = f.OnAttemptDone(5 * kMs, Outcome::Http(503), false, t.rng);
  ASSERT_EQ(a.kind, Kind::kSleep);
  LimiterSnapshot s = t.deps[0].limiter->Snapshot(5 * kMs);
  EXPECT_EQ(s.dropped, 1);
  EXPECT_EQ(s.limit, 5);  // AIMD: 10 x 0.5
  EXPECT_EQ(s.inflight, 0);
  ASSERT_EQ(f.OnSleepDone(a.until_ns, t.rng).kind, Kind::kAttempt);
  EXPECT_EQ(t.deps[0].limiter->Snapshot(a.until_ns).inflight, 1);
  EXPECT_EQ(f.OnAttemptDone(a.until_ns + kMs, Outcome::Success(), false, t.rng).kind, Kind::kDone);
  EXPECT_EQ(f.status(), OrderStatus::kCompleted);
  EXPECT_EQ(t.deps[0].limiter->Snapshot(a.until_ns + kMs).inflight, 0);
}

TEST(RateLimitFlowTest, ACallWaitsForItsPermitOrIsRefused) {
  DependencyConfig d;
  RateLimitConfig r;
  r.rate = 10.0;  // one permit every 100 ms, two saved up
  r.burst = 2;
  r.max_wait_ns = 150 * kMs;
  d.rate_limit = r;
  Harness t(d);
  OrderFlow a = t.Flow(), b = t.Flow(), c = t.Flow(), e = t.Flow();
  EXPECT_EQ(a.Begin(0, t.rng).kind, Kind::kAttempt);
  EXPECT_EQ(b.Begin(0, t.rng).kind, Kind::kAttempt);
  // The third permit is due at 100 ms: the call waits for it, then goes without asking again.
  FlowAction w = c.Begin(0, t.rng);
  ASSERT_EQ(w.kind, Kind::kSleep);
  EXPECT_EQ(w.until_ns, 100 * kMs);
  EXPECT_EQ(c.OnSleepDone(100 * kMs, t.rng).kind, Kind::kAttempt);
  EXPECT_EQ(c.attempts(), 1);
  // The fourth would be due at 200 ms, beyond max_wait: refused, nothing reserved.
  EXPECT_EQ(e.Begin(0, t.rng).kind, Kind::kDone);
  EXPECT_EQ(e.reason(), FailReason::kRateLimited);
  EXPECT_EQ(t.stats[0].rejected_rate_limit, 1);
  EXPECT_EQ(t.stats[0].rate_limit_waits, 1);
  EXPECT_EQ(t.stats[0].calls, 3);
  EXPECT_EQ(FailReasonName(FailReason::kRateLimited), "rate_limited");
}

TEST(RateLimitFlowTest, TheGateCountsRefusalsAndWaits) {
  for (bool per_key : {false, true}) {
    RateLimitConfig r;
    r.rate = 10.0;  // one permit every 100 ms
    r.max_wait_ns = 150 * kMs;
    r.per_key = per_key;
    RateGate gate(r);
    EXPECT_EQ(gate.Reserve(1, 0, 1 * kNsPerSecond), 0);             // at once: not counted
    EXPECT_EQ(gate.Reserve(1, 0, 1 * kNsPerSecond), 100 * kMs);     // a wait
    EXPECT_EQ(gate.Reserve(1, 0, 1 * kNsPerSecond), std::nullopt);  // beyond max_wait
    EXPECT_EQ(gate.Reserve(1, 0, 0), std::nullopt);                 // the caller's own cap
    const RateGate::Counts c = gate.counts();
    EXPECT_EQ(c.refused, 2) << per_key;
    EXPECT_EQ(c.waits, 1) << per_key;
  }
}

TEST(RateLimitFlowTest, TheMappingKeepsTheRate) {
  RateLimitConfig r;
  r.rate = 250.0;
  r.burst = 5;
  RateLimiterParams p = ToRateLimiterParams(r);
  EXPECT_EQ(p.permits, 1);
  EXPECT_EQ(p.period_ns, 4 * kMs);
  EXPECT_EQ(p.burst, 5);
  r.mode = RateLimitMode::kBursty;
  p = ToRateLimiterParams(r);
  EXPECT_EQ(p.permits, 5);
  EXPECT_EQ(p.period_ns, 20 * kMs);
  r.rate = 0.0;
  EXPECT_NE(std::string(ValidateAt("intake.rate_limit", RateLimitSchema(), r).message())
                .find("intake.rate_limit.rate"),
            std::string::npos);
}

// The rate limiter's parameters have no check of their own: every RateLimitConfig its table
// accepts converts into parameters inside the policy's bounds (at least one permit, at least one
// nanosecond per permit, a period within 1e6 s), here at the table's extremes.
TEST(RateLimitConfigTest, ParamsInRangeAtExtremes) {
  for (double rate : {1e-300, 1e-3, 1.0, 3.0, 1e7}) {
    for (int64_t burst : {int64_t{1}, int64_t{7}, int64_t{1'000'000'000}}) {
      for (RateLimitMode mode : {RateLimitMode::kSmooth, RateLimitMode::kBursty}) {
        for (int64_t max_keys : {int64_t{1}, int64_t{10'000'000}}) {
          RateLimitConfig r;
          r.rate = rate;
          r.burst = burst;
          r.mode = mode;
          r.max_keys = max_keys;
          ASSERT_TRUE(ValidateAt("r", RateLimitSchema(), r).ok());
          const RateLimiterParams p = ToRateLimiterParams(r);
          EXPECT_GE(p.permits, 1);
          EXPECT_LE(p.permits, 1'000'000'000);
          EXPECT_GE(p.period_ns, p.permits) << rate << " " << burst;
          EXPECT_LE(p.period_ns, int64_t{1'000'000} * kNsPerSecond) << rate << " " << burst;
          EXPECT_GE(p.burst, 1);
          EXPECT_LE(p.burst, 1'000'000'000);
          EXPECT_EQ(p.max_keys, max_keys);
        }
      }
    }
  }
}

TEST(LimitFlowTest, ALimitWithAHedgeOrAFanoutIsValid) {
  ScenarioConfig c;
  DependencyConfig d;
  d.limit = LimitConfig();
  d.hedge = HedgeConfig();
  c.dependencies.push_back(d);
  EXPECT_TRUE(ValidateScenario(c).ok()) << ValidateScenario(c);
  c.dependencies[0].hedge.reset();
  c.dependencies[0].fanout = FanOutConfig();
  EXPECT_TRUE(ValidateScenario(c).ok()) << ValidateScenario(c);
  c.dependencies[0].fanout.reset();
  c.intake.limit = LimitConfig();
  c.intake.limit->max = 0;
  EXPECT_NE(std::string(ValidateScenario(c).message()).find("intake.limit.max"), std::string::npos);
}

// A hedged call under a static limit of 1: the first copy holds the only permit, so the hedge
// copy is refused locally (no call sent); the first copy's answer still decides the call.
TEST(LimitFlowTest, AHedgeCopyOverTheLimitIsRefusedAlone) {
  DependencyConfig d;
  d.limit = Static(1);
  HedgeConfig h;
  h.delay_ns = 10 * kMs;
  d.hedge = h;
  Harness t(d);
  OrderFlow f = t.Flow();
  FlowAction a = f.Begin(0, t.rng);
  ASSERT_EQ(a.kind, Kind::kAttempt);
  EXPECT_EQ(a.launch, 1u);
  ASSERT_EQ(a.hedge_at_ns, 10 * kMs);
  EXPECT_EQ(t.deps[0].limiter->Snapshot(0).inflight, 1);
  FlowAction w = f.OnHedgeTimer(10 * kMs, t.rng);
  EXPECT_EQ(w.kind, Kind::kWait);
  EXPECT_EQ(f.outstanding(), 1u);
  EXPECT_EQ(t.stats[0].rejected_limit, 1);
  EXPECT_EQ(t.stats[0].hedges, 0);
  EXPECT_EQ(t.stats[0].calls, 1);
  EXPECT_EQ(t.deps[0].limiter->Snapshot(10 * kMs).inflight, 1);
  EXPECT_EQ(f.OnAttemptDone(20 * kMs, Outcome::Success(), false, t.rng, 0).kind, Kind::kDone);
  EXPECT_EQ(f.status(), OrderStatus::kCompleted);
  const LimiterSnapshot s = t.deps[0].limiter->Snapshot(20 * kMs);
  EXPECT_EQ(s.inflight, 0);
  EXPECT_EQ(s.succeeded, 1);
  // With the permit held elsewhere, the round's first copy is refused: the order is limited.
  std::optional<LimitToken> held = t.deps[0].limiter->TryAcquire(21 * kMs);
  ASSERT_TRUE(held.has_value());
  OrderFlow g = t.Flow();
  EXPECT_EQ(g.Begin(21 * kMs, t.rng).kind, Kind::kDone);
  EXPECT_EQ(g.status(), OrderStatus::kFailed);
  EXPECT_EQ(g.reason(), FailReason::kLimited);
  t.deps[0].limiter->OnIgnore(*held);
  EXPECT_EQ(t.deps[0].limiter->Snapshot(22 * kMs).inflight, 0);
}

// Every copy of a round takes a permit; the winner returns its own with a sample and the
// cancelled copies return theirs unsampled, so that no permit outlives the round.
TEST(LimitFlowTest, APermitPerCopyAndAllReturnedAfterTheRound) {
  DependencyConfig d;
  d.limit = Static(5);
  HedgeConfig h;
  h.delay_ns = 10 * kMs;
  h.max_hedges = 2;
  d.hedge = h;
  Harness t(d);
  OrderFlow f = t.Flow();
  ASSERT_EQ(f.Begin(0, t.rng).kind, Kind::kAttempt);
  ASSERT_EQ(f.OnHedgeTimer(10 * kMs, t.rng).kind, Kind::kAttempt);
  ASSERT_EQ(f.OnHedgeTimer(20 * kMs, t.rng).kind, Kind::kAttempt);
  EXPECT_EQ(f.outstanding(), 7u);
  EXPECT_EQ(t.deps[0].limiter->Snapshot(20 * kMs).inflight, 3);
  // The second hedge wins: the other two copies are cancelled.
  EXPECT_EQ(f.OnAttemptDone(25 * kMs, Outcome::Success(), false, t.rng, 2).kind, Kind::kDone);
  EXPECT_EQ(f.status(), OrderStatus::kCompleted);
  LimiterSnapshot s = t.deps[0].limiter->Snapshot(25 * kMs);
  EXPECT_EQ(s.inflight, 0);
  EXPECT_EQ(s.succeeded, 1);
  EXPECT_EQ(s.ignored, 2);
  EXPECT_EQ(t.stats[0].cancelled, 2);

  // A fan-out round whose quorum is out of reach before anything left: the copies admitted
  // give their permits back unsampled.
  DependencyConfig e;
  e.limit = Static(2);
  FanOutConfig fo;
  fo.copies = 3;
  fo.quorum = 3;
  e.fanout = fo;
  Harness u(e);
  OrderFlow g = u.Flow();
  EXPECT_EQ(g.Begin(0, u.rng).kind, Kind::kDone);
  EXPECT_EQ(g.status(), OrderStatus::kFailed);
  EXPECT_EQ(g.reason(), FailReason::kLimited);
  EXPECT_EQ(u.stats[0].rejected_limit, 1);
  s = u.deps[0].limiter->Snapshot(0);
  EXPECT_EQ(s.inflight, 0);
  EXPECT_EQ(s.ignored, 2);

  // A fan-out round within the limit, then a shutdown: all permits come back.
  e.limit = Static(3);
  Harness v(e);
  OrderFlow k = v.Flow();
  FlowAction a = k.Begin(0, v.rng);
  ASSERT_EQ(a.kind, Kind::kAttempt);
  EXPECT_EQ(a.launch, 7u);
  EXPECT_EQ(v.deps[0].limiter->Snapshot(0).inflight, 3);
  EXPECT_EQ(k.OnAttemptDone(5 * kMs, Outcome::Success(), false, v.rng, 1).kind, Kind::kWait);
  EXPECT_EQ(v.deps[0].limiter->Snapshot(5 * kMs).inflight, 2);
  k.Cancel(6 * kMs);
  s = v.deps[0].limiter->Snapshot(6 * kMs);
  EXPECT_EQ(s.inflight, 0);
  EXPECT_EQ(s.succeeded, 1);
  EXPECT_EQ(s.ignored, 2);
}

}  // namespace
}  // namespace rlab::limits_test
