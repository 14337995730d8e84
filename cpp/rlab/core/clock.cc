#include "rlab/core/clock.h"

#include <chrono>
#include <cmath>
#include <limits>

namespace rlab {

int64_t SteadyClock::NowNs() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t ManualClock::AdvanceNs(int64_t delta_ns) {
  if (delta_ns <= 0) return NowNs();
  return now_ns_.fetch_add(delta_ns, std::memory_order_acq_rel) + delta_ns;
}

int64_t ManualClock::AdvanceToNs(int64_t t_ns) {
  int64_t cur = now_ns_.load(std::memory_order_acquire);
  while (cur < t_ns && !now_ns_.compare_exchange_weak(cur, t_ns, std::memory_order_acq_rel)) {
  }
  return cur < t_ns ? t_ns : cur;
}

}  // namespace rlab
