// Service graphs in the simulated engine (model/service_graph.h): a call to a dependency whose
// `service` is set becomes a child request of that service's tier. It joins the tier's job
// queue, waits for one of its workers, runs the shared OrderFlow over the tier's own
// dependencies (their policies, faults and servers), and its end answers the calling attempt.
//
// Deadline propagation: the child's deadline is the calling attempt's until_ns (the caller's
// remaining budget: its attempt timeout, capped by its own deadline), capped by the service's
// `deadline`. A child whose caller gave up before a worker took it is dropped unstarted; one
// whose caller gave up while it ran ends anyway, and its worker time is counted as wasted.
//
// The rules both engines share (the child's deadline, how its end answers its caller, how it is
// counted, its time-series columns) are in model/service_accounting.h; the live engine's
// counterpart of this file is live/live_services.cc.

#include <algorithm>
#include <optional>

#include "rlab/model/service_accounting.h"
#include "rlab/sim/sim_engine.h"

namespace rlab {
namespace {

// As in sim_engine.cc: an attempt's outcome packed into an event's 32-bit payload.
uint32_t PackOutcome(const Outcome& o, int copy) {
  return static_cast<uint32_t>(o.kind) | (static_cast<uint32_t>(o.http_status) << 4) |
         (static_cast<uint32_t>(copy) << 16);
}

}  // namespace

void SimEngine::CallService(uint32_t slot, int copy, const FlowAction& action, int64_t now_ns) {
  Active& a = active_[slot];
  // The caller stops waiting at its own timeout, whatever the service does.
  if (action.until_ns != kNoDeadline) {
    const Outcome o = Outcome::Of(action.until_is_deadline ? OutcomeKind::kDeadlineExceeded
                                                           : OutcomeKind::kTimeout);
    Schedule(action.until_ns, kAttemptEnd, slot, a.gen, PackOutcome(o, copy));
  }
  uint32_t index;
  if (!free_calls_.empty()) {
    index = free_calls_.back();
    free_calls_.pop_back();
  } else {
    index = static_cast<uint32_t>(calls_.size());
    calls_.emplace_back();
  }
  calls_[index] = {slot, a.gen, action.dep, copy, action.until_ns, action.until_is_deadline};
  Schedule(now_ns, kServiceCall, index);
}

bool SimEngine::CallerWaiting(const Active& child) const {
  const Active& p = active_[child.parent];
  return p.live && p.gen == child.parent_gen && p.attempt_dep == child.parent_dep &&
         ((p.outstanding >> child.parent_copy) & 1u) != 0;
}

void SimEngine::OnServiceCall(uint32_t index, int64_t now_ns) {
  const PendingCall call = calls_[index];
  free_calls_.push_back(index);
  {
    const Active& p = active_[call.slot];
    // The caller gave up (a hedge won, say) before the call left: it never reaches the service.
    if (!p.live || p.gen != call.gen || p.attempt_dep != call.dep ||
        ((p.outstanding >> call.copy) & 1u) == 0) {
      return;
    }
  }
  const int t = dep_target_[call.dep];
  Tier& tier = tiers_[t - 1];
  ServiceTotals& st = result_.services[t];
  CountServiceArrival(st);
  const int64_t deadline_ns = ChildDeadline(call.until_ns, tier.deadline_ns, now_ns);
  const int32_t key = active_[call.slot].key;
  // Its intake.rate_limit first (a permit due later parks the request: kServiceReady), then its
  // intake.limit, then its queue's capacity (the root's order of gates).
  const std::optional<int64_t> rate_wait_ns = tier.intake->ReserveRate(key, now_ns, deadline_ns);
  std::optional<ServicePermit> permit;
  bool full = false;
  if (rate_wait_ns && *rate_wait_ns == 0) {
    permit = tier.intake->Admit(now_ns);
    const bool worker_free = tier.idle > 0 && tier.jobs.empty() && tier.ready.empty();
    full = !worker_free && static_cast<int>(tier.jobs.size()) >= tier.queue_capacity;
  }
  if (!rate_wait_ns || (*rate_wait_ns == 0 && (!permit || full))) {
    if (permit) tier.intake->Abandon(*permit);
    CountServiceRejected(st, !rate_wait_ns ? FailReason::kRateLimited
                             : permit      ? FailReason::kQueueFull
                                           : FailReason::kLimited);
    Active& p = active_[call.slot];
    if (deps_[call.dep].rounds()) {
      p.copy_retry_after_ns[call.copy] = -1;
    } else {
      p.retry_after_ns = -1;
    }
    Schedule(now_ns, kAttemptEnd, call.slot, call.gen,
             PackOutcome(ChildRejectedAnswer(), call.copy));
    return;
  }
  const uint32_t c = AllocSlot();  // may move active_: no reference is held across it
  Active& a = active_[c];
  a.flow.reset();
  a.arrival_ns = now_ns;
  a.start_ns = -1;
  a.deadline_ns = deadline_ns;
  a.record = -1;
  a.client = -1;
  a.key = key;
  a.attempt_dep = -1;
  a.outstanding = 0;
  a.holds_worker = false;
  a.holds_intake = permit && permit->held;
  a.intake_token = permit ? permit->token : LimitToken{};
  a.live = true;
  a.origin = {};
  ++a.gen;
  a.tier = t;
  a.parent = call.slot;
  a.parent_gen = call.gen;
  a.parent_dep = call.dep;
  a.parent_copy = static_cast<uint8_t>(call.copy);
  a.caller_until_ns = call.until_ns;
  a.caller_until_is_deadline = call.until_is_deadline;
  CountServiceAdmitted(st);
  if (*rate_wait_ns > 0) {
    // Admitted (in flight), neither queued nor holding a worker until its permit is due.
    Schedule(now_ns + *rate_wait_ns, kServiceReady, c, a.gen);
    return;
  }
  tier.jobs.push_back(c);
  DispatchTier(t, now_ns);
}

void SimEngine::OnServiceReady(uint32_t slot, uint32_t gen, int64_t now_ns) {
  Active& a = active_[slot];
  if (!a.live || a.gen != gen) return;
  if (!CallerWaiting(a)) {
    // Its caller gave up while it waited for its permit: dropped unstarted, as from the queue.
    FinishChild(slot, OrderStatus::kExpired, FailReason::kNone, now_ns, /*dropped=*/true);
    return;
  }
  const int t = a.tier;
  Tier& tier = tiers_[t - 1];
  std::optional<ServicePermit> permit = tier.intake->Admit(now_ns);
  if (!permit) {
    FinishChild(slot, OrderStatus::kRejected, FailReason::kLimited, now_ns);
    return;
  }
  const bool worker_free = tier.idle > 0 && tier.jobs.empty() && tier.ready.empty();
  if (!worker_free && static_cast<int>(tier.jobs.size()) >= tier.queue_capacity) {
    tier.intake->Abandon(*permit);
    FinishChild(slot, OrderStatus::kRejected, FailReason::kQueueFull, now_ns);
    return;
  }
  a.holds_intake = permit->held;
  a.intake_token = permit->token;
  tier.jobs.push_back(slot);
  DispatchTier(t, now_ns);
}

void SimEngine::DispatchTier(int t, int64_t now_ns) {
  Tier& tier = tiers_[t - 1];
  if (tier.dispatching) return;  // the outer loop picks up whatever the nested call freed
  tier.dispatching = true;
  while (tier.idle > 0 && (!tier.ready.empty() || !tier.jobs.empty())) {
    if (!tier.ready.empty()) {
      const uint32_t slot = tier.ready.front();
      tier.ready.pop_front();
      Active& a = active_[slot];
      a.holds_worker = true;
      --tier.idle;
      Apply(slot, a.flow->OnSleepDone(now_ns, FlowRng(slot)), now_ns);
      continue;
    }
    // Its intake.discipline picks the request (CoDel may fail some first: 503 to their callers).
    uint32_t slot = 0;
    const bool took = tier.intake->Take(
        tier.jobs, now_ns, [this](uint32_t j) { return active_[j].arrival_ns; },
        [this, now_ns](uint32_t j) {
          FinishChild(j, OrderStatus::kRejected, FailReason::kQueueDelay, now_ns);
        },
        &slot);
    if (!took) continue;
    Active& a = active_[slot];
    if (!CallerWaiting(a) || (a.deadline_ns != kNoDeadline && now_ns >= a.deadline_ns)) {
      // Nobody waits for this request any more: drop it without doing any work.
      FinishChild(slot, OrderStatus::kExpired, FailReason::kNone, now_ns, /*dropped=*/true);
      continue;
    }
    a.holds_worker = true;
    --tier.idle;
    a.start_ns = now_ns;
    a.flow.emplace(&deps_, &stats_, a.key, a.deadline_ns, tier.first_dep, tier.num_deps);
    Apply(slot, a.flow->Begin(now_ns, FlowRng(slot)), now_ns);
  }
  tier.dispatching = false;
}

void SimEngine::ReleaseTierWorker(int t, int64_t now_ns) {
  ++tiers_[t - 1].idle;
  DispatchTier(t, now_ns);
}

void SimEngine::FinishChild(uint32_t slot, OrderStatus status, FailReason reason, int64_t now_ns,
                            bool dropped) {
  Active& a = active_[slot];
  const int t = a.tier;
  ServiceTotals& st = result_.services[t];
  const bool waiting = CallerWaiting(a);
  CountServiceEnd(
      st, {status, reason, a.arrival_ns, a.start_ns, a.deadline_ns, now_ns, waiting, dropped});
  if (a.holds_intake) {  // its service's intake.limit learns from its end, as the root's
    Tier& tier = tiers_[t - 1];
    ServicePermit permit{true, a.intake_token};
    a.holds_intake = false;
    tier.intake->OnEnd(permit, status, reason, now_ns, tier.intake_rng.Uniform01());
  }
  if (waiting) {
    const Outcome outcome =
        ChildAnswer(status, reason, a.deadline_ns, a.caller_until_ns, a.caller_until_is_deadline);
    Active& p = active_[a.parent];
    if (deps_[a.parent_dep].rounds()) {
      p.copy_retry_after_ns[a.parent_copy] = -1;
    } else {
      p.retry_after_ns = -1;
    }
    Schedule(now_ns, kAttemptEnd, a.parent, a.parent_gen, PackOutcome(outcome, a.parent_copy));
  }
  const bool held = a.holds_worker;
  a.live = false;
  a.holds_worker = false;
  ++a.gen;
  a.flow.reset();
  a.tier = 0;
  free_slots_.push_back(slot);
  // The worker takes its next request once the answer has reached the caller (an event after
  // the answer's, at the same instant): a request the answer made useless (the other copies of
  // a decided hedge or fan-out) is then dropped unstarted instead of being run.
  if (held) Schedule(now_ns, kTierFree, static_cast<uint32_t>(t));
}

}  // namespace rlab
