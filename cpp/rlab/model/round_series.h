#ifndef RLAB_MODEL_ROUND_SERIES_H_
#define RLAB_MODEL_ROUND_SERIES_H_

#include <array>

namespace rlab {

// The time-series columns ("<dependency>.<column>") of a dependency whose calls are rounds
// (hedged or fanned out), after every other column and in this order, in both engines: per
// interval, hedges sent, calls won by a hedge, copies cancelled, seconds of server time spent on
// cancelled copies, hedges the budget refused.
inline constexpr std::array<const char*, 5> kRoundSeriesColumns = {
    "hedges", "hedges_won", "cancelled", "wasted_attempt_seconds", "hedges_denied"};

}  // namespace rlab

#endif  // RLAB_MODEL_ROUND_SERIES_H_
