#include "rlab/sim/sim_engine.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_format.h"
#include "rlab/core/invariant.h"
#include "rlab/model/order_conservation.h"
#include "rlab/model/sample_schedule.h"

namespace rlab {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
constexpr uint32_t kNoJob = std::numeric_limits<uint32_t>::max();

// The attempt payload (sim/attempt_payload.h), under the names this file uses.
uint32_t Pack(const Outcome& o, bool committed, int copy = 0) {
  return PackAttempt(o, committed, copy);
}
int CopyOf(uint32_t p) { return AttemptCopy(p); }
Outcome Unpack(uint32_t p, int64_t retry_after_ns) { return UnpackAttempt(p, retry_after_ns); }
bool Committed(uint32_t p) { return AttemptCommitted(p); }

}  // namespace

SimEngine::SimEngine(const ScenarioConfig& config, const SimOptions& options)
    : config_(config),
      options_(options),
      rng_(config.seed),
      arrival_rng_(rng_.Stream("arrivals")),
      arrivals_(config.arrivals, config.duration_ns),
      key_rng_(rng_.Stream("keys")),
      think_rng_(rng_.Stream("think")),
      intake_rng_(rng_.Stream("intake")),
      origin_rng_(rng_.Stream("intake/origin")) {
  if (config_.intake.shedding) {
    shedder_ = std::make_unique<LoadShedder>(*config_.intake.shedding, config_.queue_capacity);
    result_.origins.Init(*config_.intake.shedding);
  }
  // Service graphs: every tier's dependencies in one list, root first (a root dependency's
  // label is its name: a single-service run draws the same streams as before).
  flat_deps_ = FlatDependencies(config_);
  const size_t n = flat_deps_.size();
  deps_.reserve(n);
  for (const FlatDependency& f : flat_deps_) {
    const DependencyConfig& d = *f.config;
    deps_.emplace_back(d);
    fault_rngs_.push_back(rng_.Stream("faults/" + f.label));
    policy_rngs_.push_back(rng_.Stream("policy/" + f.label));
    replica_rngs_.push_back(rng_.Stream("replicas/" + f.label));
    replica_servers_.emplace_back(d.replicas ? static_cast<size_t>(d.replicas->count) : 0);
  }
  stats_.resize(n);
  servers_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const CapacityConfig& cap = flat_deps_[i].config->faults.capacity;
    if (cap.max_in_service > 0) servers_[i].capacity.emplace(cap);
    // A replica's line is FIFO (its overrides' discipline is not used), as in the live engine.
    for (size_t r = 0; r < replica_servers_[i].size(); ++r) {
      CapacityConfig rc = deps_[i].replicas->faults(static_cast<int>(r)).config().capacity;
      rc.discipline = QueueDisciplineConfig{};
      if (rc.max_in_service > 0) replica_servers_[i][r].capacity.emplace(rc);
    }
  }
  result_.deps.resize(n);
  idle_workers_ = config_.workers;
  for (size_t i = 0; i < n; ++i) {
    if (deps_[i].breaker) {
      const int dep = static_cast<int>(i);
      deps_[i].breaker->AddListener([this, dep](const BreakerTransition& t) {
        if (t.to == BreakerState::kOpen) ++result_.deps[dep].trips;
        if (options_.record_events) {
          result_.transitions.push_back(
              {t.at_ns, dep, SimTransition::Kind::kBreaker, t.from, t.to, -1});
        }
      });
    }
  }
  if (options_.record_events) {
    for (size_t i = 0; i < n; ++i) {
      const auto& phases = flat_deps_[i].config->faults.phases;
      for (size_t p = 0; p < phases.size(); ++p) {
        result_.transitions.push_back({phases[p].start_ns, static_cast<int>(i),
                                       SimTransition::Kind::kPhaseStart, BreakerState::kClosed,
                                       BreakerState::kClosed, static_cast<int>(p)});
        result_.transitions.push_back({phases[p].end_ns, static_cast<int>(i),
                                       SimTransition::Kind::kPhaseEnd, BreakerState::kClosed,
                                       BreakerState::kClosed, static_cast<int>(p)});
      }
    }
  }
  if (config_.intake.rate_limit) {
    intake_rate_ = std::make_unique<RateGate>(*config_.intake.rate_limit);
  }
  // Service graphs: the tiers' pools, and which tier each dependency calls.
  dep_target_.assign(n, 0);
  int first_dep = static_cast<int>(config_.dependencies.size());
  for (const ServiceConfig& svc : config_.services) {
    Tier t;
    t.first_dep = first_dep;
    t.num_deps = static_cast<int>(svc.dependencies.size());
    t.queue_capacity = svc.queue_capacity;
    t.deadline_ns = svc.deadline_ns;
    t.idle = svc.workers;
    t.workers = svc.workers;
    t.intake = std::make_unique<ServiceIntake>(svc.intake);
    if (svc.intake.limit) t.intake_rng = rng_.Stream("intake/" + svc.name);
    first_dep += t.num_deps;
    tiers_.push_back(std::move(t));
  }
  for (size_t i = 0; i < n; ++i) {
    dep_target_[i] = ServiceIndexOf(config_, *flat_deps_[i].config) + 1;
  }
  if (!tiers_.empty()) result_.services.resize(tiers_.size() + 1);
  if (config_.intake.limit) {
    intake_limiter_ =
        std::make_unique<ConcurrencyLimiter>(ToConcurrencyLimitConfig(*config_.intake.limit));
  }
  // The readers of an order's key: a cache fallback (model/order_flow.cc) and a rate limit.
  keys_used_ = config_.intake.rate_limit.has_value();
  for (const ServiceConfig& svc : config_.services) {  // a service's per-key rate limit too
    keys_used_ = keys_used_ || (svc.intake.rate_limit && svc.intake.rate_limit->per_key);
  }
  for (const FlatDependency& f : flat_deps_) {
    const FallbackConfig::Kind k = f.config->fallback.kind;
    keys_used_ = keys_used_ || f.config->rate_limit.has_value() ||
                 k == FallbackConfig::Kind::kCache || k == FallbackConfig::Kind::kCacheOrDefault;
  }
}

