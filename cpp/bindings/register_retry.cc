// placeholder: replaced by the retry bindings
#include <pybind11/pybind11.h>

namespace rlab::bindings {
void RegisterRetry(pybind11::module_& m) { (void)m; }
}  // namespace rlab::bindings
