#include "rlab/model/service_intake.h"

#include <algorithm>
#include <limits>

#include "rlab/model/limits.h"
#include "rlab/model/order_flow.h"

namespace rlab {

ServiceIntake::ServiceIntake(const IntakeConfig& config) : discipline_(config.discipline) {
  if (config.limit) {
    limiter_ = std::make_unique<ConcurrencyLimiter>(ToConcurrencyLimitConfig(*config.limit));
  }
  if (config.rate_limit) rate_ = std::make_unique<RateGate>(*config.rate_limit);
}

std::optional<int64_t> ServiceIntake::ReserveRate(int32_t key, int64_t now_ns,
                                                  int64_t deadline_ns) {
  if (!rate_) return 0;
  // As the root (sim_engine.cc NewOrder): a permit due after the request's own deadline is of
  // no use to it, so the wait is capped by the time it has left as well as by max_wait.
  int64_t cap_ns = std::numeric_limits<int64_t>::max();
  if (deadline_ns != kNoDeadline) cap_ns = std::max<int64_t>(0, deadline_ns - now_ns);
  return rate_->Reserve(rate_->config().per_key ? key : -1, now_ns, cap_ns);
}

std::optional<ServicePermit> ServiceIntake::Admit(int64_t now_ns) {
  ServicePermit p;
  if (!limiter_) return p;
  std::optional<LimitToken> token = limiter_->TryAcquire(now_ns);
  if (!token) return std::nullopt;
  p.held = true;
  p.token = *token;
  return p;
}

void ServiceIntake::Abandon(ServicePermit& permit) {
  if (!permit.held) return;
  permit.held = false;
  limiter_->OnIgnore(permit.token);
}

void ServiceIntake::OnEnd(ServicePermit& permit, OrderStatus status, FailReason reason,
                          int64_t now_ns, double u) {
  if (!permit.held) return;
  permit.held = false;
  // As the root's intake limit (sim_engine.cc FinishWithoutFlow, live_intake.cc).
  switch (IntakeLimitSample(status, reason)) {
    case LimitSampleKind::kSuccess:
      limiter_->OnSuccess(permit.token, now_ns, u);
      break;
    case LimitSampleKind::kDropped:
      limiter_->OnDropped(permit.token, now_ns, u);
      break;
    case LimitSampleKind::kIgnore:
      limiter_->OnIgnore(permit.token);
      break;
  }
}

}  // namespace rlab
