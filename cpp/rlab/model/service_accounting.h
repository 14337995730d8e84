#ifndef RLAB_MODEL_SERVICE_ACCOUNTING_H_
#define RLAB_MODEL_SERVICE_ACCOUNTING_H_

// Service graphs (model/service_graph.h): what both engines do the same way with a child
// request, so that a simulated and a live run of one graph count, answer and sample alike. The
// engines own the queues, the workers and the clock; this file owns the rules:
//   - the child's deadline (deadline propagation),
//   - how the child's end answers the calling attempt (the outcome mapping),
//   - how a request is counted in its service's ServiceTotals,
//   - the per-service time-series columns and their values.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "rlab/core/outcome.h"
#include "rlab/model/run_result.h"
#include "rlab/model/scenario.h"

namespace rlab {

// Each non-root service's time-series columns (`service.<name>.<column>`): per interval the
// requests that reached it and those that ended, by status; at the sample its job queue, its
// busy workers and its requests in flight (queued, running or backing off).
inline constexpr std::array<const char*, 8> kServiceSeriesColumns = {
    "arrivals", "completed",   "failed",       "rejected",
    "expired",  "queue_depth", "busy_workers", "in_flight"};

// The deadline a child request carries: the calling attempt's `caller_until_ns` (its attempt
// timeout capped by its own deadline; kNoDeadline for none), capped by the service's own
// `deadline` (`service_deadline_ns`, 0 for none) from `now_ns`.
int64_t ChildDeadline(int64_t caller_until_ns, int64_t service_deadline_ns, int64_t now_ns);

// The answer a service gives a call its full job queue or its intake.limit refused: 503 (overload,
// retryable by default), with no Retry-After.
inline constexpr Outcome ChildRejectedAnswer() { return Outcome::Http(503); }

// How a child's end answers its caller (as a real server would):
//   completed                          -> success
//   rejected, failed, cancelled        -> 503
//   expired, or failed on its deadline -> the caller's own timeout outcome (timeout or
//                                         deadline_exceeded, as `caller_until_is_deadline`
//                                         says) when that deadline was the caller's, else 504
//                                         (the service's own `deadline` ran out first).
Outcome ChildAnswer(OrderStatus status, FailReason reason, int64_t deadline_ns,
                    int64_t caller_until_ns, bool caller_until_is_deadline);

// A call reached the service (counted whether or not its queue takes it).
void CountServiceArrival(ServiceTotals& s);
// The service refused it at once (after CountServiceArrival; the request is over): its full
// queue (kQueueFull) or its intake.limit (kLimited).
void CountServiceRejected(ServiceTotals& s, FailReason reason = FailReason::kQueueFull);
// The queue took it: in flight until CountServiceEnd.
void CountServiceAdmitted(ServiceTotals& s);

// How an admitted request ended.
struct ChildEnd {
  OrderStatus status = OrderStatus::kCompleted;
  FailReason reason = FailReason::kNone;
  int64_t arrival_ns = 0;
  int64_t start_ns = -1;  // when a worker took it; -1: never started
  int64_t deadline_ns = kNoDeadline;
  int64_t end_ns = 0;
  bool caller_waiting = true;      // the answer reached a caller that still waited
  bool dropped_unstarted = false;  // dropped at dequeue: its caller had given up, or its time
};
void CountServiceEnd(ServiceTotals& s, const ChildEnd& e);

// Appends `service.<name>.<column>` for every service of `config`, in declaration order.
void AppendServiceColumns(const ScenarioConfig& config, std::vector<std::string>* columns);

// One service at a sample: its counts so far and its levels now.
struct ServiceSample {
  int64_t arrived = 0;
  std::array<int64_t, kNumOrderStatuses> by_status{};
  int64_t queue_depth = 0;
  int64_t busy_workers = 0;
  int64_t in_flight = 0;
};
// The sample of `totals` with the given levels.
ServiceSample SampleOf(const ServiceTotals& totals, int64_t queue_depth, int64_t busy_workers);
// Puts one service's row values in kServiceSeriesColumns' order (the counts as differences from
// `*last`, which then becomes `now`).
void PutServiceSample(const ServiceSample& now, ServiceSample* last,
                      absl::FunctionRef<void(double)> put);

}  // namespace rlab

#endif  // RLAB_MODEL_SERVICE_ACCOUNTING_H_
