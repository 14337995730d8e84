#include "rlab/model/service_intake.h"

#include <string>

#include "absl/strings/str_format.h"
#include "rlab/model/limits.h"
#include "rlab/model/order_flow.h"

namespace rlab {
namespace {

absl::Status Prefixed(const std::string& prefix, const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrFormat("%s%s", prefix, status.message()));
}

}  // namespace

absl::Status ValidateServiceIntake(const ServiceConfig& service) {
  const std::string p = absl::StrFormat("services[%s].intake", service.name);
  const IntakeConfig& in = service.intake;
  // Shedding reads an order's class and tenant, and a rate limit may park a request before the
  // queue: neither is modelled at a service yet (the root's intake has both).
  if (in.shedding) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s.shedding must be None: load shedding is only modelled at the root's intake for now "
        "(set intake.shedding on the scenario)",
        p));
  }
  if (in.rate_limit) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s.rate_limit must be None: a rate limit is only modelled at the root's intake and on "
        "dependencies for now (set intake.rate_limit, or <dependency>.rate_limit on the calling "
        "dependency)",
        p));
  }
  absl::Status s = Prefixed(p + ".discipline.", Validate(in.discipline));
  if (s.ok() && in.limit) s = ValidateLimit(p + ".limit", *in.limit);
  return s;
}

ServiceIntake::ServiceIntake(const IntakeConfig& config) : discipline_(config.discipline) {
  if (config.limit) {
    limiter_ = std::make_unique<ConcurrencyLimiter>(ToConcurrencyLimitConfig(*config.limit));
  }
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
