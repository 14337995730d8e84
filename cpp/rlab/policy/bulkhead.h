#ifndef RLAB_POLICY_BULKHEAD_H_
#define RLAB_POLICY_BULKHEAD_H_

// Bulkhead admission as a pure state machine: bounded concurrency plus a bounded waiting room.
// It decides and counts; it never blocks. Who waits, in which order, and for how long is the
// engine's job (the live engine's BlockingBulkhead blocks threads in FIFO order; the simulated
// engine keeps a queue of events), so the same admission rules serve both engines.

#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rlab/core/mutex.h"
#include "rlab/core/schema.h"

namespace rlab {

// Parameters of a bulkhead.
struct BulkheadConfig {
  // Calls running at once, in [1, 1e6].
  int64_t max_concurrent = 10;
  // Callers allowed to wait for a slot, in [0, 1e6]; 0 rejects at once when all slots are busy.
  int64_t max_waiting = 0;
  // How long a waiter waits before giving up, in [0, 1e6] seconds; < 0 waits without limit.
  // The state machine does not use it: it is here so that every engine reads the same config.
  int64_t max_wait_ns = -1;
};

// Checks every field, naming the Python parameter (max_concurrent, max_waiting, max_wait).
absl::Status Validate(const BulkheadConfig& config);
// The field table of BulkheadConfig (Python: rl.BulkheadConfig).
const ConfigSchema<BulkheadConfig>& BulkheadSchema();

// The answer to TryAcquire.
enum class BulkheadDecision : uint8_t {
  kAdmitted = 0,  // a slot is the caller's; Release it when done
  kMustWait = 1,  // a waiting place is reserved: wait for a hand-off, or CancelWait
  kRejected = 2,  // no slot and no waiting room: reject at once (reason bulkhead_full)
};

// "admitted", "must_wait" or "rejected".
std::string_view BulkheadDecisionName(BulkheadDecision decision);

// What Release did with the slot.
enum class BulkheadRelease : uint8_t {
  kFreed = 0,      // nobody was waiting: the slot is free
  kHandedOff = 1,  // the slot now belongs to the oldest waiter: the engine must admit it
  kNotHeld = 2,    // no slot was held: a caller bug, nothing changed
};

// "freed", "handed_off" or "not_held".
std::string_view BulkheadReleaseName(BulkheadRelease release);

// Gauges and lifetime counters of a bulkhead.
struct BulkheadStats {
  int64_t active = 0;     // slots held now
  int64_t waiting = 0;    // waiting places reserved now
  int64_t admitted = 0;   // admissions, at once or after waiting
  int64_t rejected = 0;   // immediate rejections (full)
  int64_t timed_out = 0;  // waits given up after max_wait
  int64_t abandoned = 0;  // waits given up for another reason (caller cancelled, interrupt)
};

// Bulkhead admission. Invariants: active <= max_concurrent, waiting <= max_waiting, and
// waiting > 0 only while every slot is busy (a released slot goes to a waiter before anyone new,
// so newcomers never overtake the queue). Thread-safe.
class Bulkhead {
 public:
  // `config` must have passed Validate.
  explicit Bulkhead(const BulkheadConfig& config) : config_(config) {}
  // Validates `config` first.
  static absl::StatusOr<std::unique_ptr<Bulkhead>> Create(const BulkheadConfig& config);

  Bulkhead(const Bulkhead&) = delete;
  Bulkhead& operator=(const Bulkhead&) = delete;

  // Takes a free slot, else reserves a waiting place, else rejects.
  BulkheadDecision TryAcquire();
  // Gives a slot back. With waiters, the slot passes straight to one of them (kHandedOff): the
  // engine picks its oldest waiter and lets it run; the active count does not change.
  BulkheadRelease Release();
  // A waiter gives up its place before a hand-off reached it: after max_wait (`timed_out`), or
  // for another reason. Returns false if no place was reserved (a caller bug).
  bool CancelWait(bool timed_out = true);

  // A consistent snapshot of gauges and counters.
  BulkheadStats Stats() const;
  // The configuration it was built with.
  const BulkheadConfig& config() const { return config_; }

 private:
  const BulkheadConfig config_;
  mutable Mutex mu_;
  BulkheadStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rlab

#endif  // RLAB_POLICY_BULKHEAD_H_
