// The retry decision loop, so that Python (the Retry wrapper, tests, notebooks) drives the very
// state machine the engines use. A Python retry budget (any object with on_request,
// try_acquire_retry and on_outcome taking seconds) is adapted to the C++ RetryBudget interface;
// a natively bound RetryBudget is used directly.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <charconv>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "common.h"
#include "config_codec.h"
#include "rlab/core/clock.h"
#include "rlab/core/outcome.h"
#include "rlab/core/validate.h"
#include "rlab/policy/backoff.h"
#include "rlab/policy/retry.h"
#include "rlab/policy/retry_budget.h"

namespace rlab::bindings {
namespace {

// Adapts a Python budget object. Called only from RetryLoop methods that Python invoked, so the
// GIL is held; the loop holds no lock, so calling back into Python is safe.
class PyRetryBudget final : public RetryBudget {
 public:
  explicit PyRetryBudget(const py::object& budget)
      : on_request_(budget.attr("on_request")),
        try_acquire_retry_(budget.attr("try_acquire_retry")),
        on_outcome_(budget.attr("on_outcome")) {}

  void OnRequest(int64_t now_ns) override { on_request_(NsToSeconds(now_ns)); }
  bool TryAcquireRetry(int64_t now_ns) override {
    const py::object allowed = try_acquire_retry_(NsToSeconds(now_ns));
    const int truth = PyObject_IsTrue(allowed.ptr());
    if (truth < 0) throw py::error_already_set();
    return truth != 0;
  }
  void OnOutcome(int64_t now_ns, bool success, bool retryable_failure) override {
    on_outcome_(NsToSeconds(now_ns), success, retryable_failure);
  }

 private:
  py::object on_request_;
  py::object try_acquire_retry_;
  py::object on_outcome_;
};

// A RetryLoop plus the Python objects it points into, kept alive as long as the loop.
class PyRetryLoop {
 public:
  PyRetryLoop(py::object config, py::object budget, std::optional<int64_t> deadline_ns)
      : config_ref_(std::move(config)),
        budget_ref_(std::move(budget)),
        loop_(config_ref_.cast<const RetryConfig&>(), ResolveBudget(),
              deadline_ns.value_or(kNoDeadline)) {}

  RetryLoop& loop() { return loop_; }
  const RetryLoop& loop() const { return loop_; }

 private:
  // Runs in the member initialiser list, before loop_ is built (declaration order). Prefers a
  // native budget (the object itself, or its `native` attribute, e.g. reliability_lab.budget's
  // wrappers): no Python round trip per decision. Anything else goes through the adapter.
  RetryBudget* ResolveBudget() {
    if (budget_ref_.is_none()) return nullptr;
    if (RetryBudget* native = TryCastBudget(budget_ref_)) return native;
    if (py::hasattr(budget_ref_, "native")) {
      native_ref_ = budget_ref_.attr("native");
      if (RetryBudget* native = TryCastBudget(native_ref_)) return native;
      native_ref_ = py::none();
    }
    adapter_ = std::make_unique<PyRetryBudget>(budget_ref_);
    return adapter_.get();
  }

  static RetryBudget* TryCastBudget(const py::object& obj) {
    if (obj.is_none()) return nullptr;
    try {
      return obj.cast<RetryBudget*>();
    } catch (const py::cast_error&) {
      return nullptr;
    }
  }

  py::object config_ref_;
  py::object budget_ref_;
  py::object native_ref_;  // keeps a budget's native object alive for the loop's lifetime
  std::unique_ptr<PyRetryBudget> adapter_;
  RetryLoop loop_;
};

// Parses an outcome label: a kind name ("timeout", "success", ...), "http_<status>" or a bare
// status ("503"). 2xx statuses are successes.
Outcome ParseOutcome(std::string_view label, int64_t retry_after_ns) {
  std::string_view digits = label;
  if (digits.substr(0, 5) == "http_") digits.remove_prefix(5);
  int status = 0;
  const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), status);
  if (ec == std::errc() && ptr == digits.data() + digits.size() && !digits.empty()) {
    ThrowIfError(CheckIntRange("http status", status, 100, 599));
    return Outcome::Http(status, retry_after_ns);
  }
  absl::StatusOr<OutcomeKind> kind = ParseOutcomeKind(label);
  if (!kind.ok() || *kind == OutcomeKind::kHttpStatus) {
    throw py::value_error(absl::StrFormat(
        "outcome must be an outcome kind name or 'http_<status>', got '%s'", std::string(label)));
  }
  Outcome outcome = Outcome::Of(*kind);
  if (!outcome.ok()) outcome.retry_after_ns = retry_after_ns;
  return outcome;
}

py::object ReasonOrNone(bool done, RetryEndReason reason) {
  if (!done) return py::none();
  return py::str(std::string(RetryEndReasonName(reason)));
}

}  // namespace

