#include "common.h"

#include <string>

#include "rlab/core/clock.h"
#include "rlab/core/validate.h"

namespace rlab::bindings {

int64_t DurationArgNs(std::string_view name, double seconds, bool allow_zero) {
  ThrowIfError(CheckDuration(name, seconds, allow_zero));
  return SecondsToNs(seconds);
}

}  // namespace rlab::bindings
