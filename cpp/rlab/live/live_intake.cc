#include "rlab/live/live_intake.h"

#include <algorithm>
#include <limits>
#include <thread>
#include <utility>

#include "absl/strings/str_format.h"
#include "rlab/core/invariant.h"
#include "rlab/model/order_flow.h"

namespace rlab {

LiveIntake::LiveIntake(const ScenarioConfig& config, Rng& rng, Hooks hooks)
    : config_(config),
      hooks_(std::move(hooks)),
      queue_(static_cast<size_t>(std::max(1, config.queue_capacity))) {
  queue_.SetDiscipline(config_.intake.discipline, hooks_.now_ns);
  if (config_.intake.shedding) {
    // The job queue's capacity as the simulated engine sees it (the live queue holds >= 1).
    shedder_ = std::make_unique<LoadShedder>(*config_.intake.shedding, config_.queue_capacity);
    MutexLock lock(&origin_mu_);
    origin_rng_ = rng.Stream("intake/origin");
    origins_.Init(*config_.intake.shedding);
  }
  if (config_.intake.rate_limit) {
    rate_ = std::make_unique<RateGate>(*config_.intake.rate_limit);
    if (config_.intake.rate_limit->max_wait_ns > 0) {
      rate_waits_ = std::make_unique<RateWaitQueue<LiveJob>>(
          hooks_.to_steady, [this](LiveJob job) { ReleaseParked(job); });
    }
  }
  if (config_.intake.limit) {
    limiter_ =
        std::make_unique<ConcurrencyLimiter>(ToConcurrencyLimitConfig(*config_.intake.limit));
    MutexLock lock(&limiter_rng_mu_);
    limiter_rng_.emplace(rng.Stream("intake"));
  }
}

void LiveIntake::Open() {
  accepting_.store(true, std::memory_order_release);
  if (rate_waits_) rate_waits_->Start();
}

void LiveIntake::WaitSubmits() const {
  while (submitting_.load(std::memory_order_seq_cst) > 0) std::this_thread::yield();
}

absl::Status LiveIntake::CheckOrigin(const OrderOrigin& origin) const {
  const int tenants = shedder_ ? std::max<int>(1, config_.intake.shedding->tenants.size()) : 1;
  if (origin.tenant < 0 || origin.tenant >= tenants) {
    return absl::InvalidArgumentError(
        absl::StrFormat("tenant index %d is not one of the %d declared", origin.tenant, tenants));
  }
  return absl::OkStatus();
}

void LiveIntake::IgnorePermit(LiveOrderSlot& o) {
  if (o.holds_intake) {
    o.holds_intake = false;
    limiter_->OnIgnore(o.intake_token);
  }
}

void LiveIntake::Admit(const LiveJob& job, std::optional<OrderOrigin> origin, int64_t now) {
  const int64_t id = job.id;
  LiveOrderSlot& o = job.slot();
  auto finish = [&](OrderStatus status, FailReason reason, bool admitted) {
    hooks_.finish(job, status, reason, now, admitted);
  };
  // intake.shedding: the order's class and tenant, and the shedder's decision.
  OrderOrigin from;
  if (origin) {
    from = *origin;  // without shedding, recorded only
  } else if (shedder_) {
    MutexLock lock(&origin_mu_);
    from = DrawOrigin(shedder_->config(), origin_rng_);
  }
  o.record.origin = PackOrigin(from);
  auto origin_arrival = [&](bool admitted, ShedCause cause) {
    if (!shedder_) return;
    MutexLock lock(&origin_mu_);
    origins_.OnArrival(from, admitted, cause);
  };
  // intake.rate_limit first. A permit due later (within max_wait, and within the order's
  // deadline as in the simulated engine) parks the order, admitted and still pending, until
  // then: ReleaseParked sends it on through the gates below. No permit refuses it (below).
  std::optional<int64_t> rate_wait_ns = 0;
  if (rate_) {
    rate_wait_ns =
        rate_->Reserve(o.key, now,
                       config_.order_deadline_ns > 0 ? config_.order_deadline_ns
                                                     : std::numeric_limits<int64_t>::max());
  }
  if (rate_wait_ns.value_or(0) > 0) {
    hooks_.metrics->arrived->Add();
    origin_arrival(true, ShedCause::kAdmit);  // the shedder decides when it reaches the queue
    ParkForRate(job, now + *rate_wait_ns);
    return;
  }
  // Before the push: once queued, a worker may record "processing" at any moment.
  hooks_.on_queued(id, now);
  RLAB_INVARIANT(
      o.status.load(std::memory_order_relaxed) == static_cast<uint8_t>(OrderStatus::kPending),
      "order %d: queued from status %d, not pending", id, o.status.load());
  o.status.store(static_cast<uint8_t>(OrderStatus::kQueued), std::memory_order_release);
  hooks_.metrics->arrived->Add();
  // intake.rate_limit, then intake.limit (refusals count per class with the queue's own), then
  // the queue and the shedder, as in the simulated engine.
  if (!rate_wait_ns) {
    origin_arrival(false, ShedCause::kAdmit);
    finish(OrderStatus::kRejected, FailReason::kRateLimited, false);
    return;
  }
  if (limiter_) {
    // intake.limit: the outermost gate, as a server-side limiter in front of the queue.
    std::optional<LimitToken> token = limiter_->TryAcquire(now);
    if (!token) {
      origin_arrival(false, ShedCause::kAdmit);
      finish(OrderStatus::kRejected, FailReason::kLimited, false);
      return;
    }
    o.intake_token = *token;
    o.holds_intake = true;
  }
  // A full queue refuses first (queue_full, as in the simulated engine); the shedder decides on
  // the others.
  const bool full = shedder_ && queue_.size() >= queue_.capacity();
  const ShedCause shed =
      shedder_ && !full ? shedder_->Admit(now, from.criticality, from.tenant) : ShedCause::kAdmit;
  std::atomic<int64_t>& in_system = *hooks_.in_system;
  in_system.fetch_add(1, std::memory_order_acq_rel);
  if (shed != ShedCause::kAdmit) {
    in_system.fetch_sub(1, std::memory_order_acq_rel);
    IgnorePermit(o);
    origin_arrival(false, shed);
    finish(OrderStatus::kRejected, FailReason::kShed, false);
    return;
  }
  if (full) {
    in_system.fetch_sub(1, std::memory_order_acq_rel);
    IgnorePermit(o);
    origin_arrival(false, ShedCause::kAdmit);
    finish(OrderStatus::kRejected, FailReason::kQueueFull, false);
    return;
  }
  LiveJob queued = job;
  // The per-class counts are sums read after the run (or refreshed as a whole), so a worker
  // may count the order's end before its arrival is counted here.
  switch (queue_.TryPush(queued, now)) {
    case PushResult::kOk:
      origin_arrival(true, ShedCause::kAdmit);
      return;
    case PushResult::kFull:
      if (shedder_) shedder_->OnDequeue(now, from.tenant, -1);
      origin_arrival(false, ShedCause::kAdmit);
      IgnorePermit(o);
      in_system.fetch_sub(1, std::memory_order_acq_rel);
      finish(OrderStatus::kRejected, FailReason::kQueueFull, false);
      return;
    case PushResult::kClosed:
      // Shutdown closed the queue between the intake check and the push: the order arrived
      // before intake stopped, so it is cancelled like any order the shutdown found queued.
      if (shedder_) shedder_->OnDequeue(now, from.tenant, -1);
      origin_arrival(true, ShedCause::kAdmit);  // admitted, then cancelled by the shutdown
      in_system.fetch_sub(1, std::memory_order_acq_rel);
      finish(OrderStatus::kCancelled, FailReason::kShutdown, false);
      return;
  }
}

// --- intake.rate_limit waits (rate_wait_queue.h) ---------------------------------------------

void LiveIntake::ParkForRate(const LiveJob& job, int64_t due_ns) {
  // In the system from now on (WaitIdle waits for it, Finish counts it admitted), as in the
  // simulated engine; its status stays pending (the initial one) until it is queued.
  hooks_.in_system->fetch_add(1, std::memory_order_acq_rel);
  if (rate_waits_->Park(job, due_ns)) return;
  // Stopped: Shutdown stops the queue only after every submit returned, so this is defensive.
  hooks_.finish(job, OrderStatus::kCancelled, FailReason::kShutdown, hooks_.now_ns(), true);
}

void LiveIntake::ReleaseParked(const LiveJob& job) {
  const int64_t id = job.id;
  LiveOrderSlot& o = job.slot();
  const int64_t now = hooks_.now_ns();
  const OrderOrigin from = UnpackOrigin(o.record.origin);
  // A refusal now ends an admitted order (counted admitted on arrival): its end counts per
  // class as the simulated engine's FinishWithoutFlow counts it (Finish does, for an admitted
  // order).
  auto refuse = [&](FailReason reason) {
    IgnorePermit(o);
    hooks_.finish(job, OrderStatus::kRejected, reason, now, true);
  };
  // The remaining gates in the simulated engine's order (OnIntakeReady): intake.limit, the
  // queue's capacity, the shedder. An order whose deadline passed while it waited goes on too,
  // and expires when a worker takes it, as there.
  if (limiter_) {
    std::optional<LimitToken> token = limiter_->TryAcquire(now);
    if (!token) return refuse(FailReason::kLimited);
    o.intake_token = *token;
    o.holds_intake = true;
  }
  if (shedder_ && queue_.size() >= queue_.capacity()) return refuse(FailReason::kQueueFull);
  if (shedder_ && shedder_->Admit(now, from.criticality, from.tenant) != ShedCause::kAdmit) {
    return refuse(FailReason::kShed);
  }
  // Before the push: once queued, a worker may record "processing" at any moment.
  hooks_.on_queued(id, now);
  o.status.store(static_cast<uint8_t>(OrderStatus::kQueued), std::memory_order_release);
  LiveJob queued = job;
  switch (queue_.TryPush(queued, now)) {
    case PushResult::kOk:
      return;
    case PushResult::kFull:
      if (shedder_) shedder_->OnDequeue(now, from.tenant, -1);
      return refuse(FailReason::kQueueFull);
    case PushResult::kClosed:
      // Shutdown closes the queue only once nothing is parked; defensive, as in Admit.
      if (shedder_) shedder_->OnDequeue(now, from.tenant, -1);
      hooks_.finish(job, OrderStatus::kCancelled, FailReason::kShutdown, now, true);
      return;
  }
}

std::vector<LiveJob> LiveIntake::DrainParked(std::chrono::steady_clock::time_point deadline,
                                             bool forever) {
  if (!rate_waits_) return {};
  rate_waits_->WaitEmpty(deadline, forever);
  return rate_waits_->Stop();
}

void LiveIntake::OnDequeued(const LiveOrderSlot& o, int64_t now_ns, int64_t delay_ns) {
  if (shedder_) shedder_->OnDequeue(now_ns, UnpackOrigin(o.record.origin).tenant, delay_ns);
}

void LiveIntake::OnOrderEnd(LiveOrderSlot& o, OrderStatus status, FailReason reason, int64_t now_ns,
                            bool admitted) {
  if (o.holds_intake) {
    o.holds_intake = false;
    const LimitSampleKind sample = IntakeLimitSample(status, reason);
    double u = 0.0;
    if (sample != LimitSampleKind::kIgnore) {
      MutexLock lock(&limiter_rng_mu_);
      u = limiter_rng_->Uniform01();
    }
    switch (sample) {
      case LimitSampleKind::kSuccess:
        limiter_->OnSuccess(o.intake_token, now_ns, u);
        break;
      case LimitSampleKind::kDropped:
        limiter_->OnDropped(o.intake_token, now_ns, u);
        break;
      case LimitSampleKind::kIgnore:
        limiter_->OnIgnore(o.intake_token);
        break;
    }
  }
  if (shedder_ && (admitted || status != OrderStatus::kRejected)) {
    // Orders refused on arrival were counted at intake; every admitted order's end counts here,
    // including those rejected later (after an intake.rate_limit wait, or dropped by CoDel).
    const OrderRecord& r = o.record;
    MutexLock lock(&origin_mu_);
    origins_.OnEnd(UnpackOrigin(r.origin), status, now_ns - r.arrival_ns);
  }
}

OriginStats LiveIntake::origins() const {
  MutexLock lock(&origin_mu_);
  return origins_;
}

void LiveIntake::RefreshMetrics() const {
  const LiveMetrics& metrics = *hooks_.metrics;
  if (metrics.intake_classes == nullptr) return;
  MutexLock lock(&origin_mu_);
  // The totals only grow, so each counter moves up by the difference (callers of
  // MetricsSnapshot may race: the lock makes each refresh see and publish one state).
  auto refresh = [](Family<Counter>* family, const std::vector<OriginTotals>& totals) {
    if (family == nullptr) return;
    size_t i = 0;
    for (const OriginTotals& t : totals) {
      for (int64_t v : {t.arrived, t.admitted, t.shed, t.queue_full, t.completed}) {
        Counter& c = family->at(i++);
        if (v > c.value()) c.Add(v - c.value());
      }
    }
  };
  refresh(metrics.intake_classes, origins_.classes);
  refresh(metrics.intake_tenants, origins_.tenants);
}

}  // namespace rlab
