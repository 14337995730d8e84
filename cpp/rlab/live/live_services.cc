// Service graphs in the live engine: see live_services.h. The simulated engine's counterpart is
// sim/sim_services.cc; the rules both follow are in model/service_accounting.h.

#include "rlab/live/live_services.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_format.h"
#include "rlab/core/invariant.h"
#include "rlab/model/service_graph.h"

namespace rlab {
namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

// rlab_service_requests' outcomes, and the status each counts.
constexpr std::array<OrderStatus, 4> kServiceOutcomes = {
    OrderStatus::kCompleted, OrderStatus::kFailed, OrderStatus::kRejected, OrderStatus::kExpired};

int OutcomeIndex(OrderStatus status) {
  for (size_t i = 0; i < kServiceOutcomes.size(); ++i) {
    if (kServiceOutcomes[i] == status) return static_cast<int>(i);
  }
  return -1;  // cancelled (a shutdown): not one of the family's outcomes, as in the simulator
}

void RaiseMax(std::atomic<int64_t>& a, int64_t v) {
  int64_t cur = a.load(std::memory_order_relaxed);
  while (v > cur && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

absl::Status CheckDependency(const std::string& path, const DependencyConfig& d) {
  const char* what = d.hedge ? "hedge" : d.fanout ? "fanout" : nullptr;
  if (what == nullptr) return absl::OkStatus();
  // A round of copies to a service: each copy is a request of its own
  // (LiveWorkerPool::RunServiceRound); the service's own intake limits them, not `faults`.
  if (!d.service.empty()) return absl::OkStatus();
  // As LiveEngine::Create checks the root's dependencies.
  if (d.faults.capacity.max_in_service > 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s.%s with a capacity limit (%s.faults.capacity.max_in_service = %d) is "
                        "simulator-only for now: use simulate(), or set %s.%s=None",
                        path, what, path, d.faults.capacity.max_in_service, path, what));
  }
  for (size_t i = 0; d.replicas && i < d.replicas->overrides.size(); ++i) {
    const int max = d.replicas->overrides[i].faults.capacity.max_in_service;
    if (max == 0) continue;
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s.%s with a capacity limit (%s.replicas.overrides[%d].faults.capacity.max_in_service "
        "= %d) is simulator-only for now: use simulate(), or set %s.%s=None",
        path, what, path, i, max, path, what));
  }
  return absl::OkStatus();
}

}  // namespace

ScenarioConfig LiveWorkingConfig(const ScenarioConfig& config) {
  if (config.services.empty()) return config;
  ScenarioConfig c = config;
  c.dependencies.clear();
  for (const FlatDependency& f : FlatDependencies(config)) {
    c.dependencies.push_back(*f.config);
    c.dependencies.back().name = f.label;
  }
  return c;
}

