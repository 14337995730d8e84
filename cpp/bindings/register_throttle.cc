// placeholder: replaced by the throttle bindings
#include <pybind11/pybind11.h>

namespace rlab::bindings {
void RegisterThrottle(pybind11::module_& m) { (void)m; }
}  // namespace rlab::bindings
