#include "rlab/model/arrivals.h"

#include <algorithm>

#include "rlab/core/clock.h"

namespace rlab {

double RateAt(const std::vector<RateSegment>& schedule, int64_t t_ns) {
  for (const RateSegment& s : schedule) {
    if (t_ns >= s.start_ns && t_ns < s.end_ns) {
      const double f =
          static_cast<double>(t_ns - s.start_ns) / static_cast<double>(s.end_ns - s.start_ns);
      return s.rate_start + f * (s.rate_end - s.rate_start);
    }
  }
  return 0.0;
}

ArrivalProcess::ArrivalProcess(const ArrivalConfig& config, int64_t duration_ns)
    : config_(config), duration_ns_(duration_ns) {
  for (const RateSegment& s : config.schedule) {
    peak_rate_ = std::max({peak_rate_, s.rate_start, s.rate_end});
  }
}

int64_t ArrivalProcess::Next(int64_t after_ns, double rate, RandomStream& rng) {
  int64_t next = kNone;
  switch (config_.kind) {
    case ArrivalConfig::Kind::kPoisson:
      // At least 1 ns apart: virtual time must move for the event queue's order to be total.
      next = after_ns + std::max<int64_t>(1, SecondsToNs(rng.Exponential(1.0 / rate)));
      break;
    case ArrivalConfig::Kind::kConstant:
      next = after_ns + std::max<int64_t>(1, SecondsToNs(1.0 / rate));
      break;
    case ArrivalConfig::Kind::kSchedule: {
      // Thinning (Lewis & Shedler 1979): candidates at the peak rate, each kept with
      // probability rate(t) / peak.
      if (peak_rate_ <= 0.0) break;
      int64_t t = after_ns;
      for (;;) {
        t += std::max<int64_t>(1, SecondsToNs(rng.Exponential(1.0 / peak_rate_)));
        if (t >= duration_ns_) break;
        if (rng.Uniform01() * peak_rate_ < RateAt(config_.schedule, t)) {
          next = t;
          break;
        }
      }
      break;
    }
    case ArrivalConfig::Kind::kTrace:
      if (trace_next_ < config_.trace_ns.size()) next = config_.trace_ns[trace_next_++];
      break;
    case ArrivalConfig::Kind::kClosedLoop:
      break;
  }
  return next < duration_ns_ ? next : kNone;
}

}  // namespace rlab
