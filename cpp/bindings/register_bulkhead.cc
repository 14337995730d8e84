// placeholder: replaced by the bulkhead bindings
#include <pybind11/pybind11.h>

namespace rlab::bindings {
void RegisterBulkhead(pybind11::module_& m) { (void)m; }
}  // namespace rlab::bindings