void SimEngine::Schedule(int64_t t_ns, EventType type, uint32_t a, uint32_t b, uint32_t c) {
  events_.Push(t_ns, type, a, b, c);
}

absl::Status SimEngine::Run() {
  const ArrivalConfig& arr = config_.arrivals;
  if (arr.kind == ArrivalConfig::Kind::kClosedLoop) {
    for (int c = 0; c < arr.clients; ++c) ScheduleClient(c, SampleNs(arr.think_time, think_rng_));
  } else {
    ScheduleNextArrival(0);
  }
  InitTimeSeries();
  if (options_.sample_every_ns > 0) Schedule(options_.sample_every_ns, kSample);

  bool hit_until = false;
  int64_t last_activity_ns = 0;
  int64_t events_at_instant = 0;
  // A flat-shaped scenario runs on the flat path (sim/flat_run.h); it leaves the queue empty, or
  // holding only events past until_ns, for the loop below to find.
  if (options_.flat_path && FlatPathEnabled() && IsFlatScenario(config_)) {
    const absl::Status flat = FlatRun(*this).Run(&last_activity_ns);
    if (!flat.ok()) return flat;
  }
  while (!events_.empty()) {
    if (options_.until_ns >= 0 && events_.Top().t_ns > options_.until_ns) {
      hit_until = true;
      break;
    }
    const SimEvent e = events_.Pop();
    events_at_instant = e.t_ns == now_ns_ ? events_at_instant + 1 : 1;
    now_ns_ = e.t_ns;
    if (e.type != kSample) last_activity_ns = now_ns_;
    if (events_at_instant > options_.max_events_at_one_instant) {
      return NoProgressError(events_at_instant);
    }
    if (++result_.events > options_.max_events) return TooManyEventsError();
    switch (e.type) {
      case kArrival:
        NewOrder(now_ns_, -1);
        ScheduleNextArrival(now_ns_);
        break;
      case kClientSubmit:
        NewOrder(now_ns_, static_cast<int>(e.a));
        break;
      case kAttemptEnd:
        OnAttemptEnd(e.a, e.b, e.c, now_ns_);
        break;
      case kServiceDone:
        OnServiceDone(static_cast<int>(e.a), now_ns_, static_cast<int>(e.b) - 1);
        break;
      case kSleepEnd: {
        Active& a = active_[e.a];
        if (!a.live || a.gen != e.b) break;
        ++a.gen;
        if (a.holds_worker) {
          Apply(e.a, a.flow->OnSleepDone(now_ns_, FlowRng(e.a)), now_ns_);
        } else if (a.tier > 0) {  // service graphs: back in its own tier's ready line
          tiers_[a.tier - 1].ready.push_back(e.a);
          DispatchTier(a.tier, now_ns_);
        } else {
          ready_.push_back(e.a);
          DispatchWork(now_ns_);
        }
        break;
      }
      case kServiceCall:
        OnServiceCall(e.a, now_ns_);
        break;
      case kTierFree:
        ReleaseTierWorker(static_cast<int>(e.a), now_ns_);
        break;
      case kServiceReady:  // service graphs: sim_services.cc
        OnServiceReady(e.a, e.b, now_ns_);
        break;
      case kHedgeTimer:
        OnHedgeTimer(e.a, e.b, now_ns_);
        break;
      case kIntakeReady:
        OnIntakeReady(e.a, e.b, now_ns_);
        break;
      case kBulkheadTimeout: {
        Active& a = active_[e.a];
        if (!a.live || a.gen != e.b) break;
        ++a.gen;
        const int dep = a.flow->current_dep();
        deps_[dep].bulkhead->CancelWait(true);
        Apply(e.a, a.flow->OnBulkheadTimeout(now_ns_, FlowRng(e.a)), now_ns_);
        break;
      }
      case kSample:
        OnSampleTick(now_ns_);
        break;
    }
  }
  // A run cut at `until` ends there; a drained run ends at its last real event, not at the
  // sampling tick after it (sampling must not change goodput or the time averages).
  now_ns_ = hit_until ? options_.until_ns : last_activity_ns;
  // Close the integrals at the end time.
  SetInSystem(now_ns_, 0);
  SetBusy(now_ns_, 0);
  result_.end_ns = now_ns_;
  // Accumulated in nanoseconds (no division per event); seconds once, here.
  result_.sojourn_sum_s = sojourn_sum_ns_ / 1e9;
  result_.in_system_integral_s = in_system_integral_ns_ / 1e9;
  result_.in_flight = in_system_;
  RLAB_INVARIANT(result_.arrived == TerminalOrders(result_.by_status) + in_system_,
                 "simulator at the end: %d arrived != %d terminal + %d in flight", result_.arrived,
                 TerminalOrders(result_.by_status), in_system_);  // conservation of orders
  if (!hit_until) {
    // Drained: no event is left, so an order that is not terminal now would never become so.
    // That is an engine bug (an order must end in exactly one terminal state), never a result.
    int64_t terminal = 0;
    for (int i = 0; i < kNumOrderStatuses; ++i) {
      if (IsTerminal(static_cast<OrderStatus>(i))) terminal += result_.by_status[i];
    }
    // Service graphs: every child request ended too.
    for (size_t t = 1; t < result_.services.size(); ++t) {
      if (result_.services[t].in_flight != 0) {
        return absl::InternalError(absl::StrFormat(
            "internal error: the simulation drained with %d requests of service %s not ended",
            result_.services[t].in_flight, config_.services[t - 1].name));
      }
    }
    if (in_system_ != 0 || terminal != result_.arrived) {
      return absl::InternalError(absl::StrFormat(
          "internal error: the simulation drained at t = %.9f s with %d orders not terminal "
          "(%d arrived, %d terminal); every order must end in a terminal state",
          NsToSeconds(now_ns_), in_system_, result_.arrived, terminal));
    }
  }
  if (options_.sample_every_ns > 0) Sample(now_ns_, true);
  for (size_t i = 0; i < deps_.size(); ++i) {
    DependencyTotals& t = result_.deps[i];
    t.flow = stats_[i];
    if (servers_[i].capacity) AddCapacityTotals(servers_[i].capacity->counts(), t);
    for (const Server& r : replica_servers_[i]) {
      if (r.capacity) AddCapacityTotals(r.capacity->counts(), t);
    }
    if (deps_[i].breaker) t.breaker = deps_[i].breaker->Snapshot(now_ns_);
    if (deps_[i].token_bucket)
      t.budget_tokens = deps_[i].token_bucket->Snapshot().milli_tokens * 1e-3;
    if (deps_[i].hedger && deps_[i].hedger->config().budget_ratio >= 0.0) {
      t.hedge_tokens = deps_[i].hedger->tokens();
      if (options_.record_events) {  // the hedge budget's edges (sorted in below)
        for (const Hedger::BudgetEvent& e : deps_[i].hedger->BudgetEvents()) {
          result_.transitions.push_back(
              {e.t_ns, static_cast<int>(i),
               e.dry ? SimTransition::Kind::kHedgeDry : SimTransition::Kind::kHedgeRefill,
               BreakerState::kClosed, BreakerState::kClosed, -1});
        }
      }
    }
    if (const ReplicaPool* pool = deps_[i].replicas.get()) {
      t.replicas = pool->Totals(now_ns_);
      t.panic_picks = pool->panic_picks();
      if (options_.record_events) {
        for (const ReplicaEvent& e : pool->Events()) {
          result_.ejections.push_back({static_cast<int>(i), e});
        }
      }
    }
  }
  std::stable_sort(result_.ejections.begin(), result_.ejections.end(),
                   [](const ReplicaEjection& x, const ReplicaEjection& y) {
                     return x.event.t_ns < y.event.t_ns;
                   });
  std::stable_sort(result_.transitions.begin(), result_.transitions.end(),
                   [](const SimTransition& x, const SimTransition& y) { return x.t_ns < y.t_ns; });
  return absl::OkStatus();
}

