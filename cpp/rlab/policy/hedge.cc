#include "rlab/policy/hedge.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "rlab/core/clock.h"
#include "rlab/core/schema.h"
#include "rlab/core/validate.h"

namespace rlab {

RLAB_TABLE(HedgeSchema, HedgeConfig, "Hedge", "", nullptr,
           RLAB_INT(max_hedges, 1, kMaxCopies - 1, "copies", "extra copies per call"),
           RLAB_SECONDS(delay, 0, kMaxDurationS, OC, "without an answer before the next copy"),
           schema::OrNone(RLAB_REAL(quantile, 0, 1, OO, "", "hedge after this latency quantile"),
                          0.0),
           RLAB_INT(window, 1, 100'000, "latencies", "kept for the quantile"),
           schema::OrNone(RLAB_REAL(budget_ratio, 0, kMaxCopies - 1, CC, "tokens",
                                    "budget tokens added per call"),
                          -1.0),
           RLAB_REAL(budget_burst, 1, 1e9, CC, "tokens", "the budget bucket's size"));
absl::Status Validate(const HedgeConfig& c) { return ValidateFields(HedgeSchema(), c); }

RLAB_TABLE(FanoutSchema, FanOutConfig, "FanOut", "", &ValidateFanoutRules,
           RLAB_INT(copies, 1, kMaxCopies, "copies", "copies per call"),
           RLAB_INT(quorum, 1, kMaxCopies, "copies", "successes needed"));
absl::Status ValidateFanoutRules(const FanOutConfig& c) {
  return CheckIntRange("quorum", c.quorum, 1, c.copies);
}
absl::Status Validate(const FanOutConfig& c) { return ValidateAt("", FanoutSchema(), c); }

Hedger::Hedger(const HedgeConfig& config) : config_(config), tokens_(config.budget_burst) {
  if (config_.quantile > 0.0) ring_.reserve(static_cast<size_t>(config_.window));
}

int64_t Hedger::DelayNs() {
  if (config_.quantile <= 0.0) return config_.delay_ns;
  MutexLock lock(&mu_);
  const size_t n = static_cast<size_t>(config_.window);
  if (ring_.size() < n) return config_.delay_ns;
  // Recomputing on every call would cost O(window) per hedged call; a refresh every window/16
  // new latencies keeps the quantile current at a bounded cost.
  if (quantile_ns_ < 0 || since_compute_ >= std::max<int64_t>(1, config_.window / 16)) {
    scratch_ = ring_;
    // The nearest-rank quantile: the smallest latency with at least q·n latencies at or below.
    const auto rank = static_cast<size_t>(std::ceil(config_.quantile * static_cast<double>(n)));
    const size_t k = std::min(n - 1, rank == 0 ? 0 : rank - 1);
    std::nth_element(scratch_.begin(), scratch_.begin() + static_cast<std::ptrdiff_t>(k),
                     scratch_.end());
    quantile_ns_ = std::max<int64_t>(1, scratch_[k]);
    since_compute_ = 0;
  }
  return quantile_ns_;
}

void Hedger::RecordLatency(int64_t latency_ns) {
  if (config_.quantile <= 0.0) return;
  MutexLock lock(&mu_);
  if (ring_.size() < static_cast<size_t>(config_.window)) {
    ring_.push_back(latency_ns);
  } else {
    ring_[next_] = latency_ns;
    next_ = (next_ + 1) % ring_.size();
  }
  ++since_compute_;
}

void Hedger::OnCall(int64_t now_ns) {
  if (config_.budget_ratio < 0.0) return;
  MutexLock lock(&mu_);
  tokens_ = std::min(config_.budget_burst, tokens_ + config_.budget_ratio);
  if (dry_ && tokens_ >= 1.0) {
    dry_ = false;
    AddBudgetEvent(now_ns, false);
  }
}

bool Hedger::TryHedge(int64_t now_ns) {
  if (config_.budget_ratio < 0.0) return true;
  MutexLock lock(&mu_);
  if (tokens_ < 1.0) {
    if (!dry_) {
      dry_ = true;
      AddBudgetEvent(now_ns, true);
    }
    return false;
  }
  tokens_ -= 1.0;
  return true;
}

void Hedger::AddBudgetEvent(int64_t now_ns, bool dry) {
  if (budget_events_.size() < kMaxBudgetEvents) budget_events_.push_back({now_ns, dry});
}

std::vector<Hedger::BudgetEvent> Hedger::BudgetEvents() {
  MutexLock lock(&mu_);
  return budget_events_;
}

double Hedger::tokens() {
  MutexLock lock(&mu_);
  return tokens_;
}

}  // namespace rlab
