// placeholder: replaced by the breaker bindings
#include <pybind11/pybind11.h>

namespace rlab::bindings {
void RegisterBreaker(pybind11::module_& m) { (void)m; }
}  // namespace rlab::bindings
