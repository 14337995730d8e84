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

bool CapacityServerCore::CodelDrops(int64_t now_ns, int64_t enqueued_ns, size_t remaining) {
  if (discipline_->OnDequeue(now_ns, now_ns - enqueued_ns, remaining) ==
      QueueDiscipline::Verdict::kServe) {
    return false;
  }
  ++counts_.dropped_by_queue;
  if (remaining == 0) discipline_->OnEmpty(now_ns);
  return true;
}

void AddCapacityTotals(const CapacityCounts& counts, DependencyTotals& totals) {
  totals.wasted_service += counts.wasted;
  totals.rejected_by_capacity += counts.rejected;
  totals.dropped_by_queue += counts.dropped_by_queue;
  totals.max_load = std::max(totals.max_load, counts.max_load);
}

}  // namespace rlab