absl::Status CheckServicesForLive(const ScenarioConfig& config) {
  // Every service's workers are threads of their own: their sum is bounded like one pool's.
  constexpr int64_t kMaxLiveThreads = 100'000;
  int64_t threads = config.workers;
  for (const ServiceConfig& svc : config.services) threads += svc.workers;
  if (threads > kMaxLiveThreads) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "workers plus every services[...].workers add up to %d worker threads; the live engine "
        "runs at most %d (simulate() has no such limit)",
        threads, kMaxLiveThreads));
  }
  for (const DependencyConfig& d : config.dependencies) {
    if (absl::Status s = CheckDependency(d.name, d); !s.ok()) return s;
  }
  for (const ServiceConfig& svc : config.services) {
    for (const DependencyConfig& d : svc.dependencies) {
      if (absl::Status s = CheckDependency(ServiceDependencyPath(svc, d), d); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

void LiveWorkerPool::InitServices(const ScenarioConfig& scenario, Rng& rng) {
  scenario_ = &scenario;
  root_deps_ = static_cast<int>(scenario.dependencies.size());
  if (scenario.services.empty()) return;
  const size_t n = config_.dependencies.size();
  dep_tier_.assign(n, 0);
  for (size_t i = 0; i < n; ++i)
    dep_tier_[i] = ServiceIndexOf(scenario, config_.dependencies[i]) + 1;
  int first_dep = root_deps_;
  for (size_t s = 0; s < scenario.services.size(); ++s) {
    const ServiceConfig& svc = scenario.services[s];
    auto tier = std::make_unique<ServiceTier>();
    tier->tier = static_cast<int>(s) + 1;
    tier->config = &svc;
    tier->first_dep = first_dep;
    tier->num_deps = static_cast<int>(svc.dependencies.size());
    first_dep += tier->num_deps;
    {
      MutexLock lock(&tier->mu);
      tier->intake = std::make_unique<ServiceIntake>(svc.intake);
      tier->intake_rng = rng.Stream("intake/" + svc.name);
    }
    if (svc.intake.rate_limit && svc.intake.rate_limit->max_wait_ns > 0) {
      ServiceTier* t = tier.get();
      tier->rate_waits = std::make_unique<RateWaitQueue<std::shared_ptr<ServiceCall>>>(
          [this](int64_t t_ns) { return ToSteady(t_ns); },
          [this, t](std::shared_ptr<ServiceCall> call) { ReleaseServiceCall(*t, call); });
    }
    for (int j = 0; j < svc.workers; ++j) {
      auto w = std::make_unique<LiveWorker>();
      w->index = j;
      w->stats.resize(n);
      w->published.resize(n);
      // Streams of their own: the root's workers draw (name, worker index).
      const uint64_t salt = (static_cast<uint64_t>(s + 1) << 32) | static_cast<uint64_t>(j);
      for (const DependencyConfig& d : config_.dependencies) {
        w->fault_rngs.push_back(rng.Stream("faults/" + d.name, salt));
        w->policy_rngs.push_back(rng.Stream("policy/" + d.name, salt));
        w->replica_rngs.push_back(rng.Stream("replicas/" + d.name, salt));
      }
      for (auto& slot : fault_slots_) {
        MutexLock lock(&slot->mu);
        w->fault_models.push_back(slot->model);
        w->fault_versions.push_back(0);
      }
      tier->workers.push_back(w.get());
      service_workers_.push_back(std::move(w));
    }
    tiers_.push_back(std::move(tier));
  }
}

absl::Status LiveWorkerPool::InitServiceMetrics(const std::vector<double>& latency_bounds_s) {
  if (tiers_.empty()) return absl::OkStatus();
  std::vector<std::string> names = {"root"};
  for (const auto& t : tiers_) names.push_back(t->config->name);
  std::vector<std::string> outcomes;
  for (OrderStatus s : kServiceOutcomes) outcomes.emplace_back(OrderStatusName(s));
  // The simulated engine's families (python/reliability_lab/metrics.py _service_families).
  auto requests = metrics_.registry.AddCounter(
      "rlab_service_requests",
      "Requests a service ended, by outcome (rejected: refused by its queue or intake).",
      {"service", "outcome"}, LabelProduct({names, outcomes}));
  if (!requests.ok()) return requests.status();
  auto latency = metrics_.registry.AddHistogram(
      "rlab_service_latency_seconds", "Arrival to end of a service's completed requests.",
      {"service"}, LabelProduct({names}), latency_bounds_s);
  if (!latency.ok()) return latency.status();
  const size_t k = kServiceOutcomes.size();
  for (size_t i = 0; i < k; ++i) root_service_requests_[i] = &(*requests)->at(i);
  root_service_latency_ = &(*latency)->at(0);
  for (size_t t = 0; t < tiers_.size(); ++t) {
    for (size_t i = 0; i < k; ++i) tiers_[t]->requests[i] = &(*requests)->at((t + 1) * k + i);
    tiers_[t]->latency = &(*latency)->at(t + 1);
  }
  return absl::OkStatus();
}

void LiveWorkerPool::StartServices() {
  for (auto& t : tiers_) {
    ServiceTier* tier = t.get();
    if (tier->rate_waits) tier->rate_waits->Start();
    for (LiveWorker* w : tier->workers) {
      w->thread = std::thread([this, tier, w] { ServiceWorkerLoop(*tier, *w); });
    }
  }
}

LiveWorkerPool::AttemptEnd LiveWorkerPool::CallService(LiveWorker& w, const FlowAction& a) {
  const int dep = a.dep;
  ServiceTier& t = *tiers_[static_cast<size_t>(dep_tier_[dep] - 1)];
  const int64_t now = NowNs();
  RaiseMax(dep_max_load_[dep], dep_in_flight_[dep].fetch_add(1, std::memory_order_acq_rel) + 1);
  AttemptEnd end;
  auto call = std::make_shared<ServiceCall>();
  call->key = w.flow_key;
  call->arrival_ns = now;
  call->deadline_ns = ChildDeadline(a.until_ns, t.config->deadline_ns, now);
  call->caller_until_ns = a.until_ns;
  call->caller_until_is_deadline = a.until_is_deadline;
  const bool admitted = QueueServiceCall(t, call);
  if (!admitted) {
    end.outcome = ChildRejectedAnswer();
    dep_in_flight_[dep].fetch_sub(1, std::memory_order_acq_rel);
    return end;
  }
  {
    MutexLock lock(&service_waiters_mu_);
    service_waiters_.push_back(call.get());
  }
  bool answered = false;
  {
    // Bounded by the attempt's until_ns; the shutdown (out of time) wakes it through
    // InterruptWaits (WakeServiceCallers) after setting its cancellation, which is read here
    // under the call's lock.
    MutexLock lock(&call->mu);
    const bool forever = a.until_ns == kNoDeadline;
    const SteadyTime until = forever ? SteadyTime::max() : ToSteady(a.until_ns);
    while (!call->answered && !shutdown_.cancelled()) {
      if (forever) {
        call->cv.Wait(&call->mu);
      } else if (call->cv.WaitUntil(&call->mu, until)) {
        break;
      }
    }
    answered = call->answered;
    if (answered) {
      end.outcome = call->answer;
    } else {
      call->caller_gone = true;  // the service's worker answers nobody (wasted, or dropped)
    }
  }
  {
    MutexLock lock(&service_waiters_mu_);
    service_waiters_.erase(std::find(service_waiters_.begin(), service_waiters_.end(), call.get()));
  }
  if (!answered) {
    if (shutdown_.cancelled()) {
      end.interrupted = true;
    } else {
      // The caller's own timeout (or deadline), whatever the service still does.
      end.outcome =
          Outcome::Of(a.until_is_deadline ? OutcomeKind::kDeadlineExceeded : OutcomeKind::kTimeout);
    }
  }
  dep_in_flight_[dep].fetch_sub(1, std::memory_order_acq_rel);
  return end;
}

bool LiveWorkerPool::QueueServiceCall(ServiceTier& t, const std::shared_ptr<ServiceCall>& call) {
  bool admitted = false;
  {
    MutexLock lock(&t.mu);
    CountServiceArrival(t.totals);
    // Its intake.rate_limit first: a permit due later parks the request (admitted, in flight)
    // until ReleaseServiceCall; then its intake.limit, then the queue's room (the root's order
    // of gates). A free worker takes the request at once; otherwise it waits in the queue, if
    // there is room (the simulated engine's rule: queue_capacity counts the requests no worker
    // holds). Counted from the configured workers, not from threads seen waiting: a worker
    // thread not yet scheduled at start-up (or between two requests) is still free.
    const std::optional<int64_t> rate_wait_ns =
        t.intake->ReserveRate(call->key, call->arrival_ns, call->deadline_ns);
    FailReason reason = FailReason::kRateLimited;
    if (rate_wait_ns && *rate_wait_ns > 0) {
      // Park never blocks; it fails only once StopServices stopped the queue, when no caller
      // is left (refused then: nothing was done).
      admitted =
          t.rate_waits != nullptr && t.rate_waits->Park(call, call->arrival_ns + *rate_wait_ns);
      if (admitted) CountServiceAdmitted(t.totals);
    } else if (rate_wait_ns) {
      std::optional<ServicePermit> permit = t.intake->Admit(call->arrival_ns);
      const bool room =
          !t.closed && static_cast<int64_t>(t.jobs.size()) + t.busy <
                           static_cast<int64_t>(t.config->workers) + t.config->queue_capacity;
      admitted = permit && room;
      if (admitted) {
        call->permit = *permit;
        CountServiceAdmitted(t.totals);
        t.jobs.push_back(call);
        t.cv.Signal();
      } else {
        if (permit) t.intake->Abandon(*permit);
        reason = permit ? FailReason::kQueueFull : FailReason::kLimited;
      }
    }
    if (!admitted) CountServiceRejected(t.totals, reason);
  }
  if (!admitted) t.requests[2]->Add();  // rejected
  return admitted;
}

void LiveWorkerPool::ReleaseServiceCall(ServiceTier& t, const std::shared_ptr<ServiceCall>& call) {
  const int64_t now = NowNs();
  ChildEnd end;
  end.arrival_ns = call->arrival_ns;
  end.deadline_ns = call->deadline_ns;
  end.end_ns = now;
  bool gone = false;
  {
    MutexLock lock(&call->mu);
    gone = call->caller_gone;
  }
  if (gone) {
    // Its caller gave up while it waited for its permit: dropped unstarted, as from the queue.
    end.status = OrderStatus::kExpired;
    end.dropped_unstarted = true;
    EndCall(t, *call, end, /*held_worker=*/false);
    return;
  }
  {
    // As SimEngine::OnServiceReady: its intake.limit, then the queue's room, now.
    MutexLock lock(&t.mu);
    std::optional<ServicePermit> permit = t.intake->Admit(now);
    const bool room =
        !t.closed && static_cast<int64_t>(t.jobs.size()) + t.busy <
                         static_cast<int64_t>(t.config->workers) + t.config->queue_capacity;
    if (permit && room) {
      call->permit = *permit;
      t.jobs.push_back(call);
      t.cv.Signal();
      return;
    }
    if (permit) t.intake->Abandon(*permit);
    end.status = t.closed ? OrderStatus::kCancelled : OrderStatus::kRejected;
    end.reason = t.closed ? FailReason::kShutdown
                 : permit ? FailReason::kQueueFull
                          : FailReason::kLimited;
  }
  EndCall(t, *call, end, /*held_worker=*/false);
}

FlowAction LiveWorkerPool::RunServiceRound(
    LiveWorker& w, OrderFlow& flow, FlowAction a,
    absl::FunctionRef<void(int dep, const AttemptEnd& end)> on_end, bool* cancelled) {
  // As the simulator (SimEngine::LaunchCopy, CallService): each copy is a request of its own to
  // the service, queued (or refused at once) when sent, with its own propagated deadline. The
  // caller waits for the earliest of the copies' answers, their own timeouts and the hedge
  // timer, and reports them to the flow in time order (ties: answers before the timer). A copy
  // the caller stops waiting for (its timeout passed, or the flow decided the call without it)
  // is abandoned: its request is dropped unstarted if no worker took it yet, and otherwise runs
  // on for nobody, its worker time counted as wasted (ServeCall, EndCall).
  struct Copy {
    int copy = 0;
    std::shared_ptr<ServiceCall> call;  // null: refused at once (the service's queue was full)
    int64_t sent_ns = 0;
    int64_t until_ns = kNoDeadline;
    bool until_is_deadline = false;
  };
  const int dep = a.dep;
  ServiceTier& t = *tiers_[static_cast<size_t>(dep_tier_[dep] - 1)];
  auto wake = std::make_shared<LiveServiceWake>();
  absl::InlinedVector<Copy, 4> copies;
  int64_t hedge_at = kNoDeadline;
  auto launch = [&](int copy, int64_t now) {
    RaiseMax(dep_max_load_[dep], dep_in_flight_[dep].fetch_add(1, std::memory_order_acq_rel) + 1);
    Copy c{copy, std::make_shared<ServiceCall>(), now, a.until_ns, a.until_is_deadline};
    ServiceCall& call = *c.call;
    call.key = w.flow_key;
    call.arrival_ns = now;
    call.deadline_ns = ChildDeadline(a.until_ns, t.config->deadline_ns, now);
    call.caller_until_ns = a.until_ns;
    call.caller_until_is_deadline = a.until_is_deadline;
    call.wake = wake;
    if (QueueServiceCall(t, c.call)) {
      MutexLock lock(&service_waiters_mu_);
      service_waiters_.push_back(c.call.get());
    } else {
      c.call = nullptr;
    }
    copies.push_back(std::move(c));
  };
  // Stops waiting for copies[i] (its answer, if one came, was reported or is not wanted).
  auto drop = [&](size_t i) {
    if (ServiceCall* call = copies[i].call.get()) {
      {
        MutexLock lock(&call->mu);
        if (!call->answered) call->caller_gone = true;
      }
      MutexLock lock(&service_waiters_mu_);
      service_waiters_.erase(std::find(service_waiters_.begin(), service_waiters_.end(), call));
    }
    dep_in_flight_[dep].fetch_sub(1, std::memory_order_acq_rel);
    copies.erase(copies.begin() + static_cast<std::ptrdiff_t>(i));
  };
  RandomStream& rng = w.policy_rngs[dep];
  for (;;) {
    if (a.kind == FlowAction::Kind::kAttempt && a.dep == dep) {
      const int64_t now = NowNs();
      for (uint32_t mask = a.launch; mask != 0; mask &= mask - 1) launch(__builtin_ctz(mask), now);
      if (a.hedge_at_ns != kNoDeadline) hedge_at = a.hedge_at_ns;
    } else if (a.kind != FlowAction::Kind::kWait) {
      return a;  // the round is over (every copy reported or cancelled)
    }
    if (copies.empty()) return a;  // defensive: kWait with nothing outstanding
    if (shutdown_.cancelled()) {
      while (!copies.empty()) drop(copies.size() - 1);
      *cancelled = true;
      return a;
    }
    // The earliest event due: an answer (due when it came), or a copy's timeout once passed.
    uint64_t seen = 0;
    {
      MutexLock lock(&wake->mu);
      seen = wake->answers;
    }
    const int64_t now = NowNs();
    size_t next = copies.size();
    int64_t next_ns = kNoDeadline;
    int64_t wait_until = hedge_at;
    for (size_t i = 0; i < copies.size(); ++i) {
      const Copy& c = copies[i];
      int64_t at = c.until_ns;  // its timeout (kNoDeadline: none)
      bool answered = c.call == nullptr;
      if (answered) {
        at = c.sent_ns;
      } else {
        MutexLock lock(&c.call->mu);
        // An answer after the copy's own timeout is not one: the caller gave up first.
        if (c.call->answered && c.call->answered_ns <= c.until_ns) {
          at = c.call->answered_ns;
          answered = true;
        }
      }
      if (!answered && (at == kNoDeadline || at > now)) {
        wait_until = std::min(wait_until, at);
        continue;
      }
      if (next == copies.size() || at < next_ns) {
        next = i;
        next_ns = at;
      }
    }
    if (hedge_at != kNoDeadline && hedge_at <= now &&
        (next == copies.size() || hedge_at < next_ns)) {
      hedge_at = kNoDeadline;
      a = flow.OnHedgeTimer(NowNs(), rng);
      continue;
    }
    if (next == copies.size()) {
      // Nothing due yet: wait for an answer, the next timeout or the timer. The shutdown sets
      // its cancellation, then signals `wake` (WakeServiceCallers): read here under its lock.
      MutexLock lock(&wake->mu);
      while (wake->answers == seen && !shutdown_.cancelled()) {
        if (wait_until == kNoDeadline) {
          wake->cv.Wait(&wake->mu);
        } else if (wake->cv.WaitUntil(&wake->mu, ToSteady(wait_until))) {
          break;
        }
      }
      a.kind = FlowAction::Kind::kWait;  // nothing new to send: look again
      continue;
    }
    const Copy done = copies[next];
    AttemptEnd end;
    if (done.call == nullptr) {
      end.outcome = ChildRejectedAnswer();
    } else {
      // Decided under the call's lock, as CallService: answered in time, or abandoned.
      MutexLock lock(&done.call->mu);
      if (done.call->answered && done.call->answered_ns <= done.until_ns) {
        end.outcome = done.call->answer;
      } else {
        if (!done.call->answered) done.call->caller_gone = true;
        end.outcome = Outcome::Of(done.until_is_deadline ? OutcomeKind::kDeadlineExceeded
                                                         : OutcomeKind::kTimeout);
      }
    }
    drop(next);
    on_end(dep, end);
    a = flow.OnAttemptDone(NowNs(), end.outcome, end.committed, rng, done.copy);
    // The copies the flow cancelled (its call was decided without them). When the flow went
    // straight on to the next call, every copy still here belongs to the decided call.
    const bool new_call = a.kind == FlowAction::Kind::kAttempt && (a.launch & 1u) != 0;
    for (size_t i = copies.size(); i-- > 0;) {
      if (new_call || ((flow.outstanding() >> copies[i].copy) & 1u) == 0) drop(i);
    }
    if (copies.empty()) hedge_at = kNoDeadline;
  }
}

void LiveWorkerPool::ServiceWorkerLoop(ServiceTier& t, LiveWorker& w) {
  std::vector<std::shared_ptr<ServiceCall>> dropped;  // by the intake's discipline (CoDel)
  for (;;) {
    std::shared_ptr<ServiceCall> call;
    int64_t now = 0;
    {
      MutexLock lock(&t.mu);
      while (t.jobs.empty() && !t.closed) t.cv.Wait(&t.mu);
      if (t.jobs.empty()) break;  // closed and drained
      now = NowNs();
      // Its intake.discipline picks the request (model/service_intake.h).
      const bool took = t.intake->Take(
          t.jobs, now, [](const std::shared_ptr<ServiceCall>& c) { return c->arrival_ns; },
          [&dropped](std::shared_ptr<ServiceCall> c) { dropped.push_back(std::move(c)); }, &call);
      if (took) ++t.busy;
    }
    for (const std::shared_ptr<ServiceCall>& c : dropped) {
      // Failed at dequeue before any work: a 503 to its caller, as in the simulator.
      ChildEnd end;
      end.status = OrderStatus::kRejected;
      end.reason = FailReason::kQueueDelay;
      end.arrival_ns = c->arrival_ns;
      end.deadline_ns = c->deadline_ns;
      end.end_ns = now;
      EndCall(t, *c, end, /*held_worker=*/false);
    }
    dropped.clear();
    if (call) ServeCall(t, w, call);  // frees the worker (busy) in EndCall
  }
  PublishStats(w);
}

void LiveWorkerPool::ServeCall(ServiceTier& t, LiveWorker& w,
                               const std::shared_ptr<ServiceCall>& call) {
  ServiceCall& c = *call;
  const int64_t start = NowNs();
  bool gone = false;
  {
    MutexLock lock(&c.mu);
    gone = c.caller_gone;
  }
  ChildEnd end;
  end.arrival_ns = c.arrival_ns;
  end.deadline_ns = c.deadline_ns;
  end.end_ns = start;
  if (gone || (c.deadline_ns != kNoDeadline && start >= c.deadline_ns)) {
    // Nobody waits for this request any more: drop it without doing any work.
    end.status = OrderStatus::kExpired;
    end.dropped_unstarted = true;
    EndCall(t, c, end);
    return;
  }
  if (shutdown_.cancelled()) {
    end.status = OrderStatus::kCancelled;
    end.reason = FailReason::kShutdown;
    EndCall(t, c, end);
    return;
  }
  end.start_ns = start;
  w.flow_key = c.key;
  // The shared flow over the service's own dependencies, interpreted by blocking in the loop
  // the root's workers run an order's in.
  OrderFlow flow(&deps_, &w.stats, c.key, c.deadline_ns, t.first_dep, t.num_deps);
  auto attempt_ended = [this](int dep, const AttemptEnd& e) {
    if (!e.outcome.ok() && !e.outcome.IsLocalRejection()) {
      metrics_.deps[dep].failure_kinds[static_cast<size_t>(e.outcome.kind)]->Add();
    }
  };
  const int64_t now = RunFlow(w, flow, start, t.first_dep, attempt_ended);
  PublishStats(w);
  // As the simulator: a child's charges count in the run's totals (its flow deduplicates them).
  w.charges += flow.charges();
  w.applied_charges += flow.applied_charges();
  end.status = flow.status();
  end.reason = flow.reason();
  end.end_ns = now;
  EndCall(t, c, end);
}

void LiveWorkerPool::EndCall(ServiceTier& t, ServiceCall& c, ChildEnd end, bool held_worker) {
  if (held_worker) {
    // The worker is free before its caller hears the answer, as in the simulator, where both
    // happen at one instant: the caller's next call finds it free.
    MutexLock lock(&t.mu);
    --t.busy;
  }
  {
    MutexLock lock(&c.mu);
    end.caller_waiting = !c.caller_gone;
    if (end.caller_waiting) {
      c.answered = true;
      c.answered_ns = end.end_ns;
      c.answer = ChildAnswer(end.status, end.reason, c.deadline_ns, c.caller_until_ns,
                             c.caller_until_is_deadline);
      c.cv.Signal();
    }
  }
  if (c.wake != nullptr && end.caller_waiting) {  // a copy of a round (RunServiceRound)
    MutexLock lock(&c.wake->mu);
    ++c.wake->answers;
    c.wake->cv.SignalAll();
  }
  {
    MutexLock lock(&t.mu);
    CountServiceEnd(t.totals, end);
    if (c.permit.held) {  // its service's intake.limit learns from its end, as the root's
      t.intake->OnEnd(c.permit, end.status, end.reason, end.end_ns, t.intake_rng.Uniform01());
    }
    if (t.totals.in_flight == 0) t.cv.SignalAll();  // StopServices may wait for it
  }
  const int i = OutcomeIndex(end.status);
  if (i >= 0) t.requests[static_cast<size_t>(i)]->Add();
  if (end.status == OrderStatus::kCompleted) {
    t.latency->Observe(NsToSeconds(end.end_ns - end.arrival_ns));
  }
}

void LiveWorkerPool::OnRootServiceEnd(OrderStatus status, int64_t sojourn_ns) {
  if (root_service_latency_ == nullptr) return;  // no services
  const int i = OutcomeIndex(status);
  if (i >= 0) root_service_requests_[static_cast<size_t>(i)]->Add();
  if (status == OrderStatus::kCompleted) root_service_latency_->Observe(NsToSeconds(sojourn_ns));
}

void LiveWorkerPool::WakeServiceCallers() {
  MutexLock lock(&service_waiters_mu_);
  for (ServiceCall* c : service_waiters_) {
    MutexLock call_lock(&c->mu);
    c->cv.SignalAll();
    if (c->wake != nullptr) {  // a round's caller waits on its wake (RunServiceRound)
      MutexLock wake_lock(&c->wake->mu);
      c->wake->cv.SignalAll();
    }
  }
}

void LiveWorkerPool::StopServices(SteadyTime grace_end, bool forever) {
  if (tiers_.empty()) return;
  // Every order is terminal: what the services still do is for nobody (its callers gave up),
  // and it ends by its propagated deadline. It may do so within the grace time, so that it
  // ends as in the simulator; then every wait is interrupted (as Shutdown does when out of
  // time), the queues close and the workers end what is left.
  bool out_of_time = shutdown_.cancelled();
  while (!out_of_time) {
    ServiceTier* busy = nullptr;
    for (auto& t : tiers_) {
      MutexLock lock(&t->mu);
      if (t->totals.in_flight > 0) {
        busy = t.get();
        break;
      }
    }
    if (busy == nullptr) break;
    MutexLock lock(&busy->mu);
    while (busy->totals.in_flight > 0 && !out_of_time) {
      if (forever) {
        busy->cv.Wait(&busy->mu);
      } else {
        out_of_time = busy->cv.WaitUntil(&busy->mu, grace_end);
      }
    }
  }
  shutdown_.Cancel();
  InterruptWaits();  // capacity and bulkhead lines, and callers waiting for a service
  // The requests still waiting for a rate-limit permit end now, without reaching the queue
  // (Stop joins the queue's thread first: no release runs after it).
  for (auto& t : tiers_) {
    if (!t->rate_waits) continue;
    for (const std::shared_ptr<ServiceCall>& call : t->rate_waits->Stop()) {
      ChildEnd end;
      end.arrival_ns = call->arrival_ns;
      end.deadline_ns = call->deadline_ns;
      end.end_ns = NowNs();
      bool gone = false;
      {
        MutexLock lock(&call->mu);
        gone = call->caller_gone;
      }
      end.status = gone ? OrderStatus::kExpired : OrderStatus::kCancelled;
      end.reason = gone ? FailReason::kNone : FailReason::kShutdown;
      end.dropped_unstarted = gone;
      EndCall(*t, *call, end, /*held_worker=*/false);
    }
  }
  for (auto& t : tiers_) {
    MutexLock l(&t->mu);
    t->closed = true;
    t->cv.SignalAll();
  }
  for (auto& w : service_workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  // Every request ended (its queue is drained, its worker joined): an engine bug otherwise.
  for (auto& t : tiers_) {
    MutexLock lock(&t->mu);
    RLAB_INVARIANT(t->totals.in_flight == 0 && t->jobs.empty(),
                   "live engine at shutdown: service %s has %d requests in flight", t->config->name,
                   t->totals.in_flight);
  }
}

void LiveWorkerPool::SampleServices(absl::FunctionRef<void(double)> put) {
  for (auto& t : tiers_) {
    ServiceSample now;
    {
      MutexLock lock(&t->mu);
      now = SampleOf(t->totals, static_cast<int64_t>(t->jobs.size()), t->busy);
    }
    PutServiceSample(now, &t->last, put);
  }
}

std::vector<ServiceTotals> LiveWorkerPool::ServiceResult() {
  std::vector<ServiceTotals> out;
  if (tiers_.empty()) return out;
  out.resize(tiers_.size() + 1);  // entry 0: the root, whose figures are the orders'
  for (size_t t = 0; t < tiers_.size(); ++t) {
    MutexLock lock(&tiers_[t]->mu);
    out[t + 1] = tiers_[t]->totals;
  }
  return out;
}

}  // namespace rlab
