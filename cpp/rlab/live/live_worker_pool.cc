#include "rlab/live/live_worker_pool.h"

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_format.h"
#include "rlab/core/invariant.h"
#include "rlab/live/live_services.h"

namespace rlab {
namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

// A call waiting in a capacity line looks again at least this often (its waits are bounded).
constexpr int64_t kLineRecheckNs = kNsPerSecond;

void AtomicMax(std::atomic<int64_t>& a, int64_t v) {
  int64_t cur = a.load(std::memory_order_relaxed);
  while (cur < v && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

}  // namespace

LiveWorkerPool::LiveWorkerPool(const ScenarioConfig& config, bool order_events, Rng& rng,
                               std::vector<DependencyRuntime>& deps, LiveMetrics& metrics,
                               LiveIntake& intake, LiveShutdown& shutdown,
                               const std::unique_ptr<PaymentLedger>& ledger, std::string run_tag,
                               Hooks hooks)
    : config_(config),
      order_events_(order_events),
      deps_(deps),
      metrics_(metrics),
      intake_(intake),
      shutdown_(shutdown),
      ledger_(ledger),
      run_tag_(std::move(run_tag)),
      hooks_(std::move(hooks)) {
  const size_t n = config_.dependencies.size();
  dep_in_flight_ = std::make_unique<std::atomic<int64_t>[]>(n);
  dep_max_load_ = std::make_unique<std::atomic<int64_t>[]>(n);
  dep_wasted_ns_ = std::make_unique<std::atomic<int64_t>[]>(n);
  for (size_t i = 0; i < n; ++i) {
    dep_in_flight_[i].store(0);
    dep_max_load_[i].store(0);
    dep_wasted_ns_[i].store(0);
    bulkhead_lines_.push_back(std::make_unique<BulkheadLine>());
    auto server = std::make_unique<Server>(config_.dependencies[i].faults.capacity);
    {
      MutexLock lock(&server->mu);
      server->rng.emplace(rng.Stream("server/" + config_.dependencies[i].name));
    }
    servers_.push_back(std::move(server));
    // Replicas: a capacity line per replica (FIFO: its overrides' discipline is not used, as in
    // the simulator), each with its own draws for the calls started from its line.
    replica_servers_.emplace_back();
    const DependencyConfig& dc = config_.dependencies[i];
    for (int r = 0; dc.replicas && r < dc.replicas->count; ++r) {
      CapacityConfig rc = deps_[i].replicas->faults(r).config().capacity;
      rc.discipline = QueueDisciplineConfig{};
      auto rs = std::make_unique<Server>(rc);
      {
        MutexLock lock(&rs->mu);
        rs->rng.emplace(rng.Stream(absl::StrFormat("server/%s/%d", dc.name, r)));
      }
      replica_servers_.back().push_back(std::move(rs));
    }
  }
  for (const DependencyConfig& d : config_.dependencies) {
    auto slot = std::make_unique<FaultSlot>();
    MutexLock lock(&slot->mu);
    slot->model = std::make_shared<const FaultModel>(d.faults);
    fault_slots_.push_back(std::move(slot));
  }
  for (int i = 0; i < config_.workers; ++i) {
    auto w = std::make_unique<LiveWorker>();
    w->index = i;
    w->stats.resize(n);
    w->published.resize(n);
    for (const DependencyConfig& d : config_.dependencies) {
      w->fault_rngs.push_back(rng.Stream("faults/" + d.name, static_cast<uint64_t>(i)));
      w->policy_rngs.push_back(rng.Stream("policy/" + d.name, static_cast<uint64_t>(i)));
      w->replica_rngs.push_back(rng.Stream("replicas/" + d.name, static_cast<uint64_t>(i)));
    }
    for (auto& slot : fault_slots_) {
      MutexLock lock(&slot->mu);
      w->fault_models.push_back(slot->model);
      w->fault_versions.push_back(0);
    }
    workers_.push_back(std::move(w));
  }
}

LiveWorkerPool::~LiveWorkerPool() = default;

void LiveWorkerPool::Start(SteadyTime start) {
  start_ = start;
  shutdown_.WorkersStarted(static_cast<int>(workers_.size()));
  StartServices();  // service graphs: their workers first (live_services.cc)
  for (auto& w : workers_) {
    LiveWorker* p = w.get();
    p->thread = std::thread([this, p] { WorkerLoop(*p); });
  }
}

void LiveWorkerPool::InterruptWaits() {
  auto wake = [](Server& s) {
    { MutexLock l(&s.mu); }
    s.cv.SignalAll();
  };
  for (auto& s : servers_) wake(*s);
  // A call in a replica's line without a deadline waits for a signal too.
  for (auto& pool : replica_servers_) {
    for (auto& s : pool) wake(*s);
  }
  for (auto& b : bulkhead_lines_) {
    MutexLock l(&b->mu);
    for (BulkheadWaiter* w : b->waiters) w->cv.Signal();
  }
  WakeServiceCallers();  // service graphs: workers waiting for a service's answer
}

void LiveWorkerPool::Join() {
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

void LiveWorkerPool::SetFaults(int dep, const FaultsConfig& faults) {
  auto model = std::make_shared<const FaultModel>(faults);
  FaultSlot& f = *fault_slots_[dep];
  MutexLock lock(&f.mu);
  f.model = std::move(model);
  f.version.fetch_add(1, std::memory_order_release);
}

CapacityCounts LiveWorkerPool::ServerTotals(int dep, int replica) {
  Server& s = replica < 0 ? *servers_[dep] : *replica_servers_[dep][replica];
  std::shared_ptr<const FaultModel> model;
  if (replica < 0) {
    FaultSlot& f = *fault_slots_[dep];
    MutexLock lock(&f.mu);
    model = f.model;
  }
  const FaultModel& fm = replica < 0 ? *model : deps_[dep].replicas->faults(replica);
  MutexLock lock(&s.mu);
  if (fm.config().capacity.max_in_service > 0) {
    while (!s.ends.empty()) AdvanceLocked(s, fm, s.ends.top());
  }
  return s.line.counts();
}

int64_t LiveWorkerPool::NowNs() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                              start_)
      .count();
}

SteadyTime LiveWorkerPool::ToSteady(int64_t t_ns) const {
  return start_ + std::chrono::nanoseconds(t_ns);
}

void LiveWorkerPool::WorkerLoop(LiveWorker& w) {
  LiveJob job;
  std::vector<LiveJob> dropped;  // jobs the intake's queue discipline dropped (CoDel)
  for (;;) {
    const PopResult r = intake_.Pop(&job, &dropped);
    for (const LiveJob& d : dropped) {
      const int64_t now = NowNs();
      // It left the queue: the shedder's per-tenant count must know (no delay sample).
      intake_.OnDequeued(d.slot(), now, -1);
      hooks_.finish(&w, d, OrderStatus::kRejected, FailReason::kQueueDelay, nullptr, now, true, -1);
    }
    dropped.clear();
    if (r == PopResult::kOk) {
      Process(w, job);
    } else if (r != PopResult::kDropped) {
      break;
    }
  }
  PublishStats(w);
  shutdown_.WorkerExited();
}

void LiveWorkerPool::Process(LiveWorker& w, const LiveJob& job) {
  const int64_t id = job.id;
  LiveOrderSlot& o = job.slot();
  const int64_t start = NowNs();
  intake_.OnDequeued(o, start, start - o.record.arrival_ns);
  if (shutdown_.cancelled()) {
    hooks_.finish(&w, job, OrderStatus::kCancelled, FailReason::kShutdown, nullptr, start, true,
                  -1);
    return;
  }
  if (o.deadline_ns != kNoDeadline && start >= o.deadline_ns) {
    // Nobody waits for this order any more: drop it without calling a dependency.
    hooks_.finish(&w, job, OrderStatus::kExpired, FailReason::kNone, nullptr, start, true, -1);
    return;
  }
  o.record.start_ns = start;
  if (order_events_) hooks_.record_event(id, OrderStatus::kProcessing, start);
  RLAB_INVARIANT(
      o.status.load(std::memory_order_relaxed) == static_cast<uint8_t>(OrderStatus::kQueued),
      "order %d: processing from status %d, not queued", id, o.status.load());
  o.status.store(static_cast<uint8_t>(OrderStatus::kProcessing), std::memory_order_release);
  w.queue_wait.Add(start - o.record.arrival_ns);
  busy_.fetch_add(1, std::memory_order_relaxed);
  // Service graphs: the root's dependencies only; its key goes with its calls to services.
  OrderFlow flow(&deps_, &w.stats, o.key, o.deadline_ns, 0, root_deps_);
  w.flow_key = o.key;
  // The ledger decides what is applied when it is durable or the order brought its own key.
  const bool use_ledger = ledger_->durable() || o.idempotency_key != nullptr;
  int ledger_applied = 0;
  std::string ledger_key;
  uint32_t pinned = 0;  // dependencies whose (dependency, key) pair this order pinned
  // An attempt's answer reached the caller: metrics and the charge ledger.
  auto attempt_ended = [&](int dep, const AttemptEnd& end) {
    // A replica-breaker refusal (ReplicaPool::kBreakersOpen) called nobody: not a failure.
    if (!end.outcome.ok() && !end.outcome.IsLocalRejection()) {
      metrics_.deps[dep].failure_kinds[static_cast<size_t>(end.outcome.kind)]->Add();
    }
    const DependencyConfig& dc = *deps_[dep].config;
    if (use_ledger && end.committed && dc.charges) {
      // The provider applies (and persists) the charge before its response reaches us.
      if (ledger_key.empty()) ledger_key = LedgerKey(o, id);
      // The first charge pins the pair: the ledger remembers it while this order may retry.
      const uint32_t bit = 1u << dep;
      if (ledger_->Charge(dc.name, ledger_key, dc.idempotency_keys, (pinned & bit) == 0)) {
        ++ledger_applied;
      }
      pinned |= bit;
    }
  };
  const int64_t now = RunFlow(w, flow, start, 0, attempt_ended);
  for (uint32_t m = pinned; m != 0; m &= m - 1) {
    ledger_->Unpin(config_.dependencies[__builtin_ctz(m)].name, ledger_key);
  }
  PublishStats(w);
  busy_.fetch_sub(1, std::memory_order_relaxed);
  w.busy_ns += now - start;
  hooks_.finish(&w, job, flow.status(), flow.reason(), &flow, now, true,
                use_ledger ? ledger_applied : -1);
}

int64_t LiveWorkerPool::RunFlow(LiveWorker& w, OrderFlow& flow, int64_t start, int first_dep,
                                absl::FunctionRef<void(int dep, const AttemptEnd& end)> on_end) {
  auto rng = [&]() -> RandomStream& { return w.policy_rngs[flow.current_dep()]; };
  FlowAction a = flow.Begin(start, rng());
  bool cancelled = false;
  while (a.kind != FlowAction::Kind::kDone && !cancelled) {
    DeliverHandoffs(flow.handoffs(), first_dep);
    PublishStats(w);
    switch (a.kind) {
      case FlowAction::Kind::kAttempt: {
        if (deps_[a.dep].rounds()) {
          a = RunRound(w, flow, a, on_end, &cancelled);
          break;
        }
        const AttemptEnd end = DoAttempt(w, a);
        if (end.interrupted) {
          cancelled = true;
          break;
        }
        on_end(a.dep, end);
        a = flow.OnAttemptDone(NowNs(), end.outcome, end.committed, rng());
        break;
      }
      case FlowAction::Kind::kSleep:
        if (SleepUntil(a.until_ns) == WaitEnd::kInterrupted) {
          cancelled = true;
          break;
        }
        a = flow.OnSleepDone(NowNs(), rng());
        break;
      case FlowAction::Kind::kWaitBulkhead:
        switch (WaitBulkhead(a.dep, a.until_ns)) {
          case WaitEnd::kDone:
            a = flow.OnBulkheadAdmitted(NowNs(), rng());
            break;
          case WaitEnd::kTimeout:
            a = flow.OnBulkheadTimeout(NowNs(), rng());
            break;
          case WaitEnd::kInterrupted:
            cancelled = true;
            break;
        }
        break;
      case FlowAction::Kind::kDone:
        break;
      case FlowAction::Kind::kWait:
        // Only a round waits for its other copies, and RunRound returns only once the round is
        // over; end the order rather than spin if that ever changes.
        cancelled = true;
        break;
    }
  }
  const int64_t now = NowNs();
  if (cancelled) {
    DeliverHandoffs(flow.Cancel(now), first_dep);
  } else {
    DeliverHandoffs(flow.handoffs(), first_dep);
  }
  return now;
}

std::string LiveWorkerPool::LedgerKey(const LiveOrderSlot& o, int64_t id) const {
  if (o.idempotency_key != nullptr) return *o.idempotency_key;
  return absl::StrFormat("%s-%d", run_tag_, id);
}

const FaultModel& LiveWorkerPool::ModelFor(LiveWorker& w, int dep) {
  FaultSlot& f = *fault_slots_[dep];
  // The unchanged case costs one atomic load; the copy refreshes under the slot's lock, which
  // SetFaults holds while it replaces the model and moves the version.
  if (f.version.load(std::memory_order_acquire) != w.fault_versions[dep]) {
    MutexLock lock(&f.mu);
    w.fault_models[dep] = f.model;
    w.fault_versions[dep] = f.version.load(std::memory_order_relaxed);
  }
  return *w.fault_models[dep];
}

LiveWorkerPool::AttemptEnd LiveWorkerPool::DoAttempt(LiveWorker& w, const FlowAction& a) {
  if (CallsService(a.dep)) return CallService(w, a);  // service graphs (live_services.cc)
  const int dep = a.dep;
  const int64_t now = NowNs();
  int64_t load = dep_in_flight_[dep].fetch_add(1, std::memory_order_acq_rel) + 1;
  AttemptEnd end;
  // Replicas: the pool picks the replica whose model and line serve this attempt. Its lock is
  // held only inside Begin / End, never while this thread sleeps.
  ReplicaPool* pool = deps_[dep].replicas.get();
  uint64_t permit = 0;  // the replica breaker's, handed back to End
  const int replica = pool != nullptr ? pool->Begin(now, w.replica_rngs[dep], &load, &permit) : -1;
  if (pool != nullptr && replica < 0) {
    // Every replica ejected and no panic: Envoy's "no healthy upstream", at once (or no
    // replica's own breaker admits: breaker_open).
    dep_in_flight_[dep].fetch_sub(1, std::memory_order_acq_rel);
    end.outcome = ReplicaPool::RefusalOutcome(replica);
    return end;
  }
  const FaultModel& model = replica >= 0 ? pool->faults(replica) : ModelFor(w, dep);
  const FaultsConfig& fm = model.config();
  if (fm.capacity.max_in_service > 0) {
    end = DoLimitedAttempt(w, model, a, now,
                           replica >= 0 ? replica_servers_[dep][replica].get() : nullptr);
  } else {
    AtomicMax(dep_max_load_[dep], load);
    const AttemptDraw draw = model.Draw(now, static_cast<int>(load), w.fault_rngs[dep]);
    const Outcome timeout =
        Outcome::Of(a.until_is_deadline ? OutcomeKind::kDeadlineExceeded : OutcomeKind::kTimeout);
    if (!draw.hangs && now + draw.service_ns <= a.until_ns) {
      end.interrupted = SleepUntil(now + draw.service_ns) == WaitEnd::kInterrupted;
      end.outcome = draw.outcome;
    } else {
      // No answer in time: the caller waits until its own timeout (or the hang's end).
      const int64_t until = a.until_ns == kNoDeadline ? now + fm.hang_ns : a.until_ns;
      end.interrupted = SleepUntil(until) == WaitEnd::kInterrupted;
      end.outcome = timeout;
    }
    end.committed = draw.committed;
  }
  dep_in_flight_[dep].fetch_sub(1, std::memory_order_acq_rel);
  if (replica >= 0) {
    const int64_t t = NowNs();
    pool->End(replica, t, t - now,
              end.interrupted ? Outcome::Of(OutcomeKind::kCancelled) : end.outcome, permit);
  }
  return end;
}

template <typename OnEnd>
FlowAction LiveWorkerPool::RunRound(LiveWorker& w, OrderFlow& flow, FlowAction a, OnEnd& on_end,
                                    bool* cancelled) {
  // A round's copies are timed events on this thread: each copy's answer (or timeout) time is
  // drawn when it is sent, as DoAttempt draws a single attempt's, and the thread sleeps until
  // the earliest of those and the hedge timer, then reports it to the flow, in time order (ties:
  // answers before the timer, in launch order, as the simulated engine orders its events).
  struct Copy {
    int copy;
    int64_t end_ns;
    int64_t service_ns;
    AttemptEnd end;
    int replica = -1;  // with replicas: the one serving this copy, until its end is reported
    int64_t sent_ns = 0;
    uint64_t permit = 0;  // the replica breaker's
  };
  if (CallsService(a.dep)) return RunServiceRound(w, flow, a, on_end, cancelled);
  ReplicaPool* pool = deps_[a.dep].replicas.get();
  absl::InlinedVector<Copy, 4> copies;
  const int dep = a.dep;
  int64_t hedge_at = kNoDeadline;
  auto drop = [&](size_t i, bool wasted) {
    dep_in_flight_[dep].fetch_sub(1, std::memory_order_acq_rel);
    if (copies[i].replica >= 0) {  // cancelled (or interrupted) before its answer
      const int64_t t = NowNs();
      pool->End(copies[i].replica, t, t - copies[i].sent_ns, Outcome::Of(OutcomeKind::kCancelled),
                copies[i].permit);
    }
    // Unlimited capacity: a cancelled copy is in service; the server finishes it for nobody.
    if (wasted) dep_wasted_ns_[dep].fetch_add(copies[i].service_ns, std::memory_order_relaxed);
    copies.erase(copies.begin() + static_cast<std::ptrdiff_t>(i));
  };
  for (;;) {
    if (a.kind == FlowAction::Kind::kAttempt && a.dep == dep) {
      const int64_t now = NowNs();
      const Outcome timeout =
          Outcome::Of(a.until_is_deadline ? OutcomeKind::kDeadlineExceeded : OutcomeKind::kTimeout);
      for (uint32_t mask = a.launch; mask != 0; mask &= mask - 1) {
        int64_t load = dep_in_flight_[dep].fetch_add(1, std::memory_order_acq_rel) + 1;
        AtomicMax(dep_max_load_[dep], load);
        uint64_t permit = 0;
        const int replica =
            pool != nullptr ? pool->Begin(now, w.replica_rngs[dep], &load, &permit) : -1;
        if (pool != nullptr && replica < 0) {
          // No replica available: this copy fails at once (as DoAttempt).
          Copy c{__builtin_ctz(mask), now, 0, {}};
          c.end.outcome = ReplicaPool::RefusalOutcome(replica);
          copies.push_back(c);
          continue;
        }
        const FaultModel& model = replica >= 0 ? pool->faults(replica) : ModelFor(w, dep);
        const AttemptDraw draw = model.Draw(now, static_cast<int>(load), w.fault_rngs[dep]);
        Copy c{__builtin_ctz(mask), 0, draw.service_ns, {}, replica, now, permit};
        if (!draw.hangs && now + draw.service_ns <= a.until_ns) {
          c.end_ns = now + draw.service_ns;
          c.end.outcome = draw.outcome;
        } else {
          c.end_ns = a.until_ns == kNoDeadline ? now + model.config().hang_ns : a.until_ns;
          c.end.outcome = timeout;
        }
        c.end.committed = draw.committed;
        copies.push_back(c);
      }
      if (a.hedge_at_ns != kNoDeadline) hedge_at = a.hedge_at_ns;
    } else if (a.kind != FlowAction::Kind::kWait) {
      return a;  // the round is over (every copy reported or cancelled)
    }
    if (copies.empty()) return a;  // defensive: kWait with nothing outstanding
    size_t first = 0;
    for (size_t i = 1; i < copies.size(); ++i) {
      if (copies[i].end_ns < copies[first].end_ns) first = i;
    }
    const bool timer = hedge_at < copies[first].end_ns;
    if (SleepUntil(timer ? hedge_at : copies[first].end_ns) == WaitEnd::kInterrupted) {
      while (!copies.empty()) drop(copies.size() - 1, false);
      *cancelled = true;
      return a;
    }
    RandomStream& rng = w.policy_rngs[dep];
    if (timer) {
      hedge_at = kNoDeadline;
      a = flow.OnHedgeTimer(NowNs(), rng);
      continue;
    }
    const Copy done = copies[first];
    if (done.replica >= 0) {
      const int64_t t = NowNs();
      pool->End(done.replica, t, t - done.sent_ns, done.end.outcome, done.permit);
      copies[first].replica = -1;  // reported: drop must not report it again
    }
    drop(first, false);
    on_end(dep, done.end);
    a = flow.OnAttemptDone(NowNs(), done.end.outcome, done.end.committed, rng, done.copy);
    // The copies the flow cancelled (its call was decided without them). When the flow went
    // straight on to the next call, its outstanding mask is that call's: every copy still here
    // belongs to the decided call.
    const bool new_call = a.kind == FlowAction::Kind::kAttempt && (a.launch & 1u) != 0;
    for (size_t i = copies.size(); i-- > 0;) {
      if (new_call || ((flow.outstanding() >> copies[i].copy) & 1u) == 0) drop(i, true);
    }
    if (copies.empty()) hedge_at = kNoDeadline;
  }
}

int64_t LiveWorkerPool::AdvanceLocked(Server& s, const FaultModel& model, int64_t now_ns) {
  now_ns = std::max(now_ns, s.clock_ns);
  s.clock_ns = now_ns;
  s.line.SetLimits(model.config().capacity);
  // A call's caller waits while its thread is in the line and its timeout has not passed (a
  // thread may notice its timeout late: the server does not count on it).
  bool changed = false;
  auto hand_out = [&](int64_t t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    while (const std::optional<LineCall> c = s.line.Take(t)) {
      changed = true;
      auto it = s.waiters.find(c->ticket);
      const bool waiting = t < c->until_ns && it != s.waiters.end();
      switch (s.line.Judge(t, waiting)) {
        case LineVerdict::kDiscard:
          break;
        case LineVerdict::kDrop:
          if (waiting) it->second = LineGrant{true, t, {}};
          break;
        case LineVerdict::kServe:
        case LineVerdict::kServeWasted: {
          // Its service starts now, when the slot freed (rule 3), whether or not its thread is
          // awake yet: the server draws it.
          const AttemptDraw draw = model.Draw(t, s.line.in_service(), *s.rng);
          s.ends.push(t + draw.service_ns);
          if (waiting) it->second = LineGrant{false, t, draw};
          break;
        }
      }
    }
  };
  // Slots free in end-time order; a call started at a freed slot may itself end by now_ns.
  while (!s.ends.empty() && s.ends.top() <= now_ns) {
    const int64_t t = s.ends.top();
    s.ends.pop();
    s.line.Release();
    hand_out(t);
  }
  hand_out(now_ns);  // slots a raised limit (SetFaults) freed
  RLAB_INVARIANT(static_cast<size_t>(s.line.in_service()) == s.ends.size(),
                 "capacity line: %d calls in service but %d end times", s.line.in_service(),
                 s.ends.size());
  if (changed) s.cv.SignalAll();
  return now_ns;
}

LiveWorkerPool::AttemptEnd LiveWorkerPool::DoLimitedAttempt(LiveWorker& w, const FaultModel& model,
                                                            const FlowAction& a, int64_t now,
                                                            Server* server) {
  const int dep = a.dep;
  const FaultsConfig& fm = model.config();
  Server& s = server != nullptr ? *server : *servers_[dep];
  const Outcome timeout =
      Outcome::Of(a.until_is_deadline ? OutcomeKind::kDeadlineExceeded : OutcomeKind::kTimeout);
  AttemptEnd end;
  AttemptDraw draw;
  int64_t start = 0;  // when its service started
  {
    MutexLock lock(&s.mu);
    now = AdvanceLocked(s, model, now);
    const uint64_t ticket = s.next_ticket++;
    switch (s.line.Arrive(now, LineCall{ticket, a.until_ns})) {
      case CapacityAdmission::kRejected:
        end.outcome = Outcome::Http(503);
        return end;
      case CapacityAdmission::kServe:
        start = now;
        draw = model.Draw(now, s.line.in_service(), w.fault_rngs[dep]);
        s.ends.push(now + draw.service_ns);
        break;
      case CapacityAdmission::kQueued: {
        s.waiters.emplace(ticket, std::nullopt);
        for (;;) {
          auto it = s.waiters.find(ticket);
          if (it->second.has_value()) {
            const LineGrant g = *it->second;
            s.waiters.erase(it);
            if (g.dropped) {  // CoDel: 503 at once, as when the line is full
              end.outcome = Outcome::Http(503);
              return end;
            }
            start = g.start_ns;
            draw = g.draw;
            break;
          }
          const bool interrupted = shutdown_.cancelled();
          if (interrupted || now >= a.until_ns) {
            // The caller gives up. Its call keeps its place in the line (rule 1): the server
            // serves it for nobody when its turn comes, unless it drops such calls.
            s.waiters.erase(it);
            end.interrupted = interrupted;
            end.outcome = timeout;
            return end;
          }
          // Until its timeout or the next end of a service (a slot may free then), at most
          // kLineRecheckNs: every wait is bounded; the shutdown and every hand-off signal.
          int64_t wake = std::min(a.until_ns, now + kLineRecheckNs);
          if (!s.ends.empty()) wake = std::min(wake, s.ends.top());
          s.cv.WaitUntil(&s.mu, ToSteady(wake));
          now = AdvanceLocked(s, model, NowNs());
        }
        break;
      }
    }
  }
  if (!draw.hangs && start + draw.service_ns <= a.until_ns) {
    end.interrupted = SleepUntil(start + draw.service_ns) == WaitEnd::kInterrupted;
    end.outcome = draw.outcome;
  } else {
    const int64_t until = a.until_ns == kNoDeadline ? start + fm.hang_ns : a.until_ns;
    end.interrupted = SleepUntil(until) == WaitEnd::kInterrupted;
    end.outcome = timeout;
  }
  end.committed = draw.committed;
  return end;
}

LiveWorkerPool::WaitEnd LiveWorkerPool::SleepUntil(int64_t t_ns) const {
  if (shutdown_.cancelled()) return WaitEnd::kInterrupted;
  if (t_ns <= NowNs()) return WaitEnd::kDone;
  const bool forever = t_ns == kNoDeadline;
  return shutdown_.SleepUntil(forever ? SteadyTime::max() : ToSteady(t_ns), forever);
}

LiveWorkerPool::WaitEnd LiveWorkerPool::WaitBulkhead(int dep, int64_t until_ns) {
  BulkheadLine& b = *bulkhead_lines_[dep];
  BulkheadWaiter self;
  WaitEnd end = WaitEnd::kDone;
  bool give_back = false;
  {
    MutexLock lock(&b.mu);
    if (b.pending_grants > 0) {
      --b.pending_grants;
      return WaitEnd::kDone;
    }
    b.waiters.push_back(&self);
    while (!self.granted) {
      if (shutdown_.cancelled()) {
        end = WaitEnd::kInterrupted;
        break;
      }
      if (until_ns != kNoDeadline && NowNs() >= until_ns) {
        end = WaitEnd::kTimeout;
        break;
      }
      if (until_ns == kNoDeadline) {
        self.cv.Wait(&b.mu);
      } else {
        self.cv.WaitUntil(&b.mu, ToSteady(until_ns));
      }
    }
    if (!self.granted) {
      if (deps_[dep].bulkhead->CancelWait(end == WaitEnd::kTimeout)) {
        b.waiters.erase(std::find(b.waiters.begin(), b.waiters.end(), &self));
      } else {
        // Our place was already consumed by a release whose hand-off is on its way here: wait
        // for it (it is imminent) rather than leak the slot.
        while (!self.granted) self.cv.Wait(&b.mu);
      }
    }
    if (self.granted) {
      give_back = end == WaitEnd::kInterrupted;
      if (!give_back) end = WaitEnd::kDone;
    }
  }
  if (give_back && deps_[dep].bulkhead->Release() == BulkheadRelease::kHandedOff) {
    DeliverHandoffs(1u, dep);
  }
  return end;
}

void LiveWorkerPool::DeliverHandoffs(uint32_t mask, int first_dep) {
  for (; mask != 0; mask &= mask - 1) {
    BulkheadLine& b = *bulkhead_lines_[first_dep + __builtin_ctz(mask)];
    MutexLock lock(&b.mu);
    if (b.waiters.empty()) {
      ++b.pending_grants;
      continue;
    }
    BulkheadWaiter* w = b.waiters.front();
    b.waiters.pop_front();
    w->granted = true;
    // Under the lock: the waiter cannot return (destroying its cv) before it sees `granted`.
    w->cv.Signal();
  }
}

void LiveWorkerPool::PublishStats(LiveWorker& w) {
  for (size_t d = 0; d < w.stats.size(); ++d) {
    const FlowStats& s = w.stats[d];
    FlowStats& p = w.published[d];
    LiveDepMetrics& m = metrics_.deps[d];
    auto push = [](Counter* c, int64_t now, int64_t& before) {
      if (now != before) {
        c->Add(now - before);
        before = now;
      }
    };
    push(m.calls, s.calls, p.calls);
    push(m.failures, s.failures, p.failures);
    push(m.retry[0], s.retries, p.retries);
    push(m.rejected_breaker, s.rejected_breaker, p.rejected_breaker);
    push(m.rejected_bulkhead, s.rejected_bulkhead, p.rejected_bulkhead);
    push(m.rejected_throttle, s.rejected_throttle, p.rejected_throttle);
    push(m.fallbacks, s.fallbacks, p.fallbacks);
    for (int e = 0; e < kNumRetryEndReasons; ++e) {
      push(m.retry[1 + e], s.retry_ends[e], p.retry_ends[e]);
    }
    metrics_.rounds.Publish(d, s, p);
  }
}

}  // namespace rlab