void SimEngine::OnSampleTick(int64_t now_ns) {
  // A tick after the run has drained lies past its end: no row, no next tick. The final row is
  // written at the last real event (Run).
  if (now_ns >= config_.duration_ns && in_system_ == 0) return;
  Sample(now_ns, false);
  // Regular through arrivals and the start of the drain, then doubling gaps: the rows of a
  // drain stay bounded however long it lasts (model/sample_schedule.h).
  Schedule(now_ns + NextSampleGapNs(now_ns, config_.duration_ns, options_.sample_every_ns),
           kSample);
}

absl::Status SimEngine::NoProgressError(int64_t events_at_instant) const {
  return absl::ResourceExhaustedError(absl::StrFormat(
      "the simulation made no progress: %d events in a row at t = %.9f s with %d orders in "
      "flight; work that takes no virtual time loops forever (for example a closed loop with "
      "zero think time whose calls answer in zero time): give the think time or the latency a "
      "positive value",
      events_at_instant, NsToSeconds(now_ns_), in_system_));
}

absl::Status SimEngine::TooManyEventsError() const {
  return absl::ResourceExhaustedError(absl::StrFormat(
      "the simulation stopped after max_events = %d events at t = %.3f s with %d orders in "
      "flight; raise max_events, or check for work that never ends",
      options_.max_events, NsToSeconds(now_ns_), in_system_));
}

void SimEngine::ScheduleNextArrival(int64_t now_ns) {
  const int64_t next = arrivals_.Next(now_ns, config_.arrivals.rate, arrival_rng_);
  // The next arrival is the only one pending: it waits in the queue's lane, not its heap.
  if (next != ArrivalProcess::kNone) events_.PushLane(next, kArrival);
}

void SimEngine::ScheduleClient(int client, int64_t at_ns) {
  if (at_ns < config_.duration_ns) Schedule(at_ns, kClientSubmit, static_cast<uint32_t>(client));
}

uint32_t SimEngine::AllocSlot() {
  if (!free_slots_.empty()) {
    const uint32_t s = free_slots_.back();
    free_slots_.pop_back();
    return s;
  }
  active_.emplace_back();
  return static_cast<uint32_t>(active_.size() - 1);
}

int32_t SimEngine::DrawKey() {
  // Nothing reads the key unless a cache fallback or a rate limit does: no draw then (the keys
  // have a stream of their own, so no other draw moves).
  if (!keys_used_) return 0;
  return static_cast<int32_t>(key_rng_.UniformIndex(static_cast<uint64_t>(config_.num_keys)));
}

RandomStream& SimEngine::FlowRng(uint32_t slot) {
  return policy_rngs_[active_[slot].flow ? active_[slot].flow->current_dep() : 0];
}

