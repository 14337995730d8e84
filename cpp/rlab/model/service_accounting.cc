#include "rlab/model/service_accounting.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "rlab/core/clock.h"

namespace rlab {

int64_t ChildDeadline(int64_t caller_until_ns, int64_t service_deadline_ns, int64_t now_ns) {
  int64_t deadline_ns = caller_until_ns;  // kNoDeadline when the caller has none
  if (service_deadline_ns > 0) deadline_ns = std::min(deadline_ns, now_ns + service_deadline_ns);
  return deadline_ns;
}

Outcome ChildAnswer(OrderStatus status, FailReason reason, int64_t deadline_ns,
                    int64_t caller_until_ns, bool caller_until_is_deadline) {
  const bool out_of_time = status == OrderStatus::kExpired ||
                           (status == OrderStatus::kFailed && reason == FailReason::kDeadline);
  if (out_of_time) {
    // The caller's own deadline: the same outcome as its own timeout (whichever comes first).
    return deadline_ns == caller_until_ns
               ? Outcome::Of(caller_until_is_deadline ? OutcomeKind::kDeadlineExceeded
                                                      : OutcomeKind::kTimeout)
               : Outcome::Http(504);
  }
  if (status != OrderStatus::kCompleted) return Outcome::Http(503);
  return Outcome::Of(OutcomeKind::kSuccess);
}

void CountServiceArrival(ServiceTotals& s) { ++s.arrived; }

void CountServiceRejected(ServiceTotals& s, FailReason reason) {
  ++s.by_status[static_cast<size_t>(OrderStatus::kRejected)];
  ++s.by_reason[static_cast<size_t>(reason)];
}

void CountServiceAdmitted(ServiceTotals& s) { ++s.in_flight; }

void CountServiceEnd(ServiceTotals& s, const ChildEnd& e) {
  if (e.dropped_unstarted) ++s.dropped_unstarted;
  ++s.by_status[static_cast<size_t>(e.status)];
  if (e.reason != FailReason::kNone) ++s.by_reason[static_cast<size_t>(e.reason)];
  const int64_t sojourn_ns = e.end_ns - e.arrival_ns;
  s.sojourn_sum_s += NsToSeconds(sojourn_ns);
  if (e.status == OrderStatus::kCompleted) s.latency.Add(sojourn_ns);
  // An answer after the deadline would be work past the caller's time (a request that waited
  // past it for a worker, in the queue or after a backoff, ends without doing any).
  if (e.status == OrderStatus::kCompleted && e.deadline_ns != kNoDeadline &&
      e.end_ns > e.deadline_ns) {
    ++s.overran;
  }
  if (!e.caller_waiting && e.start_ns >= 0) {
    ++s.wasted;
    s.wasted_ns += e.end_ns - e.start_ns;
  }
  --s.in_flight;
}

void AppendServiceColumns(const ScenarioConfig& config, std::vector<std::string>* columns) {
  for (const ServiceConfig& svc : config.services) {
    for (const char* m : kServiceSeriesColumns) {
      columns->push_back(absl::StrFormat("service.%s.%s", svc.name, m));
    }
  }
}

ServiceSample SampleOf(const ServiceTotals& totals, int64_t queue_depth, int64_t busy_workers) {
  ServiceSample s;
  s.arrived = totals.arrived;
  s.by_status = totals.by_status;
  s.queue_depth = queue_depth;
  s.busy_workers = busy_workers;
  s.in_flight = totals.in_flight;
  return s;
}

void PutServiceSample(const ServiceSample& now, ServiceSample* last,
                      absl::FunctionRef<void(double)> put) {
  put(static_cast<double>(now.arrived - last->arrived));
  for (OrderStatus o : {OrderStatus::kCompleted, OrderStatus::kFailed, OrderStatus::kRejected,
                        OrderStatus::kExpired}) {
    const size_t i = static_cast<size_t>(o);
    put(static_cast<double>(now.by_status[i] - last->by_status[i]));
  }
  put(static_cast<double>(now.queue_depth));
  put(static_cast<double>(now.busy_workers));
  put(static_cast<double>(now.in_flight));
  *last = now;
}

}  // namespace rlab
