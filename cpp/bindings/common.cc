#include "common.h"

#include <string>

#include "rlab/core/clock.h"
#include "rlab/core/validate.h"

namespace rlab::bindings {

void ThrowIfError(const absl::Status& status) {
  if (status.ok()) return;
  const std::string message(status.message());
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      throw py::value_error(message);
    default:
      throw std::runtime_error(message);
  }
}

int64_t DurationArgNs(std::string_view name, double seconds, bool allow_zero) {
  ThrowIfError(CheckDuration(name, seconds, allow_zero));
  return SecondsToNs(seconds);
}

}  // namespace rlab::bindings