void SimEngine::NewOrder(int64_t now_ns, int client) {
  ++result_.arrived;
  int64_t record = -1;
  if (options_.record_orders) {
    record = static_cast<int64_t>(result_.orders.size());
    result_.orders.emplace_back();
    result_.orders.back().arrival_ns = now_ns;
  }
  // intake.shedding: the order's class and tenant (its own stream: no other draw moves).
  OrderOrigin origin;
  if (shedder_) origin = DrawOrigin(shedder_->config(), origin_rng_);
  if (record >= 0) result_.orders[record].origin = PackOrigin(origin);
  // intake.rate_limit, then intake.limit: the outermost gates, in front of the queue. The key
  // is drawn here only when the rate limit needs it (no other run's draws move). A refusal by
  // either counts, per class, with the queue's own refusals (`queue_full`).
  int32_t key = -1;
  int64_t rate_wait_ns = 0;
  if (intake_rate_) {
    if (intake_rate_->config().per_key) {
      key = static_cast<int32_t>(key_rng_.UniformIndex(static_cast<uint64_t>(config_.num_keys)));
    }
    int64_t cap_ns = std::numeric_limits<int64_t>::max();
    if (config_.order_deadline_ns > 0) cap_ns = config_.order_deadline_ns;
    const std::optional<int64_t> wait_ns = intake_rate_->Reserve(key, now_ns, cap_ns);
    if (!wait_ns) {
      result_.origins.OnArrival(origin, false, ShedCause::kAdmit);
      RejectAtIntake(now_ns, record, client, FailReason::kRateLimited);
      return;
    }
    rate_wait_ns = *wait_ns;
  }
  if (rate_wait_ns > 0) {
    // In the system (conservation holds at every instant), not yet queued; the shedder does
    // not see it again (OnIntakeReady queues it or refuses it as limited / queue_full).
    result_.origins.OnArrival(origin, true, ShedCause::kAdmit);
    const uint32_t slot = AllocSlot();
    Active& a = active_[slot];
    a.flow.reset();
    a.arrival_ns = now_ns;
    a.start_ns = -1;
    a.deadline_ns =
        config_.order_deadline_ns > 0 ? now_ns + config_.order_deadline_ns : kNoDeadline;
    a.record = record;
    a.client = client;
    a.key = key >= 0 ? key : DrawKey();
    a.attempt_dep = -1;
    a.holds_worker = false;
    a.holds_intake = false;
    a.live = true;
    a.origin = origin;
    ++a.gen;
    SetInSystem(now_ns, +1);
    Schedule(now_ns + rate_wait_ns, kIntakeReady, slot, a.gen);
    return;
  }
  std::optional<LimitToken> intake_token;
  if (intake_limiter_) {
    intake_token = intake_limiter_->TryAcquire(now_ns);
    if (!intake_token) {
      result_.origins.OnArrival(origin, false, ShedCause::kAdmit);
      RejectAtIntake(now_ns, record, client, FailReason::kLimited);
      return;
    }
  }
  // The queue's own limit (queue_full), then the shedder's decision.
  const bool worker_free = idle_workers_ > 0 && job_queue_.empty() && ready_.empty();
  const bool full = !worker_free && static_cast<int>(job_queue_.size()) >= config_.queue_capacity;
  const ShedCause shed = full || !shedder_
                             ? ShedCause::kAdmit
                             : shedder_->Admit(now_ns, origin.criticality, origin.tenant);
  result_.origins.OnArrival(origin, !full && shed == ShedCause::kAdmit, shed);
  if (full || shed != ShedCause::kAdmit) {
    if (intake_token) intake_limiter_->OnIgnore(*intake_token);
    RejectAtIntake(now_ns, record, client, full ? FailReason::kQueueFull : FailReason::kShed);
    return;
  }
  const uint32_t slot = AllocSlot();
  Active& a = active_[slot];
  a.holds_intake = intake_token.has_value();
  if (intake_token) a.intake_token = *intake_token;
  a.flow.reset();
  a.arrival_ns = now_ns;
  a.start_ns = -1;
  a.deadline_ns = config_.order_deadline_ns > 0 ? now_ns + config_.order_deadline_ns : kNoDeadline;
  a.record = record;
  a.client = client;
  a.key = key >= 0 ? key : DrawKey();
  a.attempt_dep = -1;
  a.holds_worker = false;
  a.live = true;
  a.origin = origin;
  ++a.gen;
  SetInSystem(now_ns, +1);
  job_queue_.push_back(slot);
  DispatchWork(now_ns);
}

void SimEngine::RejectAtIntake(int64_t now_ns, int64_t record, int client, FailReason reason) {
  Account(OrderStatus::kRejected, reason, false, now_ns, now_ns, false);
  if (record >= 0) {
    OrderRecord& r = result_.orders[record];
    r.end_ns = now_ns;
    r.status = static_cast<uint8_t>(OrderStatus::kRejected);
    r.reason = static_cast<uint8_t>(reason);
  }
  if (client >= 0) {
    ScheduleClient(client, now_ns + SampleNs(config_.arrivals.think_time, think_rng_));
  }
}

void SimEngine::OnIntakeReady(uint32_t slot, uint32_t gen, int64_t now_ns) {
  Active& a = active_[slot];
  if (!a.live || a.gen != gen) return;
  std::optional<LimitToken> intake_token;
  if (intake_limiter_) {
    intake_token = intake_limiter_->TryAcquire(now_ns);
    if (!intake_token) {
      FinishWithoutFlow(slot, OrderStatus::kRejected, FailReason::kLimited, now_ns);
      return;
    }
  }
  const bool worker_free = idle_workers_ > 0 && job_queue_.empty() && ready_.empty();
  if (!worker_free && static_cast<int>(job_queue_.size()) >= config_.queue_capacity) {
    if (intake_token) intake_limiter_->OnIgnore(*intake_token);
    FinishWithoutFlow(slot, OrderStatus::kRejected, FailReason::kQueueFull, now_ns);
    return;
  }
  if (shedder_ &&
      shedder_->Admit(now_ns, a.origin.criticality, a.origin.tenant) != ShedCause::kAdmit) {
    // It reaches the queue only now: the shedder decides now (counted admitted on arrival).
    if (intake_token) intake_limiter_->OnIgnore(*intake_token);
    FinishWithoutFlow(slot, OrderStatus::kRejected, FailReason::kShed, now_ns);
    return;
  }
  a.holds_intake = intake_token.has_value();
  if (intake_token) a.intake_token = *intake_token;
  job_queue_.push_back(slot);
  DispatchWork(now_ns);
}

