#include "rlab/model/capacity_server.h"

#include <algorithm>

namespace rlab {

CapacityServerCore::CapacityServerCore(const CapacityConfig& config)
    : max_in_service_(config.max_in_service),
      max_queue_(config.max_queue),
      drop_abandoned_(config.drop_abandoned) {
  if (config.discipline.kind != QueueDisciplineConfig::Kind::kFifo) {
    discipline_.emplace(config.discipline);
  }
}

void CapacityServerCore::SetLimits(const CapacityConfig& config) {
  max_in_service_ = config.max_in_service;
  max_queue_ = config.max_queue;
  drop_abandoned_ = config.drop_abandoned;
}

void CapacityServerCore::Release() { --in_service_; }

CapacityAdmission CapacityServerCore::Admit(size_t queued) {
  // A free slot goes to an arrival only when nobody waits (rule 3).
  if (queued == 0 && SlotFree()) {
    ++in_service_;
    NoteLoad(in_service_);
    return CapacityAdmission::kServe;
  }
  if (max_queue_ >= 0 && queued >= static_cast<size_t>(max_queue_)) {
    ++counts_.rejected;
    return CapacityAdmission::kRejected;
  }
  return CapacityAdmission::kQueued;
}

bool CapacityServerCore::TakeNewest(int64_t now_ns, int64_t oldest_enqueued_ns) const {
  return discipline_ &&
         discipline_->Next(now_ns, oldest_enqueued_ns) == QueueDiscipline::End::kBack;
}

LineVerdict CapacityServerCore::JudgeTaken(int64_t now_ns, int64_t enqueued_ns, bool waiting,
                                           size_t remaining) {
  // Rule 2: drop_abandoned first; the discipline never sees a call the server skips.
  if (!waiting && drop_abandoned_) {
    ++counts_.discarded;
    return LineVerdict::kDiscard;
  }
  if (discipline_ && discipline_->drops() &&
      discipline_->OnDequeue(now_ns, now_ns - enqueued_ns, remaining) ==
          QueueDiscipline::Verdict::kDrop) {
    ++counts_.dropped_by_queue;
    if (remaining == 0) discipline_->OnEmpty(now_ns);
    return LineVerdict::kDrop;
  }
  ++in_service_;
  NoteLoad(in_service_);
  if (!waiting) {
    ++counts_.wasted;
    return LineVerdict::kServeWasted;
  }
  return LineVerdict::kServe;
}

void AddCapacityTotals(const CapacityCounts& counts, DependencyTotals& totals) {
  totals.wasted_service += counts.wasted;
  totals.rejected_by_capacity += counts.rejected;
  totals.dropped_by_queue += counts.dropped_by_queue;
  totals.max_load = std::max(totals.max_load, counts.max_load);
}

}  // namespace rlab
