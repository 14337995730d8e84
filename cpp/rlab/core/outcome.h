#ifndef RLAB_CORE_OUTCOME_H_
#define RLAB_CORE_OUTCOME_H_

#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace rlab {

// What one attempt at a dependency call came to. Rejections by a local policy (breaker, bulkhead,
// throttle) are outcomes too, because the retry loop must tell them apart from dependency faults.
enum class OutcomeKind : uint8_t {
  kSuccess = 0,
  kTimeout,              // the attempt's timeout fired before an answer
  kConnectionReset,      // the connection broke mid-call
  kHttpStatus,           // the dependency answered with a non-2xx status (see Outcome::http_status)
  kError,                // any other failure (e.g. an exception from a Python callable)
  kCancelled,            // the caller cancelled: never retried, never a breaker failure
  kDeadlineExceeded,     // the caller's own deadline passed: never retried
  kBreakerOpen,          // rejected locally: the breaker is open
  kBreakerHalfOpenFull,  // rejected locally: half-open and every probe slot is taken
  kBulkheadFull,         // rejected locally: the bulkhead has no slot and no waiting room
  kThrottled,            // rejected locally by the adaptive throttle
};
inline constexpr int kNumOutcomeKinds = 11;

// The name of an outcome kind, e.g. "connection_reset"; a fixed set usable as a metric label.
std::string_view OutcomeKindName(OutcomeKind kind);
// Parses a name produced by OutcomeKindName.
absl::StatusOr<OutcomeKind> ParseOutcomeKind(std::string_view name);

// One attempt's outcome: a kind, the HTTP status for kHttpStatus, and an optional Retry-After hint.
struct Outcome {
  OutcomeKind kind = OutcomeKind::kSuccess;
  int16_t http_status = 0;
  int64_t retry_after_ns = -1;  // < 0: no hint

  static constexpr Outcome Success() { return {}; }
  static constexpr Outcome Of(OutcomeKind kind) { return {kind, 0, -1}; }
  // A status answer; 2xx counts as success.
  static constexpr Outcome Http(int status, int64_t retry_after_ns = -1) {
    if (status >= 200 && status < 300)
      return {OutcomeKind::kSuccess, static_cast<int16_t>(status), -1};
    return {OutcomeKind::kHttpStatus, static_cast<int16_t>(status), retry_after_ns};
  }

  bool ok() const { return kind == OutcomeKind::kSuccess; }
  // True for the local rejections (breaker, bulkhead, throttle): the dependency was not called.
  bool IsLocalRejection() const {
    return kind == OutcomeKind::kBreakerOpen || kind == OutcomeKind::kBreakerHalfOpenFull ||
           kind == OutcomeKind::kBulkheadFull || kind == OutcomeKind::kThrottled;
  }
  // True for cancellation and the caller's own deadline: the caller gave up, the dependency is
  // not to blame.
  bool IsCallerGaveUp() const {
    return kind == OutcomeKind::kCancelled || kind == OutcomeKind::kDeadlineExceeded;
  }
  // A short, bounded label: the kind name, or "http_<status>" for statuses.
  std::string Label() const;

  friend bool operator==(const Outcome&, const Outcome&) = default;
};

// Whose doing an outcome is: the one classification table. The engines' breaker accounting
// (BreakerResultOf), the retry loop's always-permanent outcomes and the Python policies' handling
// of exceptions all derive from ClassifyOutcome, so they cannot disagree.
enum class OutcomeClass : uint8_t {
  kSuccess = 0,      // the dependency did the work (2xx)
  kDependencyFault,  // timeout, connection reset, generic error, HTTP 408, 429 and 5xx
  kCallerFault,      // any other non-2xx status (1xx, 3xx, 4xx): the dependency answered
  kCallerGaveUp,     // cancellation or the caller's own deadline
  kLocalRejection,   // a local policy refused: the dependency was not called
};
inline constexpr int kNumOutcomeClasses = 5;

// "success", "dependency_fault", "caller_fault", "caller_gave_up" or "local_rejection".
std::string_view OutcomeClassName(OutcomeClass c);

// The table. HTTP 408 (the server timed out waiting) and 429 (the server is shedding load) are
// the dependency's trouble, not a malformed request, so they sit with the 5xx statuses.
constexpr OutcomeClass ClassifyOutcome(const Outcome& outcome) {
  switch (outcome.kind) {
    case OutcomeKind::kSuccess:
      return OutcomeClass::kSuccess;
    case OutcomeKind::kTimeout:
    case OutcomeKind::kConnectionReset:
    case OutcomeKind::kError:
      return OutcomeClass::kDependencyFault;
    case OutcomeKind::kHttpStatus:
      return outcome.http_status == 408 || outcome.http_status == 429 || outcome.http_status >= 500
                 ? OutcomeClass::kDependencyFault
                 : OutcomeClass::kCallerFault;
    case OutcomeKind::kCancelled:
    case OutcomeKind::kDeadlineExceeded:
      return OutcomeClass::kCallerGaveUp;
    case OutcomeKind::kBreakerOpen:
    case OutcomeKind::kBreakerHalfOpenFull:
    case OutcomeKind::kBulkheadFull:
    case OutcomeKind::kThrottled:
      return OutcomeClass::kLocalRejection;
  }
  return OutcomeClass::kDependencyFault;
}

// A set of outcomes: kinds, plus individual HTTP statuses for kHttpStatus.
// Local rejections, cancellation and the caller's deadline can be added but retry ignores them:
// they are permanent by definition.
class OutcomeSet {
 public:
  OutcomeSet() = default;

  // The retry defaults: timeout, connection reset, 429, 500, 502, 503, 504.
  static OutcomeSet DefaultRetryable();
  // Parses names such as "timeout", "connection_reset", "error", "429", "5xx", "4xx".
  static absl::StatusOr<OutcomeSet> Parse(std::string_view field,
                                          const std::vector<std::string>& names);

  OutcomeSet& AddKind(OutcomeKind kind);
  // Adds one HTTP status in [100, 599].
  OutcomeSet& AddStatus(int status);
  bool Contains(const Outcome& outcome) const;
  // The set's members as names, statuses in ascending order.
  std::vector<std::string> Names() const;

 private:
  std::bitset<kNumOutcomeKinds> kinds_;
  std::bitset<600> statuses_;
};

}  // namespace rlab

#endif  // RLAB_CORE_OUTCOME_H_