void SimEngine::DispatchWork(int64_t now_ns) {
  if (dispatching_) return;  // the outer loop picks up whatever the nested call freed
  dispatching_ = true;
  while (idle_workers_ > 0 && (!ready_.empty() || !job_queue_.empty())) {
    if (!ready_.empty()) {
      const uint32_t slot = ready_.front();
      ready_.pop_front();
      Active& a = active_[slot];
      a.holds_worker = true;
      --idle_workers_;
      SetBusy(now_ns, +1);
      Apply(slot, a.flow->OnSleepDone(now_ns, FlowRng(slot)), now_ns);
      continue;
    }
    const uint32_t slot = TakeJob(now_ns);
    if (slot == kNoJob) continue;
    Active& a = active_[slot];
    if (shedder_) shedder_->OnDequeue(now_ns, a.origin.tenant, now_ns - a.arrival_ns);
    if (a.deadline_ns != kNoDeadline && now_ns >= a.deadline_ns) {
      // Nobody waits for this order any more: drop it without calling a dependency.
      FinishWithoutFlow(slot, OrderStatus::kExpired, FailReason::kNone, now_ns);
      continue;
    }
    Start(slot, now_ns);
  }
  dispatching_ = false;
}

uint32_t SimEngine::TakeJob(int64_t now_ns) {
  QueueDiscipline& d = intake_discipline_;
  if (d.fifo()) {
    const uint32_t slot = job_queue_.front();
    job_queue_.pop_front();
    return slot;
  }
  while (!job_queue_.empty()) {
    // The queue is in arrival order: its front is the oldest order.
    const bool back =
        d.Next(now_ns, active_[job_queue_.front()].arrival_ns) == QueueDiscipline::End::kBack;
    const uint32_t slot = back ? job_queue_.back() : job_queue_.front();
    if (back) {
      job_queue_.pop_back();
    } else {
      job_queue_.pop_front();
    }
    if (!d.drops() || d.OnDequeue(now_ns, now_ns - active_[slot].arrival_ns, job_queue_.size()) ==
                          QueueDiscipline::Verdict::kServe) {
      return slot;
    }
    // CoDel: the order fails at dequeue, before any dependency is called. It left the queue:
    // the shedder's per-tenant count must know.
    if (shedder_) shedder_->OnDequeue(now_ns, active_[slot].origin.tenant, -1);
    FinishWithoutFlow(slot, OrderStatus::kRejected, FailReason::kQueueDelay, now_ns);
    if (job_queue_.empty()) d.OnEmpty(now_ns);
  }
  return kNoJob;
}

void SimEngine::Start(uint32_t slot, int64_t now_ns) {
  Active& a = active_[slot];
  a.holds_worker = true;
  --idle_workers_;
  SetBusy(now_ns, +1);
  a.start_ns = now_ns;
  result_.queue_wait.Add(now_ns - a.arrival_ns);
  if (a.record >= 0) result_.orders[a.record].start_ns = now_ns;
  // The root's own dependencies (the flat list goes on with the services').
  a.flow.emplace(&deps_, &stats_, a.key, a.deadline_ns, 0,
                 static_cast<int>(config_.dependencies.size()));
  Apply(slot, a.flow->Begin(now_ns, FlowRng(slot)), now_ns);
}

void SimEngine::Apply(uint32_t slot, const FlowAction& action, int64_t now_ns) {
  // Read the hand-offs before Handle may finish (and recycle) the slot.
  const uint32_t handoffs = active_[slot].flow->handoffs();
  // Service graphs: hand-off bits count from the first dependency of the slot's tier.
  const int tier = active_[slot].tier;
  const int first_dep = tier == 0 ? 0 : tiers_[tier - 1].first_dep;
  Handle(slot, action, now_ns);
  for (uint32_t mask = handoffs; mask != 0; mask &= mask - 1) {
    const int dep = first_dep + __builtin_ctz(mask);
    auto& waiters = servers_[dep].bulkhead_waiters;
    while (!waiters.empty()) {
      const auto [w, gen] = waiters.front();
      waiters.pop_front();
      Active& a = active_[w];
      if (!a.live || a.gen != gen) continue;  // gave up already (its wait was cancelled)
      ++a.gen;
      Apply(w, a.flow->OnBulkheadAdmitted(now_ns, FlowRng(w)), now_ns);
      break;
    }
  }
}

void SimEngine::Handle(uint32_t slot, const FlowAction& action, int64_t now_ns) {
  Active& a = active_[slot];
  switch (action.kind) {
    case FlowAction::Kind::kAttempt:
      DoAttempt(slot, action, now_ns);
      if (action.hedge_at_ns != kNoDeadline) Schedule(action.hedge_at_ns, kHedgeTimer, slot, a.gen);
      return;
    case FlowAction::Kind::kWait:
      return;
    case FlowAction::Kind::kSleep:
      ++a.gen;
      Schedule(action.until_ns, kSleepEnd, slot, a.gen);
      if (config_.release_worker_during_backoff && a.holds_worker && a.tier > 0) {
        a.holds_worker = false;
        ReleaseTierWorker(a.tier, now_ns);
      } else if (config_.release_worker_during_backoff && a.holds_worker) {
        a.holds_worker = false;
        ++idle_workers_;
        SetBusy(now_ns, -1);
        DispatchWork(now_ns);
      }
      return;
    case FlowAction::Kind::kWaitBulkhead:
      ++a.gen;
      servers_[action.dep].bulkhead_waiters.emplace_back(slot, a.gen);
      if (action.until_ns != kNoDeadline) Schedule(action.until_ns, kBulkheadTimeout, slot, a.gen);
      return;
    case FlowAction::Kind::kDone:
      Finish(slot, now_ns);
      return;
  }
}

void SimEngine::DoAttempt(uint32_t slot, const FlowAction& action, int64_t now_ns) {
  Active& a = active_[slot];
  // A new call invalidates every event of the previous one; a hedge joins the call in progress.
  if (a.outstanding == 0) ++a.gen;
  a.attempt_dep = action.dep;
  if (deps_[action.dep].rounds()) {
    const size_t n = static_cast<size_t>(deps_[action.dep].max_copies);
    if (a.copy_service_ns.size() < n) {
      a.copy_service_ns.resize(n);
      a.copy_retry_after_ns.resize(n);
    }
  }
  for (uint32_t mask = action.launch; mask != 0; mask &= mask - 1) {
    LaunchCopy(slot, __builtin_ctz(mask), action, now_ns);
  }
}

