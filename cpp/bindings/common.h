#ifndef RLAB_BINDINGS_COMMON_H_
#define RLAB_BINDINGS_COMMON_H_

#include <pybind11/pybind11.h>

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rlab::bindings {

namespace py = pybind11;

// The one place where a Status becomes a Python exception: InvalidArgument and OutOfRange raise
// ValueError, FailedPrecondition raises RuntimeError, anything else RuntimeError too.
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
