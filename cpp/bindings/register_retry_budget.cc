// placeholder: replaced by the retry_budget bindings
#include <pybind11/pybind11.h>

namespace rlab::bindings {
void RegisterRetryBudget(pybind11::module_& m) { (void)m; }
}  // namespace rlab::bindings