void SimEngine::LaunchCopy(uint32_t slot, int copy, const FlowAction& action, int64_t now_ns) {
  Active& a = active_[slot];
  const int dep = action.dep;
  a.outstanding |= 1u << copy;
  const bool per_copy = deps_[dep].rounds();
  if (per_copy) a.copy_service_ns[copy] = -1;
  ++servers_[dep].in_flight;
  if (a.tier > 0 && now_ns > a.deadline_ns) ++result_.services[a.tier].overran;  // never
  if (dep_target_[dep] > 0) {  // service graphs: the call is a request to another tier
    CallService(slot, copy, action, now_ns);
    return;
  }
  // Replicas: the balancer picks the server of this copy.
  int replica = -1;
  if (ReplicaPool* pool = deps_[dep].replicas.get()) {
    const size_t n = static_cast<size_t>(std::max(1, deps_[dep].max_copies));
    if (a.copy_replica.size() < n) {
      a.copy_replica.resize(n);
      a.copy_sent_ns.resize(n);
      a.copy_replica_permit.resize(n);
    }
    replica = pool->Begin(now_ns, replica_rngs_[dep], nullptr, &a.copy_replica_permit[copy]);
    a.copy_replica[copy] = replica;
    a.copy_sent_ns[copy] = now_ns;
    if (replica < 0) {
      // Every replica ejected and no panic: no replica is called, the call fails at once with
      // 503 (Envoy's "no healthy upstream"); or no replica's own breaker admits: breaker_open.
      if (!per_copy) {
        a.retry_after_ns = -1;
      } else {
        a.copy_retry_after_ns[copy] = -1;
      }
      Schedule(now_ns, kAttemptEnd, slot, a.gen,
               Pack(ReplicaPool::RefusalOutcome(replica), false, copy));
      return;
    }
    ++replica_servers_[dep][replica].in_flight;
  }
  Server& srv = ServerOf(dep, replica);
  if (!srv.capacity) {
    result_.deps[dep].max_load = std::max<int64_t>(result_.deps[dep].max_load, srv.in_flight);
    BeginService(dep, slot, a.gen, copy, action.until_ns, action.until_is_deadline, true, now_ns,
                 replica);
    return;
  }
  const LineCall call{slot, a.gen, action.until_ns, action.until_is_deadline,
                      static_cast<uint8_t>(copy)};
  switch (srv.capacity->Arrive(now_ns, call)) {
    case CapacityAdmission::kServe:
      BeginService(dep, slot, a.gen, copy, action.until_ns, action.until_is_deadline, true, now_ns,
                   replica);
      return;
    case CapacityAdmission::kRejected:
      if (!per_copy) {
        a.retry_after_ns = -1;
      } else {
        a.copy_retry_after_ns[copy] = -1;
      }
      Schedule(now_ns, kAttemptEnd, slot, a.gen, Pack(Outcome::Http(503), false, copy));
      return;
    case CapacityAdmission::kQueued:
      break;
  }
  if (action.until_ns != kNoDeadline) {
    const Outcome o = Outcome::Of(action.until_is_deadline ? OutcomeKind::kDeadlineExceeded
                                                           : OutcomeKind::kTimeout);
    Schedule(action.until_ns, kAttemptEnd, slot, a.gen, Pack(o, false, copy));
  }
}

void SimEngine::BeginService(int dep, uint32_t slot, uint32_t gen, int copy, int64_t until_ns,
                             bool until_is_deadline, bool caller_waiting, int64_t now_ns,
                             int replica) {
  Server& srv = ServerOf(dep, replica);
  const FaultModel& faults = FaultsOf(dep, replica);
  const bool limited = srv.capacity.has_value();
  // Load that slows the server: the calls it is serving at once (this one included). Calls
  // waiting in its line cost time by waiting, not by slowing the others down.
  const int load = limited ? srv.capacity->in_service() : srv.in_flight;
  const AttemptDraw draw = faults.Draw(now_ns, load, fault_rngs_[dep]);
  if (limited) {
    Schedule(now_ns + draw.service_ns, kServiceDone, static_cast<uint32_t>(dep),
             static_cast<uint32_t>(replica + 1));
  }
  if (!caller_waiting) return;  // served for nobody (CapacityCounts::wasted)
  Active& a = active_[slot];
  const bool per_copy = deps_[dep].rounds();
  if (per_copy) a.copy_service_ns[copy] = draw.service_ns;
  // The caller's view: the answer, unless its timeout (or deadline) comes first. A hung call
  // never answers, even when the caller has no timeout (until_ns = kNever): it then lasts
  // Faults.hang, as in the live engine.
  const int64_t answer_ns = now_ns + draw.service_ns;  // service_ns is capped: no overflow
  if (!draw.hangs && answer_ns <= until_ns) {
    if (!per_copy) {
      a.retry_after_ns = draw.outcome.retry_after_ns;
    } else {
      a.copy_retry_after_ns[copy] = draw.outcome.retry_after_ns;
    }
    Schedule(answer_ns, kAttemptEnd, slot, gen, Pack(draw.outcome, draw.committed, copy));
    return;
  }
  const Outcome timeout =
      Outcome::Of(until_is_deadline ? OutcomeKind::kDeadlineExceeded : OutcomeKind::kTimeout);
  // No answer in time. (A call that waited in line already has this timeout event; the second
  // one carries the commit flag and whichever runs first ends the attempt.)
  int64_t end_ns = until_ns;
  if (end_ns == kNever) end_ns = now_ns + faults.config().hang_ns;
  Schedule(end_ns, kAttemptEnd, slot, gen, Pack(timeout, draw.committed, copy));
}

