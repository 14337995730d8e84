#include "rlab/policy/rate_limit.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "rlab/core/validate.h"

namespace rlab {

std::string_view RateLimitModeName(RateLimitMode mode) {
  return mode == RateLimitMode::kSmooth ? "smooth" : "bursty";
}

absl::StatusOr<RateLimitMode> ParseRateLimitMode(std::string_view name) {
  if (name == "smooth") return RateLimitMode::kSmooth;
  if (name == "bursty") return RateLimitMode::kBursty;
  return absl::InvalidArgumentError(
      absl::StrFormat("rate.mode must be 'smooth' or 'bursty', got '%s'", name));
}

namespace {

// ceil(a / b) for a >= 0, b > 0.
int64_t DivCeil(int64_t a, int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }

}  // namespace

int64_t RateState::WaitFor(const RateLimiterParams& c, int64_t now_ns, int64_t* tat, int64_t* cycle,
                           int64_t* available) const {
  if (c.mode == RateLimitMode::kSmooth) {
    // GCRA (the virtual scheduling form): permits every `interval`, `burst` of them saved up.
    const int64_t interval = c.period_ns / c.permits;
    const int64_t tau = (c.burst - 1) * interval;
    const int64_t t = started_ ? *tat : now_ns;  // a fresh limiter has its whole burst
    const int64_t wait = std::max<int64_t>(0, t - now_ns - tau);
    *tat = std::max(t, now_ns) + interval;
    return wait;
  }
  // Bursty: periods counted from the first call; a new period refills to `permits` (no
  // carry-over), debts from reservations included (Resilience4j AtomicRateLimiter).
  const int64_t origin = started_ ? tat_ns_ : now_ns;
  const int64_t elapsed = std::max<int64_t>(0, now_ns - origin);
  const int64_t current = elapsed / c.period_ns;
  int64_t avail = started_ ? *available : c.permits;
  const int64_t cycles = current - (started_ ? *cycle : 0);
  if (cycles > 0) {
    const int64_t need = c.permits - avail;  // > 0 unless already full
    if (need <= 0 || cycles >= DivCeil(need, c.permits)) {
      avail = c.permits;
    } else {
      avail += cycles * c.permits;  // small: cycles < need / permits, no overflow
    }
  }
  *cycle = current;
  int64_t wait = 0;
  if (avail < 1) {
    const int64_t to_next = origin + (current + 1) * c.period_ns - now_ns;
    const int64_t at_next = avail + c.permits;  // after the next refill
    const int64_t full_cycles = at_next >= 1 ? 0 : DivCeil(1 - at_next, c.permits);
    wait = full_cycles * c.period_ns + to_next;
  }
  *available = avail - 1;
  *tat = origin;
  return wait;
}

bool RateState::TryAcquire(const RateLimiterParams& c, int64_t now_ns) {
  return Reserve(c, now_ns, 0).has_value();
}

std::optional<int64_t> RateState::Reserve(const RateLimiterParams& c, int64_t now_ns,
                                          int64_t max_wait_ns) {
  int64_t tat = tat_ns_;
  int64_t cycle = cycle_;
  int64_t available = available_;
  const int64_t wait = WaitFor(c, now_ns, &tat, &cycle, &available);
  if (wait > max_wait_ns) return std::nullopt;  // refused: the state is unchanged
  started_ = true;
  tat_ns_ = tat;
  cycle_ = cycle;
  available_ = available;
  return wait;
}

int64_t RateState::Available(const RateLimiterParams& c, int64_t now_ns) const {
  if (!started_) return c.mode == RateLimitMode::kSmooth ? c.burst : c.permits;
  if (c.mode == RateLimitMode::kSmooth) {
    const int64_t interval = c.period_ns / c.permits;
    // Permits free now: how far now is past tat, in intervals, plus one, capped at the burst.
    const int64_t slack = now_ns - tat_ns_ + c.burst * interval;
    return std::clamp<int64_t>(slack / interval, 0, c.burst);
  }
  int64_t tat = tat_ns_;
  int64_t cycle = cycle_;
  int64_t available = available_;
  WaitFor(c, now_ns, &tat, &cycle, &available);
  return available + 1;  // WaitFor took one
}

// --- RateLimiter ---------------------------------------------------------------------------------

bool RateLimiter::TryAcquire(int64_t now_ns) { return Reserve(now_ns, 0).has_value(); }

std::optional<int64_t> RateLimiter::Reserve(int64_t now_ns, int64_t max_wait_ns) {
  MutexLock lock(&mu_);
  std::optional<int64_t> wait = state_.Reserve(config_, now_ns, max_wait_ns);
  ++(!wait.has_value() ? stats_.rejected : *wait == 0 ? stats_.granted : stats_.reserved);
  return wait;
}

int64_t RateLimiter::Available(int64_t now_ns) {
  MutexLock lock(&mu_);
  return state_.Available(config_, now_ns);
}

RateLimitStats RateLimiter::Stats() {
  MutexLock lock(&mu_);
  return stats_;
}

// --- KeyedRateLimiter ----------------------------------------------------------------------------

KeyedRateLimiter::Entry& KeyedRateLimiter::Touch(std::string_view key) {
  auto it = entries_.find(std::string(key));
  if (it != entries_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return it->second;
  }
  if (static_cast<int64_t>(entries_.size()) >= config_.max_keys) {
    entries_.erase(lru_.back());
    lru_.pop_back();
    ++stats_.evictions;
  }
  lru_.emplace_front(key);
  Entry& e = entries_[lru_.front()];
  e.lru = lru_.begin();
  return e;
}

bool KeyedRateLimiter::TryAcquire(std::string_view key, int64_t now_ns) {
  return Reserve(key, now_ns, 0).has_value();
}

std::optional<int64_t> KeyedRateLimiter::Reserve(std::string_view key, int64_t now_ns,
                                                 int64_t max_wait_ns) {
  MutexLock lock(&mu_);
  std::optional<int64_t> wait = Touch(key).state.Reserve(config_, now_ns, max_wait_ns);
  ++(!wait.has_value() ? stats_.rejected : *wait == 0 ? stats_.granted : stats_.reserved);
  return wait;
}

int64_t KeyedRateLimiter::Available(std::string_view key, int64_t now_ns) {
  MutexLock lock(&mu_);
  auto it = entries_.find(std::string(key));
  if (it == entries_.end()) return RateState().Available(config_, now_ns);
  return it->second.state.Available(config_, now_ns);
}

RateLimitStats KeyedRateLimiter::Stats() {
  MutexLock lock(&mu_);
  RateLimitStats s = stats_;
  s.keys = static_cast<int64_t>(entries_.size());
  return s;
}

}  // namespace rlab
