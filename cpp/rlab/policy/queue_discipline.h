#ifndef RLAB_POLICY_QUEUE_DISCIPLINE_H_
#define RLAB_POLICY_QUEUE_DISCIPLINE_H_

// Queue disciplines for a waiting line of requests (the service's job queue, a capacity-limited
// dependency's line): which waiting item a free server takes next, and which it drops instead
// of serving. Pure: the engines own the queue and the clock and pass the times in.
//
// - FIFO: the oldest item first (the lab's behaviour without a discipline).
// - LIFO: the newest item first.
// - Adaptive LIFO (B. Maurer, "Fail at Scale", ACM Queue 13(8), 2015, "Adaptive LIFO"): FIFO
//   while the line is short, LIFO once a queue is forming, so that under congestion the freshest
//   requests, whose callers are still waiting, are served first. "Forming" is measured as the
//   oldest item having waited at least `lifo_threshold_ns`.
// - CoDel (K. Nichols and V. Jacobson, "Controlling Queue Delay", ACM Queue 10(5), 2012; RFC 8289):
//   FIFO, and at dequeue the item is dropped when the sojourn times stayed at or above `target`
//   for at least `interval`; while in the dropping state the next drop comes interval/sqrt(count)
//   after the previous one. For a request server a drop fails the request at dequeue, before
//   any work is done for it.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "rlab/core/schema.h"

namespace rlab {

// Parameters of a queue discipline (Python: rl.QueueDiscipline).
struct QueueDisciplineConfig {
  enum class Kind : uint8_t { kFifo = 0, kLifo = 1, kAdaptiveLifo = 2, kCodel = 3 };
  Kind kind = Kind::kFifo;
  // CoDel's TARGET and INTERVAL (RFC 8289 §4.2-4.3: 5 ms and 100 ms for the Internet).
  int64_t codel_target_ns = 5'000'000;
  int64_t codel_interval_ns = 100'000'000;
  // Adaptive LIFO: the line is congested (served LIFO) while its oldest item has waited at least
  // this long.
  int64_t lifo_threshold_ns = 5'000'000;
  bool operator==(const QueueDisciplineConfig&) const = default;
};

// "fifo", "lifo", "adaptive_lifo", "codel".
std::string_view QueueDisciplineKindName(QueueDisciplineConfig::Kind kind);

// Checks every field, naming the Python parameter (codel_target, codel_interval, lifo_threshold).
absl::Status Validate(const QueueDisciplineConfig& config);
// The field table of QueueDisciplineConfig (Python: rl.QueueDiscipline).
const ConfigSchema<QueueDisciplineConfig>& QueueDisciplineSchema();

// One waiting line's discipline. Not thread-safe: the owner of the line calls it under the
// line's lock (live engine) or from the event loop (sim engine).
//
// Protocol at dequeue: the owner asks Next() which end to take, removes that item and, unless
// the discipline is FIFO/LIFO-only (`drops()` false), calls OnDequeue with the item's sojourn
// time and the items left. kDrop means "fail this item and take the next one": the owner then
// repeats with the next item, or calls OnEmpty when the line ran dry. kServe ends the dequeue.
class QueueDiscipline {
 public:
  enum class End : uint8_t { kFront = 0, kBack = 1 };  // front: the oldest item
  enum class Verdict : uint8_t { kServe = 0, kDrop = 1 };

  explicit QueueDiscipline(const QueueDisciplineConfig& config) : config_(config) {}

  const QueueDisciplineConfig& config() const { return config_; }
  // Whether the discipline may drop items (CoDel); only then does the owner call OnDequeue.
  bool drops() const { return config_.kind == QueueDisciplineConfig::Kind::kCodel; }
  // Whether it behaves exactly as a plain FIFO queue (the owner may skip it altogether).
  bool fifo() const { return config_.kind == QueueDisciplineConfig::Kind::kFifo; }

  // Which item a free server takes at `now_ns`, given when the oldest waiting item was queued.
  End Next(int64_t now_ns, int64_t oldest_enqueued_ns) const;

  // CoDel's decision for the item just taken (RFC 8289 §5.5-5.7, `dequeue` and `dodequeue`,
  // unrolled one item at a time): `sojourn_ns` is how long it waited, `remaining` how many
  // items still wait behind it.
  Verdict OnDequeue(int64_t now_ns, int64_t sojourn_ns, size_t remaining);
  // The item dropped last left the line empty (RFC 8289: dodequeue found no packet).
  void OnEmpty(int64_t now_ns);

  // CoDel's state, for tests and time series.
  bool dropping() const { return dropping_; }
  uint32_t count() const { return count_; }
  int64_t drop_next_ns() const { return drop_next_ns_; }
  int64_t drops_total() const { return drops_total_; }

 private:
  // After which step of RFC 8289's dequeue() the next item is looked at.
  enum class Step : uint8_t {
    kFresh = 0,       // a new dequeue() call
    kAfterEntry = 1,  // the drop that entered the dropping state
    kInDropLoop = 2,  // a drop inside the `while (now >= drop_next && dropping)` loop
  };
  // RFC 8289 dodequeue(): whether the sojourn time stayed above target for an interval.
  bool OkToDrop(int64_t now_ns, int64_t sojourn_ns, size_t remaining);
  // The end of the entry branch: dropping starts, with the count carried over (Linux variant).
  void EnterDropping(int64_t now_ns);
  // RFC 8289 control_law(): t + interval / sqrt(count).
  int64_t ControlLaw(int64_t t_ns) const;

  const QueueDisciplineConfig config_;
  Step step_ = Step::kFresh;
  bool dropping_ = false;
  int64_t first_above_time_ns_ = 0;  // 0: sojourn below target (RFC 8289's sentinel)
  int64_t drop_next_ns_ = 0;
  uint32_t count_ = 0;
  uint32_t lastcount_ = 0;
  int64_t drops_total_ = 0;
};

}  // namespace rlab

#endif  // RLAB_POLICY_QUEUE_DISCIPLINE_H_
