#include "rlab/policy/bulkhead.h"

#include "rlab/core/clock.h"
#include "rlab/core/schema.h"
#include "rlab/core/validate.h"

namespace rlab {
namespace {}  // namespace

RLAB_TABLE(BulkheadSchema, BulkheadConfig, "BulkheadConfig", "", nullptr,
           RLAB_INT(max_concurrent, 1, kMaxCount, "calls", "calls running at once"),
           RLAB_INT(max_waiting, 0, kMaxCount, "calls", "callers allowed to wait for a slot"),
           schema::OrNone(RLAB_SECONDS(max_wait, 0, kMaxS, CC, "a waiter's longest wait"), -1));
absl::Status Validate(const BulkheadConfig& c) { return ValidateFields(BulkheadSchema(), c); }

std::string_view BulkheadDecisionName(BulkheadDecision decision) {
  switch (decision) {
    case BulkheadDecision::kAdmitted:
      return "admitted";
    case BulkheadDecision::kMustWait:
      return "must_wait";
    case BulkheadDecision::kRejected:
      return "rejected";
  }
  return "unknown";
}

std::string_view BulkheadReleaseName(BulkheadRelease release) {
  switch (release) {
    case BulkheadRelease::kFreed:
      return "freed";
    case BulkheadRelease::kHandedOff:
      return "handed_off";
    case BulkheadRelease::kNotHeld:
      return "not_held";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<Bulkhead>> Bulkhead::Create(const BulkheadConfig& config) {
  absl::Status s = Validate(config);
  if (!s.ok()) return s;
  return std::make_unique<Bulkhead>(config);
}

BulkheadDecision Bulkhead::TryAcquire() {
  MutexLock lock(&mu_);
  // No barging: a free slot with waiters cannot exist (Release hands it over), so checking the
  // slots first never lets a newcomer overtake the queue.
  if (stats_.active < config_.max_concurrent) {
    ++stats_.active;
    ++stats_.admitted;
    return BulkheadDecision::kAdmitted;
  }
  if (stats_.waiting < config_.max_waiting) {
    ++stats_.waiting;
    return BulkheadDecision::kMustWait;
  }
  ++stats_.rejected;
  return BulkheadDecision::kRejected;
}

BulkheadRelease Bulkhead::Release() {
  MutexLock lock(&mu_);
  if (stats_.active == 0) return BulkheadRelease::kNotHeld;
  if (stats_.waiting > 0) {
    --stats_.waiting;
    ++stats_.admitted;
    return BulkheadRelease::kHandedOff;
  }
  --stats_.active;
  return BulkheadRelease::kFreed;
}

bool Bulkhead::CancelWait(bool timed_out) {
  MutexLock lock(&mu_);
  if (stats_.waiting == 0) return false;
  --stats_.waiting;
  ++(timed_out ? stats_.timed_out : stats_.abandoned);
  return true;
}

BulkheadStats Bulkhead::Stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

}  // namespace rlab
