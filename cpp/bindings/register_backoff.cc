// placeholder: replaced by the backoff bindings
#include <pybind11/pybind11.h>

namespace rlab::bindings {
void RegisterBackoff(pybind11::module_& m) { (void)m; }
}  // namespace rlab::bindings
