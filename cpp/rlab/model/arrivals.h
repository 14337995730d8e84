#ifndef RLAB_MODEL_ARRIVALS_H_
#define RLAB_MODEL_ARRIVALS_H_

// The open-loop arrival process both engines draw from: Poisson, evenly spaced, a time-varying
// Poisson schedule (by thinning) or a trace. Pure: time and random draws come in as arguments,
// so the simulated engine and the live load generator make the same arrivals from one seed.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "rlab/core/rng.h"
#include "rlab/model/scenario.h"

namespace rlab {

// The rate of a schedule at `t_ns` (orders per second; 0 outside every segment).
double RateAt(const std::vector<RateSegment>& schedule, int64_t t_ns);

// The arrival times of one run, in nanoseconds since its start.
class ArrivalProcess {
 public:
  // No more arrivals (at or after the end of the run's arrivals).
  static constexpr int64_t kNone = std::numeric_limits<int64_t>::max();

  // `config` must outlive the process; arrivals stop at `duration_ns`.
  ArrivalProcess(const ArrivalConfig& config, int64_t duration_ns);

  // The next arrival strictly after `after_ns` (the last arrival, or a point where the rate
  // changed), or kNone. `rate` is the Poisson / constant rate in force (the live engine may
  // change it while running); schedules and traces ignore it. Closed-loop load has no process:
  // kNone.
  int64_t Next(int64_t after_ns, double rate, RandomStream& rng);

 private:
  const ArrivalConfig& config_;
  const int64_t duration_ns_;
  double peak_rate_ = 0.0;  // a schedule's highest rate: the thinning envelope
  size_t trace_next_ = 0;
};

}  // namespace rlab

#endif  // RLAB_MODEL_ARRIVALS_H_
