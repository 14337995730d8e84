#include "rlab/sim/flat_run.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "rlab/core/invariant.h"
#include "rlab/model/origin_stats.h"
#include "rlab/sim/attempt_payload.h"
#include "rlab/sim/sim_engine.h"

namespace rlab {

// Every feature this list refuses needs OrderFlow's or the engine's generality: a policy with
// state shared across orders (breaker, budgets, bulkhead, throttle, limits, rate limits, hedge
// budget), a second dependency or a service graph (the flow's sequence, tiers), replicas (the
// balancer), a fallback (the cache and degraded orders), rounds of copies, an AWS retry mode,
// intake controls (shedding, a queue discipline other than FIFO, limits) and closed-loop clients
// (think times). Everything else — any open-loop arrival process, any fault model with phases,
// a capacity-limited server with any line rules, retries with any backoff, timeouts, deadlines,
// charges, records, sampling — the flat path runs. A field added to the scenario that changes
// what an order does must be refused here until FlatRun runs it: the differential tests
// (tests/cpp/flat_run_test.cc) only draw the fields they know, and tests/test_sim_flat.py sets
// every scenario field in turn and fails when the two loops disagree on one this lets through.
bool IsFlatScenario(const ScenarioConfig& c) {
  if (c.arrivals.kind == ArrivalConfig::Kind::kClosedLoop) return false;
  if (c.dependencies.size() != 1 || !c.services.empty()) return false;
  const IntakeConfig& in = c.intake;
  if (in.shedding || in.limit || in.rate_limit) return false;
  if (in.discipline.kind != QueueDisciplineConfig::Kind::kFifo) return false;
  const DependencyConfig& d = c.dependencies[0];
  if (d.breaker || d.token_bucket || d.ratio_budget || d.bulkhead || d.throttle) return false;
  if (d.hedge || d.fanout || d.replicas || d.aws_retry || d.limit || d.rate_limit) return false;
  return d.fallback.kind == FallbackConfig::Kind::kNone && d.service.empty();
}

bool FlatPathEnabled() {
  const char* v = std::getenv("RLAB_SIM_FLAT");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

FlatRun::FlatRun(SimEngine& engine)
    : e_(engine),
      dep_(engine.config_.dependencies[0]),
      retry_(engine.deps_[0].retry),
      mirror_arrivals_(engine.options_.sample_every_ns > 0) {}

// Flattened: the handlers below inline into the loop (fewer calls per event: -10% of the
// instructions per order).
__attribute__((flatten)) absl::Status FlatRun::Run(int64_t* last_activity_ns) {
  EventQueue& q = e_.events_;
  const SimOptions& opt = e_.options_;
  int64_t events_at_instant = 0;
  while (!q.empty()) {
    // Past until_ns: the general loop finds the event and ends the run there.
    if (opt.until_ns >= 0 && q.Top().t_ns > opt.until_ns) break;
    const SimEvent ev = q.Pop();
    events_at_instant = ev.t_ns == e_.now_ns_ ? events_at_instant + 1 : 1;
    const int64_t now_ns = ev.t_ns;
    e_.now_ns_ = now_ns;
    if (ev.type != SimEngine::kSample) *last_activity_ns = now_ns;
    if (events_at_instant > opt.max_events_at_one_instant) {
      return e_.NoProgressError(events_at_instant);
    }
    if (++e_.result_.events > opt.max_events) return e_.TooManyEventsError();
    switch (ev.type) {
      case SimEngine::kArrival:
        NewOrder(now_ns);
        e_.ScheduleNextArrival(now_ns);
        break;
      case SimEngine::kAttemptEnd:
        OnAttemptEnd(ev.a, ev.b, ev.c, now_ns);
        break;
      case SimEngine::kSleepEnd:
        OnSleepEnd(ev.a, ev.b, now_ns);
        break;
      case SimEngine::kServiceDone:
        OnServiceDone(now_ns);
        break;
      case SimEngine::kSample:
        e_.OnSampleTick(now_ns);
        break;
      default:
        return absl::InternalError("internal error: an event the flat path does not schedule");
    }
  }
  return absl::OkStatus();
}

// SimEngine::NewOrder without intake controls: the queue's limit alone admits or refuses.
void FlatRun::NewOrder(int64_t now_ns) {
  SimResult& r = e_.result_;
  ++r.arrived;
  int64_t record = -1;
  if (e_.options_.record_orders) {
    record = static_cast<int64_t>(r.orders.size());
    OrderRecord& rec = r.orders.emplace_back();
    rec.arrival_ns = now_ns;
    rec.origin = PackOrigin(OrderOrigin{});
  }
  const bool worker_free = e_.idle_workers_ > 0 && e_.job_queue_.empty() && e_.ready_.empty();
  if (!worker_free && static_cast<int>(e_.job_queue_.size()) >= e_.config_.queue_capacity) {
    e_.RejectAtIntake(now_ns, record, -1, FailReason::kQueueFull);
    return;
  }
  uint32_t slot;
  if (free_slots_.empty()) {
    slot = static_cast<uint32_t>(orders_.size());
    orders_.emplace_back(retry_);
  } else {
    slot = free_slots_.back();
    free_slots_.pop_back();
  }
  Order& o = orders_[slot];
  o.arrival_ns = now_ns;
  if (mirror_arrivals_) {
    if (e_.active_.size() <= slot) e_.active_.resize(slot + 1);
    e_.active_[slot].arrival_ns = now_ns;
  }
  const int64_t deadline = e_.config_.order_deadline_ns;
  o.deadline_ns = deadline > 0 ? now_ns + deadline : kNoDeadline;
  o.record = record;
  o.live = true;
  ++o.gen;
  e_.SetInSystem(now_ns, +1);
  e_.job_queue_.push_back(slot);
  DispatchWork(now_ns);
}

// SimEngine::DispatchWork with a FIFO job queue: orders back from a backoff first.
void FlatRun::DispatchWork(int64_t now_ns) {
  if (e_.dispatching_) return;  // the outer loop picks up whatever the nested call freed
  e_.dispatching_ = true;
  while (e_.idle_workers_ > 0 && !(e_.ready_.empty() && e_.job_queue_.empty())) {
    if (!e_.ready_.empty()) {
      const uint32_t slot = e_.ready_.front();
      e_.ready_.pop_front();
      orders_[slot].holds_worker = true;
      --e_.idle_workers_;
      e_.SetBusy(now_ns, +1);
      Attempt(slot, now_ns);
      continue;
    }
    const uint32_t slot = e_.job_queue_.front();
    e_.job_queue_.pop_front();
    const int64_t deadline_ns = orders_[slot].deadline_ns;
    if (deadline_ns != kNoDeadline && now_ns >= deadline_ns) {
      End(slot, OrderStatus::kExpired, FailReason::kNone, now_ns);  // nobody waits any more
    } else {
      Start(slot, now_ns);
    }
  }
  e_.dispatching_ = false;
}

void FlatRun::Start(uint32_t slot, int64_t now_ns) {
  Order& o = orders_[slot];
  o.holds_worker = true;
  --e_.idle_workers_;
  e_.SetBusy(now_ns, +1);
  e_.result_.queue_wait.Add(now_ns - o.arrival_ns);
  if (o.record >= 0) e_.result_.orders[o.record].start_ns = now_ns;
  // OrderFlow::Begin for the one dependency: a fresh retry loop and ledger.
  o.loop = RetryLoop(retry_, nullptr, o.deadline_ns);
  o.attempts = 0;
  o.charges = 0;
  o.applied = 0;
  o.committed = false;
  Attempt(slot, now_ns);
}

void FlatRun::Attempt(uint32_t slot, int64_t now_ns) {
  Order& o = orders_[slot];
  FlowStats& s = e_.stats_[0];
  if (!o.loop.OnAttemptStart(now_ns)) {  // the deadline passed (during a backoff)
    ++s.retry_ends[static_cast<size_t>(RetryEndReason::kDeadline)];
    End(slot, OrderStatus::kFailed, FailReason::kDeadline, now_ns);
    return;
  }
  ++o.attempts;
  if (o.loop.attempts() > 1) ++s.retries;
  ++s.calls;
  // The attempt's end: its timeout, capped by the order's deadline (OrderFlow::CopyAction).
  int64_t until_ns = dep_.attempt_timeout_ns > 0 ? now_ns + dep_.attempt_timeout_ns : kNoDeadline;
  bool until_is_deadline = false;
  if (o.deadline_ns != kNoDeadline && o.deadline_ns <= until_ns) {
    until_ns = o.deadline_ns;
    until_is_deadline = true;
  }
  ++o.gen;  // a new call: every event of the previous one is stale
  o.in_attempt = true;
  SimEngine::Server& srv = e_.servers_[0];
  ++srv.in_flight;
  if (!srv.capacity) {
    int64_t& max_load = e_.result_.deps[0].max_load;
    max_load = std::max<int64_t>(max_load, srv.in_flight);
    BeginService(slot, o.gen, until_ns, until_is_deadline, true, now_ns);
    return;
  }
  // The server's line (model/capacity_server.h), as SimEngine::LaunchCopy.
  const SimEngine::LineCall call{slot, o.gen, until_ns, until_is_deadline, 0};
  const CapacityAdmission admission = srv.capacity->Arrive(now_ns, call);
  if (admission == CapacityAdmission::kServe) {
    BeginService(slot, o.gen, until_ns, until_is_deadline, true, now_ns);
  } else if (admission == CapacityAdmission::kRejected) {
    o.retry_after_ns = -1;
    e_.Schedule(now_ns, SimEngine::kAttemptEnd, slot, o.gen,
                PackAttempt(Outcome::Http(503), false));
  } else if (until_ns != kNoDeadline) {  // queued: its caller gives up at until_ns
    const OutcomeKind gave_up =
        until_is_deadline ? OutcomeKind::kDeadlineExceeded : OutcomeKind::kTimeout;
    e_.Schedule(until_ns, SimEngine::kAttemptEnd, slot, o.gen,
                PackAttempt(Outcome::Of(gave_up), false));
  }
}

void FlatRun::BeginService(uint32_t slot, uint32_t gen, int64_t until_ns, bool until_is_deadline,
                           bool caller_waiting, int64_t now_ns) {
  SimEngine::Server& srv = e_.servers_[0];
  const FaultModel& faults = e_.deps_[0].faults;
  const bool limited = srv.capacity.has_value();
  const int load = limited ? srv.capacity->in_service() : srv.in_flight;
  const AttemptDraw draw = faults.Draw(now_ns, load, e_.fault_rngs_[0]);
  if (limited) e_.Schedule(now_ns + draw.service_ns, SimEngine::kServiceDone, 0, 0);
  if (!caller_waiting) return;  // served for nobody (CapacityCounts::wasted)
  Order& o = orders_[slot];
  // The answer, unless the caller's timeout or deadline comes first; a hung call never answers
  // (SimEngine::BeginService).
  const int64_t answer_ns = now_ns + draw.service_ns;
  if (!draw.hangs && answer_ns <= until_ns) {
    o.retry_after_ns = draw.outcome.retry_after_ns;
    e_.Schedule(answer_ns, SimEngine::kAttemptEnd, slot, gen,
                PackAttempt(draw.outcome, draw.committed));
    return;
  }
  const OutcomeKind gave_up =
      until_is_deadline ? OutcomeKind::kDeadlineExceeded : OutcomeKind::kTimeout;
  const int64_t end_ns = until_ns == kNoDeadline ? now_ns + faults.config().hang_ns : until_ns;
  e_.Schedule(end_ns, SimEngine::kAttemptEnd, slot, gen,
              PackAttempt(Outcome::Of(gave_up), draw.committed));
}

void FlatRun::OnAttemptEnd(uint32_t slot, uint32_t gen, uint32_t packed, int64_t now_ns) {
  Order& o = orders_[slot];
  // Stale: an answer after its timeout, or the reverse (a call that waited in line).
  if (!o.live || o.gen != gen || !o.in_attempt) return;
  o.in_attempt = false;
  ++o.gen;
  --e_.servers_[0].in_flight;
  const Outcome outcome = UnpackAttempt(packed, o.retry_after_ns);
  // OrderFlow::OnAttemptDone: the charge ledger and the call's counts.
  FlowStats& s = e_.stats_[0];
  const bool committed = AttemptCommitted(packed);
  if (committed && dep_.charges) {
    ++o.charges;
    if (!dep_.idempotency_keys || !o.committed) ++o.applied;  // the ledger's deduplication
  }
  o.committed = o.committed || committed;
  // (A fault model never answers with a breaker rejection: OrderFlow's case for replicas.)
  if (outcome.ok()) {
    ++s.successes;
  } else {
    ++s.failures;
  }
  // OrderFlow::EndAttempt: the retry loop's jitter draw is taken for every attempt.
  const RetryStep step = o.loop.OnAttemptEnd(outcome, now_ns, e_.policy_rngs_[0].Uniform01());
  if (step.retry()) {
    // SimEngine::Handle(kSleep): the backoff, with or without the worker.
    ++o.gen;
    e_.Schedule(now_ns + step.delay_ns, SimEngine::kSleepEnd, slot, o.gen);
    if (e_.config_.release_worker_during_backoff && o.holds_worker) {
      o.holds_worker = false;
      ++e_.idle_workers_;
      e_.SetBusy(now_ns, -1);
      DispatchWork(now_ns);
    }
    return;
  }
  ++s.retry_ends[static_cast<size_t>(step.reason)];
  if (step.reason == RetryEndReason::kSucceeded) {
    End(slot, OrderStatus::kCompleted, FailReason::kNone, now_ns);
  } else {
    End(slot, OrderStatus::kFailed, RetryEndFailReason(step.reason, outcome, false), now_ns);
  }
}

void FlatRun::OnSleepEnd(uint32_t slot, uint32_t gen, int64_t now_ns) {
  Order& o = orders_[slot];
  if (!o.live || o.gen != gen) return;
  ++o.gen;
  if (o.holds_worker) {
    Attempt(slot, now_ns);
  } else {
    e_.ready_.push_back(slot);
    DispatchWork(now_ns);
  }
}

// SimEngine::OnServiceDone for the one server: the freed slot goes to the call its line's rules
// pick.
void FlatRun::OnServiceDone(int64_t now_ns) {
  CapacityServer<SimEngine::LineCall>& srv = *e_.servers_[0].capacity;
  srv.Release();
  while (const std::optional<SimEngine::LineCall> w = srv.Take(now_ns)) {
    Order& o = orders_[w->slot];
    const bool waiting = o.live && o.gen == w->gen && o.in_attempt;
    const LineVerdict verdict = srv.Judge(now_ns, waiting);
    if (verdict == LineVerdict::kServe || verdict == LineVerdict::kServeWasted) {
      BeginService(w->slot, w->gen, w->until_ns, w->until_is_deadline, waiting, now_ns);
    } else if (verdict == LineVerdict::kDrop && waiting) {  // CoDel: 503 at once
      o.retry_after_ns = -1;
      e_.Schedule(now_ns, SimEngine::kAttemptEnd, w->slot, w->gen,
                  PackAttempt(Outcome::Http(503), false));
    }
  }
}

void FlatRun::End(uint32_t slot, OrderStatus status, FailReason reason, int64_t now_ns) {
  Order& o = orders_[slot];
  RLAB_INVARIANT(o.live, "flat path: order slot %d ends twice at t = %d ns", slot, now_ns);
  SimResult& r = e_.result_;
  // SimEngine::Finish: the ledger (an order that expired in the queue charged nothing).
  r.charges += o.charges;
  r.applied_charges += o.applied;
  if (o.applied > 1) ++r.double_charged_orders;
  if (o.record >= 0) {
    OrderRecord& rec = r.orders[o.record];
    rec.attempts = static_cast<uint16_t>(std::min(o.attempts, 65535));
    rec.charges = static_cast<uint8_t>(std::min(o.charges, 255));
    rec.applied = static_cast<uint8_t>(std::min(o.applied, 255));
    rec.end_ns = now_ns;
    rec.status = static_cast<uint8_t>(status);
    rec.reason = static_cast<uint8_t>(reason);
  }
  // SimEngine::FinishWithoutFlow.
  e_.Account(status, reason, false, o.arrival_ns, now_ns, true);
  const bool held = o.holds_worker;
  o.live = false;
  o.holds_worker = false;
  o.attempts = 0;
  o.charges = 0;
  o.applied = 0;
  ++o.gen;
  free_slots_.push_back(slot);
  e_.SetInSystem(now_ns, -1);
  if (held) {
    ++e_.idle_workers_;
    e_.SetBusy(now_ns, -1);
    DispatchWork(now_ns);
  }
}

}  // namespace rlab
