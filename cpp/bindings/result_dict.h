// The result of either engine (a SimResult) as the raw dict reliability_lab.sim turns into a
// Result, so that simulate() and rl.Lab produce the same shape from one conversion.
#ifndef RLAB_BINDINGS_RESULT_DICT_H_
#define RLAB_BINDINGS_RESULT_DICT_H_

#include <pybind11/pybind11.h>

#include <vector>

#include "rlab/model/run_result.h"
#include "rlab/model/scenario.h"

namespace rlab::bindings {

namespace py = pybind11;

// Counts, histograms, per-dependency totals, time series, events and (with_orders) the per-order
// columns of `r`, for scenario `sc`; `bounds_s` are the latency histogram's bucket bounds. With
// `consume` (the caller's own &r.orders, which it no longer needs) the records are freed chunk by
// chunk while being converted. Needs the GIL.
py::dict ResultDict(const ScenarioConfig& sc, const SimResult& r,
                    const std::vector<double>& bounds_s, bool with_orders,
                    OrderRecords* consume = nullptr);

}  // namespace rlab::bindings

#endif  // RLAB_BINDINGS_RESULT_DICT_H_
