#ifndef RLAB_MODEL_SAMPLE_SCHEDULE_H_
#define RLAB_MODEL_SAMPLE_SCHEDULE_H_

// When the simulated engine takes its next time-series sample. Regular ticks every `every_ns`
// while orders arrive and for kRegularDrainSamples ticks of the drain after that; then the gaps
// double. A drain can be as long as an attempt's latency times the orders queued (a legal
// Constant(1e6) latency drains for millions of seconds): regular ticks through it would keep a
// row per tick, memory proportional to the run's length rather than to the work in flight.
// Doubling keeps the drain's rows to kRegularDrainSamples + log2(drain / every) whatever its
// length, while every ordinary drain (seconds to minutes) is still sampled regularly.

#include <cstdint>
#include <limits>

namespace rlab {

// Regular samples after the end of arrivals before the gaps start doubling.
inline constexpr int64_t kRegularDrainSamples = 1000;

// The gap from the tick at `now_ns` to the next one, for samples every `every_ns` (> 0) and
// arrivals ending at `duration_ns` (>= 0). Regular ticks lie on multiples of `every_ns`; past
// R = ceil(duration / every) * every + kRegularDrainSamples * every the gap is
// every + (now - R): ticks at R, R + every, R + 3 every, R + 7 every, ... Saturates so that
// now + gap never overflows.
inline int64_t NextSampleGapNs(int64_t now_ns, int64_t duration_ns, int64_t every_ns) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const int64_t ticks = duration_ns / every_ns + (duration_ns % every_ns != 0 ? 1 : 0);
  const int64_t regular_ticks = ticks + kRegularDrainSamples;
  // Beyond the int64 range the regular ticks never end; gaps stay regular.
  const int64_t regular_end_ns = regular_ticks > kMax / every_ns ? kMax : regular_ticks * every_ns;
  int64_t gap = every_ns;
  if (now_ns >= regular_end_ns) {
    const int64_t past = now_ns - regular_end_ns;
    gap = past > kMax - every_ns ? kMax : every_ns + past;
  }
  return gap > kMax - now_ns ? kMax - now_ns : gap;
}

}  // namespace rlab

#endif  // RLAB_MODEL_SAMPLE_SCHEDULE_H_
