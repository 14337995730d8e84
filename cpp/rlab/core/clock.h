#ifndef RLAB_CORE_CLOCK_H_
#define RLAB_CORE_CLOCK_H_

#include <atomic>
#include <cstdint>

namespace rlab {

// Time is integer nanoseconds everywhere in the core; seconds appear only at the Python boundary.
inline constexpr int64_t kNsPerSecond = 1'000'000'000;

// Converts finite seconds to nanoseconds, rounding to the nearest nanosecond (half away from
// zero) and saturating at the int64 range; NaN gives 0. Callers validate their inputs first;
// this never fails. Inline and branch-light: the simulator converts every sampled duration.
inline int64_t SecondsToNs(double seconds) {
  constexpr double kMax = 9.2233720368547758e18;  // 2^63
  const double ns = seconds * 1e9;
  if (!(ns == ns)) return 0;
  if (ns >= kMax) return INT64_MAX;
  if (ns <= -kMax) return INT64_MIN;
  return ns >= 0 ? static_cast<int64_t>(ns + 0.5) : -static_cast<int64_t>(-ns + 0.5);
}

// Converts nanoseconds to seconds.
// Division (not multiplication by 1e-9) keeps whole seconds exact: 60e9 ns is 60.0, not
// 60.00000000000001.
inline double NsToSeconds(int64_t ns) { return static_cast<double>(ns) / 1e9; }

// A source of the current time. Policies never hold one: engines read it and pass `now_ns` in.
class Clock {
 public:
  virtual ~Clock() = default;
  // The current time in nanoseconds since this clock's epoch; never decreases.
  virtual int64_t NowNs() const = 0;
};

// The process's monotonic clock (std::chrono::steady_clock).
class SteadyClock final : public Clock {
 public:
  int64_t NowNs() const override;
};

// A virtual clock that moves only when told to: for tests, demos and the simulated engine.
// Thread-safe; reads are a single atomic load.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ns = 0) : now_ns_(start_ns) {}

  int64_t NowNs() const override { return now_ns_.load(std::memory_order_acquire); }

  // Moves the clock forward by `delta_ns` (>= 0; negative values are ignored) and returns the new
  // time.
  int64_t AdvanceNs(int64_t delta_ns);

  // Moves the clock to `t_ns` if that is later than now (time never goes back); returns the new
  // time.
  int64_t AdvanceToNs(int64_t t_ns);

 private:
  std::atomic<int64_t> now_ns_;
};

}  // namespace rlab

#endif  // RLAB_CORE_CLOCK_H_
