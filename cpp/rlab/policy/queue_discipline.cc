#include "rlab/policy/queue_discipline.h"

#include <cmath>

#include "rlab/core/schema.h"
#include "rlab/core/validate.h"

namespace rlab {

std::string_view QueueDisciplineKindName(QueueDisciplineConfig::Kind kind) {
  switch (kind) {
    case QueueDisciplineConfig::Kind::kFifo:
      return "fifo";
    case QueueDisciplineConfig::Kind::kLifo:
      return "lifo";
    case QueueDisciplineConfig::Kind::kAdaptiveLifo:
      return "adaptive_lifo";
    case QueueDisciplineConfig::Kind::kCodel:
      return "codel";
  }
  return "unknown";
}

namespace {
constexpr std::string_view kDisciplineNames[] = {"fifo", "lifo", "adaptive_lifo", "codel"};
}  // namespace

RLAB_TABLE(QueueDisciplineSchema, QueueDisciplineConfig, "QueueDiscipline", "", nullptr,
           RLAB_CHOICE(kind, kDisciplineNames, "the waiting order (and CoDel's drops)"),
           RLAB_SECONDS(codel_target, 0, kMaxS, OC, "CoDel's acceptable standing delay"),
           RLAB_SECONDS(codel_interval, 0, kMaxS, OC, "CoDel's sliding window"),
           RLAB_SECONDS(lifo_threshold, 0, kMaxS, CC, "adaptive LIFO's congestion threshold"));
absl::Status Validate(const QueueDisciplineConfig& c) {
  return ValidateFields(QueueDisciplineSchema(), c);
}

QueueDiscipline::End QueueDiscipline::Next(int64_t now_ns, int64_t oldest_enqueued_ns) const {
  switch (config_.kind) {
    case QueueDisciplineConfig::Kind::kLifo:
      return End::kBack;
    case QueueDisciplineConfig::Kind::kAdaptiveLifo:
      // "Fail at Scale": FIFO in normal operation, LIFO once a queue is forming.
      return now_ns - oldest_enqueued_ns >= config_.lifo_threshold_ns ? End::kBack : End::kFront;
    case QueueDisciplineConfig::Kind::kFifo:
    case QueueDisciplineConfig::Kind::kCodel:
      break;
  }
  return End::kFront;
}

int64_t QueueDiscipline::ControlLaw(int64_t t_ns) const {
  return t_ns + static_cast<int64_t>(std::llround(static_cast<double>(config_.codel_interval_ns) /
                                                  std::sqrt(static_cast<double>(count_))));
}

bool QueueDiscipline::OkToDrop(int64_t now_ns, int64_t sojourn_ns, size_t remaining) {
  // RFC 8289 dodequeue(). Its `bytes() <= maxpacket` (no standing queue behind this packet)
  // becomes "no request waits behind this one".
  if (sojourn_ns < config_.codel_target_ns || remaining == 0) {
    first_above_time_ns_ = 0;
    return false;
  }
  if (first_above_time_ns_ == 0) {
    first_above_time_ns_ = now_ns + config_.codel_interval_ns;
    return false;
  }
  return now_ns >= first_above_time_ns_;
}

void QueueDiscipline::EnterDropping(int64_t now_ns) {
  dropping_ = true;
  // RFC 8289 §5.6 (the Linux variant): if the queue went bad again soon after the last dropping
  // state, start from the drop rate that controlled it then.
  const uint32_t delta = count_ - lastcount_;
  count_ = 1;
  if (delta > 1 && now_ns - drop_next_ns_ < 16 * config_.codel_interval_ns) count_ = delta;
  drop_next_ns_ = ControlLaw(now_ns);
  lastcount_ = count_;
}

QueueDiscipline::Verdict QueueDiscipline::OnDequeue(int64_t now_ns, int64_t sojourn_ns,
                                                    size_t remaining) {
  const bool ok_to_drop = OkToDrop(now_ns, sojourn_ns, remaining);
  const Step step = step_;
  step_ = Step::kFresh;
  switch (step) {
    case Step::kAfterEntry:
      // The packet after the entering drop is served whatever its sojourn time.
      EnterDropping(now_ns);
      return Verdict::kServe;
    case Step::kInDropLoop:
      if (!ok_to_drop) {
        dropping_ = false;
      } else {
        drop_next_ns_ = ControlLaw(drop_next_ns_);
      }
      break;
    case Step::kFresh:
      if (dropping_) {
        if (!ok_to_drop) dropping_ = false;  // sojourn time below target: leave dropping state
      } else if (ok_to_drop) {
        ++drops_total_;
        step_ = Step::kAfterEntry;
        return Verdict::kDrop;
      } else {
        return Verdict::kServe;
      }
      break;
  }
  // The `while (now >= drop_next && dropping)` loop of RFC 8289's dequeue().
  if (dropping_ && now_ns >= drop_next_ns_) {
    ++count_;
    ++drops_total_;
    step_ = Step::kInDropLoop;
    return Verdict::kDrop;
  }
  return Verdict::kServe;
}

void QueueDiscipline::OnEmpty(int64_t now_ns) {
  first_above_time_ns_ = 0;
  const Step step = step_;
  step_ = Step::kFresh;
  if (step == Step::kAfterEntry) {
    EnterDropping(now_ns);
  } else {
    dropping_ = false;
  }
}

}  // namespace rlab