void SimEngine::OnAttemptEnd(uint32_t slot, uint32_t gen, uint32_t packed, int64_t now_ns) {
  Active& a = active_[slot];
  const int copy = CopyOf(packed);
  // Stale events (an answer after a timeout, or the reverse, or a cancelled copy's answer) find
  // the attempt already over.
  if (!a.live || a.gen != gen || a.attempt_dep < 0 || ((a.outstanding >> copy) & 1u) == 0) return;
  const int dep = a.attempt_dep;
  a.outstanding &= ~(1u << copy);
  if (a.outstanding == 0) {
    a.attempt_dep = -1;
    ++a.gen;
  }
  --servers_[dep].in_flight;
  const Outcome outcome =
      Unpack(packed, deps_[dep].rounds() ? a.copy_retry_after_ns[copy] : a.retry_after_ns);
  EndAtReplica(slot, dep, copy, outcome, now_ns);
  const FlowAction action =
      a.flow->OnAttemptDone(now_ns, outcome, Committed(packed), FlowRng(slot), copy);
  SyncCopies(slot, action);
  Apply(slot, action, now_ns);
}

void SimEngine::OnHedgeTimer(uint32_t slot, uint32_t gen, int64_t now_ns) {
  Active& a = active_[slot];
  if (!a.live || a.gen != gen || a.outstanding == 0) return;
  const FlowAction action = a.flow->OnHedgeTimer(now_ns, FlowRng(slot));
  Apply(slot, action, now_ns);
}

void SimEngine::SyncCopies(uint32_t slot, const FlowAction& next) {
  Active& a = active_[slot];
  // A decided call may be followed at once by the next dependency's call, whose copy 0 the flow
  // already counts as outstanding: every copy still out belongs to the old call then, and must
  // not be mistaken for the new one (its answer would end the new call).
  const bool new_call = next.kind == FlowAction::Kind::kAttempt && (next.launch & 1u) != 0;
  const uint32_t keep = new_call ? 0u : a.flow->outstanding();
  const uint32_t cancelled = a.outstanding & ~keep;
  if (cancelled == 0) return;
  const int dep = a.attempt_dep;
  for (uint32_t mask = cancelled; mask != 0; mask &= mask - 1) {
    const int copy = __builtin_ctz(mask);
    --servers_[dep].in_flight;
    EndAtReplica(slot, dep, copy, Outcome::Of(OutcomeKind::kCancelled), now_ns_);
    // In service: the server finishes it for nobody. Still in line: counted if it gets served.
    if (a.copy_service_ns[copy] >= 0) {
      result_.deps[dep].wasted_attempt_ns += a.copy_service_ns[copy];
    }
  }
  a.outstanding &= ~cancelled;
  if (a.outstanding == 0) {
    a.attempt_dep = -1;
    ++a.gen;
  }
}

void SimEngine::OnServiceDone(int dep, int64_t now_ns, int replica) {
  CapacityServer<LineCall>& srv = *ServerOf(dep, replica).capacity;
  srv.Release();
  // The freed slot goes to the call the line's rules pick (model/capacity_server.h).
  while (const std::optional<LineCall> w = srv.Take(now_ns)) {
    Active& a = active_[w->slot];
    const bool waiting =
        a.live && a.gen == w->gen && a.attempt_dep == dep && ((a.outstanding >> w->copy) & 1u) != 0;
    switch (srv.Judge(now_ns, waiting)) {
      case LineVerdict::kDiscard:
        break;
      case LineVerdict::kDrop:
        // CoDel: the call fails at once with 503, as when the line is full.
        if (!waiting) break;
        if (!deps_[dep].rounds()) {
          a.retry_after_ns = -1;
        } else {
          a.copy_retry_after_ns[w->copy] = -1;
        }
        Schedule(now_ns, kAttemptEnd, w->slot, w->gen, Pack(Outcome::Http(503), false, w->copy));
        break;
      case LineVerdict::kServe:
      case LineVerdict::kServeWasted:
        BeginService(dep, w->slot, w->gen, w->copy, w->until_ns, w->until_is_deadline, waiting,
                     now_ns, replica);
        break;
    }
  }
}

SimEngine::Server& SimEngine::ServerOf(int dep, int replica) {
  return replica < 0 ? servers_[dep] : replica_servers_[dep][static_cast<size_t>(replica)];
}

const FaultModel& SimEngine::FaultsOf(int dep, int replica) const {
  return replica < 0 ? deps_[dep].faults : deps_[dep].replicas->faults(replica);
}

void SimEngine::EndAtReplica(uint32_t slot, int dep, int copy, const Outcome& outcome,
                             int64_t now_ns) {
  ReplicaPool* pool = deps_[dep].replicas.get();
  if (pool == nullptr) return;
  const Active& a = active_[slot];
  const int replica = a.copy_replica[copy];
  if (replica < 0) return;  // no replica was called
  --replica_servers_[dep][static_cast<size_t>(replica)].in_flight;
  pool->End(replica, now_ns, now_ns - a.copy_sent_ns[copy], outcome, a.copy_replica_permit[copy]);
}

void SimEngine::Finish(uint32_t slot, int64_t now_ns) {
  Active& a = active_[slot];
  const OrderFlow& f = *a.flow;
  result_.charges += f.charges();
  result_.applied_charges += f.applied_charges();
  if (f.applied_charges() > 1 && a.tier == 0) ++result_.double_charged_orders;
  if (a.record >= 0) {
    OrderRecord& r = result_.orders[a.record];
    r.attempts = static_cast<uint16_t>(std::min(f.attempts(), 65535));
    r.degraded = f.degraded() ? 1 : 0;
    r.charges = static_cast<uint8_t>(std::min(f.charges(), 255));
    r.applied = static_cast<uint8_t>(std::min(f.applied_charges(), 255));
  }
  FinishWithoutFlow(slot, f.status(), f.reason(), now_ns);
}

