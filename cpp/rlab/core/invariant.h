#ifndef RLAB_CORE_INVARIANT_H_
#define RLAB_CORE_INVARIANT_H_

// Run-time checks of the engines' core invariants (conservation of orders, statuses only moving
// forward, breaker counters). On in debug builds (NDEBUG unset) and wherever RLAB_INVARIANTS is
// defined: CMake defines it for the sanitizer builds (RLAB_SANITIZE) and with
// -DRLAB_INVARIANTS=ON. Off otherwise, where the condition is not evaluated at all.
//
// A violated invariant is an engine bug, never a user error: the process prints where and why
// to stderr and aborts, so that a test or a sanitizer run fails at the first wrong step rather
// than at a wrong total later.

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_format.h"

namespace rlab {

#if !defined(NDEBUG) || defined(RLAB_INVARIANTS)
inline constexpr bool kInvariantsOn = true;
#else
inline constexpr bool kInvariantsOn = false;
#endif

namespace internal {

[[noreturn]] inline void InvariantFailed(const char* file, int line, const char* condition,
                                         const std::string& message) {
  std::fprintf(stderr, "%s:%d: reliability-lab invariant violated: %s: %s\n", file, line, condition,
               message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace internal
}  // namespace rlab

// RLAB_INVARIANT(condition, format, args...): when invariants are on, aborts with the
// absl::StrFormat message unless `condition` holds. The message is formatted only on failure.
#if !defined(NDEBUG) || defined(RLAB_INVARIANTS)
#define RLAB_INVARIANT(condition, ...)                                   \
  do {                                                                   \
    if (!(condition)) {                                                  \
      ::rlab::internal::InvariantFailed(__FILE__, __LINE__, #condition,  \
                                        ::absl::StrFormat(__VA_ARGS__)); \
    }                                                                    \
  } while (false)
#else
// Never evaluated, but still compiled: names, types and the format stay checked in every build.
#define RLAB_INVARIANT(condition, ...)                                   \
  do {                                                                   \
    if (false && !(condition)) {                                         \
      ::rlab::internal::InvariantFailed(__FILE__, __LINE__, #condition,  \
                                        ::absl::StrFormat(__VA_ARGS__)); \
    }                                                                    \
  } while (false)
#endif

#endif  // RLAB_CORE_INVARIANT_H_