void RegisterRetry(py::module_& m) {
  py::class_<RetryConfig>(m, "RetryConfig", "What to retry and how long to wait (validated).")
      .def(py::init([](const py::dict& d) { return ReadValid(d, "", RetrySchema()); }),
           py::arg("config"), "From its dict form (rl.RetryConfig's fields), read by the table.")
      .def_property_readonly("max_attempts", [](const RetryConfig& c) { return c.max_attempts; })
      .def_property_readonly("backoff", [](const RetryConfig& c) { return c.backoff; })
      .def_property_readonly("retry_on", [](const RetryConfig& c) { return c.retryable.Names(); })
      .def_property_readonly("max_retry_after",
                             [](const RetryConfig& c) { return NsToSeconds(c.max_retry_after_ns); })
      .def_property_readonly("max_retry_after_ns",
                             [](const RetryConfig& c) { return c.max_retry_after_ns; })
      .def(
          "is_retryable",
          [](const RetryConfig& c, const std::string& outcome) {
            return c.retryable.Contains(ParseOutcome(outcome, -1));
          },
          py::arg("outcome"), "Whether the outcome label is in retry_on.");

  py::class_<RetryStep>(m, "RetryStep", "The loop's answer: retry after a delay, or done.")
      .def_property_readonly("retry", &RetryStep::retry)
      .def_property_readonly("done", &RetryStep::done)
      .def_property_readonly("delay_ns", [](const RetryStep& s) { return s.delay_ns; })
      .def_property_readonly("delay", [](const RetryStep& s) { return NsToSeconds(s.delay_ns); })
      .def_property_readonly("reason",
                             [](const RetryStep& s) { return ReasonOrNone(s.done(), s.reason); })
      .def("__eq__", [](const RetryStep& a, const RetryStep& b) { return a == b; })
      .def("__repr__", [](const RetryStep& s) {
        if (s.retry()) return absl::StrFormat("RetryStep(retry, delay_ns=%d)", s.delay_ns);
        return absl::StrFormat("RetryStep(done, reason='%s')",
                               std::string(RetryEndReasonName(s.reason)));
      });

  py::class_<PyRetryLoop>(m, "RetryLoop",
                          "The retry decision for one call: on_attempt_start before each attempt, "
                          "on_attempt_end after it, while the step says retry.")
      .def(py::init([](py::object config, py::object budget, std::optional<int64_t> deadline_ns) {
             if (!py::isinstance<RetryConfig>(config)) {
               throw py::type_error("RetryLoop: config must be a RetryConfig");
             }
             return std::make_unique<PyRetryLoop>(std::move(config), std::move(budget),
                                                  deadline_ns);
           }),
           py::arg("config"), py::arg("budget") = py::none(), py::arg("deadline_ns") = py::none(),
           "`config` is a RetryConfig; `budget` None, a native RetryBudget or any object with "
           "on_request(now), try_acquire_retry(now) and on_outcome(now, success, "
           "retryable_failure) in seconds; `deadline_ns` absolute or None.")
      .def(
          "on_attempt_start",
          [](PyRetryLoop& l, int64_t now_ns) { return l.loop().OnAttemptStart(now_ns); },
          py::arg("now_ns"),
          "An attempt is about to start; False (ending the loop with 'deadline') if the deadline "
          "has been reached or the loop has ended.")
      .def(
          "on_attempt_end",
          [](PyRetryLoop& l, const std::string& outcome, int64_t now_ns, double u,
             int64_t retry_after_ns, std::optional<bool> retryable) {
            ThrowIfError(CheckRange("u", u, 0.0, 1.0, Bound::kClosed, Bound::kOpen));
            const Outcome o = ParseOutcome(outcome, retry_after_ns < 0 ? -1 : retry_after_ns);
            if (retryable.has_value()) return l.loop().OnAttemptEnd(o, *retryable, now_ns, u);
            return l.loop().OnAttemptEnd(o, now_ns, u);
          },
          py::arg("outcome"), py::arg("now_ns"), py::arg("u"), py::arg("retry_after_ns") = -1,
          py::arg("retryable") = py::none(),
          "The attempt ended with `outcome` (a kind name, 'http_503' or '503'); `u` in [0, 1) "
          "draws the jitter; `retryable` overrides retry_on (never for permanent kinds).")
      .def_property_readonly("attempts", [](const PyRetryLoop& l) { return l.loop().attempts(); })
      .def_property_readonly("retries", [](const PyRetryLoop& l) { return l.loop().retries(); })
      .def_property_readonly("done", [](const PyRetryLoop& l) { return l.loop().done(); })
      .def_property_readonly(
          "end_reason",
          [](const PyRetryLoop& l) { return ReasonOrNone(l.loop().done(), l.loop().end_reason()); })
      .def_property_readonly("deadline_ns",
                             [](const PyRetryLoop& l) -> std::optional<int64_t> {
                               if (l.loop().deadline_ns() == kNoDeadline) return std::nullopt;
                               return l.loop().deadline_ns();
                             })
      .def(
          "remaining_ns",
          [](const PyRetryLoop& l, int64_t now_ns) -> std::optional<int64_t> {
            if (l.loop().deadline_ns() == kNoDeadline) return std::nullopt;
            return l.loop().RemainingNs(now_ns);
          },
          py::arg("now_ns"), "Time left before the deadline (None without one).");

  m.def(
      "retry_end_reasons",
      []() {
        std::vector<std::string> names;
        for (std::string_view name : RetryEndReasonNames()) names.emplace_back(name);
        return names;
      },
      "The end reason names (metric labels), in enum order.");
}

}  // namespace rlab::bindings
