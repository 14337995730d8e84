// reliability_lab._core: the private extension module. This file is its table of contents; each
// register_<area>.cc binds one area of the C++ core. The typed public API lives in Python
// (python/reliability_lab/), which is the only importer of this module.
#include <pybind11/pybind11.h>

namespace rlab::bindings {
namespace py = pybind11;

void RegisterErrors(py::module_& m);       // the exception hierarchy (first: the others raise it)
void RegisterCore(py::module_& m);         // clocks, seeded random streams, outcomes
void RegisterBackoff(py::module_& m);      // exponential backoff with jitter
void RegisterRetry(py::module_& m);        // the retry decision loop
void RegisterRetryBudget(py::module_& m);  // token-bucket and ratio retry budgets
void RegisterBreaker(py::module_& m);      // circuit breaker
void RegisterBulkhead(py::module_& m);     // bulkhead admission
void RegisterThrottle(py::module_& m);     // adaptive client-side throttling
void RegisterScenario(py::module_& m);     // scenario validation (dict -> ScenarioConfig)
void RegisterSim(py::module_& m);          // the simulated engine
void RegisterLive(py::module_& m);         // the live engine (real threads)
void RegisterConcurrencyLimit(py::module_& m);  // adaptive concurrency limits
void RegisterRateLimit(py::module_& m);         // rate limiters (smooth, bursty, per key)

// Load balancing over replicas; the detector first (the balancer takes one).
void RegisterOutlier(py::module_& m);
void RegisterLoadBalancer(py::module_& m);
void RegisterAwsRetry(py::module_& m);       // AWS SDK retry modes (botocore standard/adaptive)
void RegisterHedge(py::module_& m);          // hedging state (delay quantile, budget) for callables
void RegisterConfigSchemas(py::module_& m);  // config field tables (config_codec.cc)

}  // namespace rlab::bindings

PYBIND11_MODULE(_core, m) {
  using namespace rlab::bindings;
  m.doc() = "reliability-lab native core (private; use the reliability_lab package)";
  RegisterErrors(m);
  RegisterCore(m);
  RegisterBackoff(m);
  RegisterRetry(m);
  RegisterRetryBudget(m);
  RegisterBreaker(m);
  RegisterBulkhead(m);
  RegisterThrottle(m);
  RegisterScenario(m);
  RegisterSim(m);
  RegisterLive(m);
  RegisterOutlier(m);
  RegisterLoadBalancer(m);
  RegisterConcurrencyLimit(m);
  RegisterRateLimit(m);
  RegisterAwsRetry(m);
  RegisterHedge(m);
  RegisterConfigSchemas(m);
}
