#ifndef RLAB_BINDINGS_COMMON_H_
#define RLAB_BINDINGS_COMMON_H_

#include <pybind11/pybind11.h>

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rlab::bindings {

namespace py = pybind11;

// The lab's exception classes (reliability_lab.errors, and LabClosedError of reliability_lab.live),
// created natively by RegisterErrors, which runs first; strong references for the process's
// lifetime.
struct ErrorTypes {
  PyObject* base;  // ReliabilityLabError
  PyObject* rejected;
  PyObject* breaker_open;
  PyObject* breaker_half_open_full;
  PyObject* bulkhead_full;
  PyObject* bulkhead_closed;
  PyObject* throttled;
  PyObject* cancelled;
  PyObject* retry_error;
  PyObject* retry_exhausted;
  PyObject* deadline_exceeded;
  PyObject* retry_budget_exhausted;
  PyObject* lab_closed;       // LabClosedError
  PyObject* config_type;      // ConfigTypeError: a TypeError and a ValueError
  PyObject* cancelled_types;  // tuple: CANCELLED_TYPES
  PyObject* timeout_types;    // tuple: TIMEOUT_TYPES
};
const ErrorTypes& Errors();

// The one Status -> exception mapping: InvalidArgument and OutOfRange raise ValueError, NotFound
// KeyError, Unavailable (an engine not accepting work) LabClosedError, anything else
// RuntimeError. Sets the Python error and returns nullptr (for raw CPython methods).
PyObject* SetErrorFromStatus(const absl::Status& status);

// Raises ConfigTypeError (a configuration value of the wrong type) with `message`.
[[noreturn]] void ThrowConfigType(const std::string& message);

// The same mapping for pybind11 code: raises (as a C++ exception) unless `status` is OK.
void ThrowIfError(const absl::Status& status);

// Unwraps a StatusOr, raising as ThrowIfError does.
template <typename T>
T ValueOrThrow(absl::StatusOr<T> v) {
  ThrowIfError(v.status());
  return *std::move(v);
}

// Seconds from Python to nanoseconds, raising ValueError naming `name` unless finite and in
// [0, 1e6] (or (0, 1e6] when !allow_zero).
int64_t DurationArgNs(std::string_view name, double seconds, bool allow_zero);

}  // namespace rlab::bindings

#endif  // RLAB_BINDINGS_COMMON_H_
