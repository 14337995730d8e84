// Retry budgets: gRPC A6's token bucket and the ratio budget. Both share the RetryBudget base, so
// other bindings (the retry loop, the engines) can accept either as std::shared_ptr<RetryBudget>.
#include <pybind11/pybind11.h>

#include <cmath>
#include <limits>
#include <memory>

#include "common.h"
#include "config_codec.h"
#include "rlab/core/clock.h"
#include "rlab/core/validate.h"
#include "rlab/policy/retry_budget.h"

namespace rlab::bindings {
namespace {

// Nanoseconds to seconds by division, which is correctly rounded: 60e9 ns gives exactly 60.0
// (NsToSeconds multiplies by 1e-9 and gives 60.00000000000001).
double ExactSeconds(int64_t ns) { return static_cast<double>(ns) / 1e9; }

// `now` in seconds on the caller's clock, as nanoseconds; any finite value is a valid instant.
int64_t NowArgNs(double now) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  ThrowIfError(CheckRange("now", now, -kInf, kInf));
  return SecondsToNs(now);
}

}  // namespace

void RegisterRetryBudget(py::module_& m) {
  py::class_<RetryBudget, std::shared_ptr<RetryBudget>>(
      m, "RetryBudget", "A cap on retries shared by many calls (abstract; see the subclasses).")
      .def(
          "on_request", [](RetryBudget& b, double now) { b.OnRequest(NowArgNs(now)); },
          py::arg("now"), "A call's first attempt is about to be sent at `now` (seconds).")
      .def(
          "try_acquire_retry",
          [](RetryBudget& b, double now) { return b.TryAcquireRetry(NowArgNs(now)); },
          py::arg("now"), "Asks to send one retry at `now`; True allows (and counts) it.")
      .def(
          "on_outcome",
          [](RetryBudget& b, double now, bool success, bool retryable_failure) {
            b.OnOutcome(NowArgNs(now), success, retryable_failure);
          },
          py::arg("now"), py::arg("success"), py::arg("retryable_failure"),
          "An attempt ended: a success, a retryable failure, or neither.");

  py::class_<TokenBucketBudgetSnapshot>(m, "TokenBucketSnapshot",
                                        "The level and counters of a token-bucket budget.")
      .def_readonly("milli_tokens", &TokenBucketBudgetSnapshot::milli_tokens)
      .def_readonly("retries_allowed", &TokenBucketBudgetSnapshot::retries_allowed)
      .def_readonly("retries_refused", &TokenBucketBudgetSnapshot::retries_refused);

  py::class_<TokenBucketBudget, RetryBudget, std::shared_ptr<TokenBucketBudget>>(
      m, "TokenBucketBudget", "gRPC retry throttling (gRFC A6), in integer thousandths of a token.")
      .def(py::init([](const py::dict& config) {
             return std::make_shared<TokenBucketBudget>(ReadValid(config, "", TokenBucketSchema()));
           }),
           py::arg("config"))
      .def_property_readonly("tokens", &TokenBucketBudget::tokens)
      .def_property_readonly("milli_tokens", &TokenBucketBudget::milli_tokens)
      .def_property_readonly("max_milli_tokens", &TokenBucketBudget::max_milli_tokens)
      .def_property_readonly("milli_token_ratio", &TokenBucketBudget::milli_token_ratio)
      .def_property_readonly("threshold_milli_tokens", &TokenBucketBudget::threshold_milli_tokens)
      .def("snapshot", &TokenBucketBudget::Snapshot,
           "A consistent snapshot of level and counters.");

  py::class_<RatioBudgetSnapshot>(m, "RatioBudgetSnapshot",
                                  "The window counts of a ratio budget at one instant.")
      .def_readonly("requests", &RatioBudgetSnapshot::requests)
      .def_readonly("retries", &RatioBudgetSnapshot::retries)
      .def_readonly("allowance", &RatioBudgetSnapshot::allowance)
      .def_readonly("retries_refused", &RatioBudgetSnapshot::retries_refused);

  py::class_<RatioBudget, RetryBudget, std::shared_ptr<RatioBudget>>(
      m, "RatioBudget",
      "Retries <= ratio x requests + min_retries_per_second x window over a sliding window.")
      .def(py::init([](const py::dict& config) {
             return std::make_shared<RatioBudget>(ReadValid(config, "", RatioBudgetSchema()));
           }),
           py::arg("config"))
      .def_property_readonly("floor_retries", &RatioBudget::floor_retries)
      .def_property_readonly("ratio", [](const RatioBudget& b) { return b.config().ratio; })
      .def_property_readonly(
          "window", [](const RatioBudget& b) { return ExactSeconds(b.config().window_ns); })
      .def_property_readonly("min_retries_per_second",
                             [](const RatioBudget& b) { return b.config().min_retries_per_s; })
      .def_property_readonly("buckets", [](const RatioBudget& b) { return b.config().num_buckets; })
      .def(
          "snapshot", [](RatioBudget& b, double now) { return b.Snapshot(NowArgNs(now)); },
          py::arg("now"), "Window counts as of `now` (seconds).");
}

}  // namespace rlab::bindings