void SimEngine::FinishWithoutFlow(uint32_t slot, OrderStatus status, FailReason reason,
                                  int64_t now_ns) {
  Active& a = active_[slot];
  if (a.tier > 0) {  // service graphs: a child request
    FinishChild(slot, status, reason, now_ns);
    return;
  }
  const bool degraded = a.flow && a.flow->degraded();
  Account(status, reason, degraded, a.arrival_ns, now_ns, true);
  result_.origins.OnEnd(a.origin, status, now_ns - a.arrival_ns);
  if (a.record >= 0) {
    OrderRecord& r = result_.orders[a.record];
    r.end_ns = now_ns;
    r.status = static_cast<uint8_t>(status);
    r.reason = static_cast<uint8_t>(reason);
  }
  if (a.holds_intake) {
    a.holds_intake = false;
    switch (IntakeLimitSample(status, reason)) {
      case LimitSampleKind::kSuccess:
        intake_limiter_->OnSuccess(a.intake_token, now_ns, intake_rng_.Uniform01());
        break;
      case LimitSampleKind::kDropped:
        intake_limiter_->OnDropped(a.intake_token, now_ns, intake_rng_.Uniform01());
        break;
      case LimitSampleKind::kIgnore:
        intake_limiter_->OnIgnore(a.intake_token);
        break;
    }
  }
  const int client = a.client;
  const bool held = a.holds_worker;
  a.live = false;
  a.holds_worker = false;
  ++a.gen;
  a.flow.reset();
  free_slots_.push_back(slot);
  SetInSystem(now_ns, -1);
  if (client >= 0) {
    ScheduleClient(client, now_ns + SampleNs(config_.arrivals.think_time, think_rng_));
  }
  if (held) {
    ++idle_workers_;
    SetBusy(now_ns, -1);
    DispatchWork(now_ns);
  }
}

void SimEngine::Account(OrderStatus status, FailReason reason, bool degraded, int64_t arrival_ns,
                        int64_t end_ns, bool admitted) {
  ++result_.by_status[static_cast<size_t>(status)];
  if (reason != FailReason::kNone) ++result_.by_reason[static_cast<size_t>(reason)];
  if (degraded) ++result_.degraded;
  const int64_t sojourn_ns = end_ns - arrival_ns;
  sojourn_sum_ns_ += static_cast<double>(sojourn_ns);
  if (status == OrderStatus::kCompleted) result_.latency_completed.Add(sojourn_ns);
  if (admitted) result_.latency_terminal.Add(sojourn_ns);
}

void SimEngine::SetInSystem(int64_t now_ns, int delta) {
  in_system_integral_ns_ +=
      static_cast<double>(in_system_) * static_cast<double>(now_ns - last_in_system_change_ns_);
  last_in_system_change_ns_ = now_ns;
  in_system_ += delta;
}

void SimEngine::SetBusy(int64_t now_ns, int delta) {
  result_.busy_integral_ns += static_cast<int64_t>(busy_) * (now_ns - last_busy_change_ns_);
  last_busy_change_ns_ = now_ns;
  busy_ += delta;
}

void SimEngine::InitTimeSeries() {
  if (options_.sample_every_ns <= 0) return;
  for (const FlatDependency& d : flat_deps_) series_layout_.labels.push_back(d.label);
  series_layout_.intake_discipline = !intake_discipline_.fifo();
  series_layout_.intake_limit = intake_limiter_ != nullptr;
  series_layout_.intake_rate = intake_rate_ != nullptr;
  series_ = SeriesRow(deps_.size());
  auto& c = result_.ts_columns;
  c = SeriesColumns(series_layout_, deps_);
  // Service graphs, last: per non-root service, its intervals' counts and its state at the sample.
  AppendServiceColumns(config_, &c);  // model/service_accounting.h
  last_services_.assign(result_.services.size(), {});
  result_.ts.assign(c.size(), {});
}

void SimEngine::Sample(int64_t now_ns, bool final) {
  RLAB_INVARIANT(result_.arrived == TerminalOrders(result_.by_status) + in_system_,
                 "simulator at t = %d ns: %d arrived != %d terminal + %d in flight", now_ns,
                 result_.arrived, TerminalOrders(result_.by_status), in_system_);
  auto& ts = result_.ts;
  if (ts.empty()) return;
  // The final row closes a partial interval; skip it when a regular sample just did.
  if (final && now_ns <= last_sample_ns_) return;
  last_sample_ns_ = now_ns;
  size_t col = 0;
  auto put = [&](double v) { ts[col++].push_back(v); };
  SeriesCounts now;
  now.arrived = result_.arrived;
  now.by_status = result_.by_status;
  now.by_reason = result_.by_reason;
  now.degraded = result_.degraded;
  now.queue_depth = static_cast<int64_t>(job_queue_.size());
  now.busy_workers = busy_;
  now.in_system = in_system_;
  // How long the oldest waiting order has waited (0: none waits): the standing queue delay.
  if (!job_queue_.empty()) now.oldest_wait_ns = now_ns - active_[job_queue_.front()].arrival_ns;
  now.deps.resize(deps_.size());
  for (size_t d = 0; d < deps_.size(); ++d) {
    const FlowStats& s = stats_[d];
    now.deps[d] = {.calls = s.calls,
                   .retries = s.retries,
                   .failures = s.failures,
                   .rejected_breaker = s.rejected_breaker,
                   .in_flight = servers_[d].in_flight,
                   .hedges = s.hedges,
                   .hedges_won = s.hedges_won,
                   .cancelled = s.cancelled,
                   .hedges_denied = s.hedges_denied,
                   .wasted_attempt_ns = result_.deps[d].wasted_attempt_ns};
  }
  series_.Put(now_ns, series_layout_, now, deps_, intake_limiter_.get(), intake_rate_.get(), put);
  // In kServiceSeriesColumns' order (model/service_accounting.h).
  for (size_t t = 1; t < result_.services.size(); ++t) {
    const Tier& tier = tiers_[t - 1];
    PutServiceSample(SampleOf(result_.services[t], static_cast<int64_t>(tier.jobs.size()),
                              tier.workers - tier.idle),
                     &last_services_[t], put);
  }
}

}  // namespace rlab
