#ifndef RLAB_MODEL_SERVICE_INTAKE_H_
#define RLAB_MODEL_SERVICE_INTAKE_H_

// Service graphs: a non-root service's own intake (`services[name].intake`), the part both
// engines share. The engines own the job queue (its element type, its lock) and the clock; this
// class owns the rules, fed `now_ns`:
//   - admission: the adaptive concurrency limit (intake.limit, model/limits.h) on the admitted
//     requests not yet ended (queued + processing), checked before the queue's own capacity, as
//     at the root; a request over it is refused at once (reason `limited`, HTTP 503 to its
//     caller). The limiter learns from each admitted request's end as the root's does
//     (IntakeLimitSample: its sojourn time, as a drop when it ran out of time).
//   - dequeue: the queue discipline (intake.discipline, policy/queue_discipline.h) picks which
//     waiting request a free worker takes, and CoDel drops (reason `queue_delay`, HTTP 503).
//   - rate: intake.rate_limit (model/limits.h RateGate), checked BEFORE the limit, as at the
//     root: a request whose permit is due within max_wait (and before its own deadline) is
//     admitted but parked until then, off the queue and off the workers (the engines park it:
//     the simulator as an event, the live engine in a RateWaitQueue); at its permit time it
//     meets the limit and the queue's room. Any other is refused at once (reason
//     `rate_limited`, HTTP 503 to its caller). per_key: the key of the request's root order.
// A service's intake.shedding is refused by the scenario's rules (not modelled at a service
// yet).
//
// Not thread-safe: the live engine calls it under the service's lock (the limiter has its own).

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "rlab/model/limits.h"
#include "rlab/model/run_result.h"
#include "rlab/model/scenario.h"
#include "rlab/policy/concurrency_limit.h"
#include "rlab/policy/queue_discipline.h"

namespace rlab {

// An admitted request's hold on the service's limit (none without a limit).
struct ServicePermit {
  bool held = false;
  LimitToken token;
};

class ServiceIntake {
 public:
  // `config` must have passed a service's table (ServiceSchema: its intake and rules).
  explicit ServiceIntake(const IntakeConfig& config);

  // Whether the queue is plain FIFO (no discipline to consult).
  bool fifo() const { return discipline_.fifo(); }
  bool has_limit() const { return limiter_ != nullptr; }
  // The limiter (nullptr without intake.limit), for samplers.
  ConcurrencyLimiter* limiter() const { return limiter_.get(); }
  // intake.rate_limit's gate (nullptr without one). Thread-safe by itself.
  RateGate* rate() const { return rate_.get(); }

  // The rate gate at `now_ns` for a request of order key `key` with deadline `deadline_ns`
  // (kNoDeadline: none): the wait (>= 0) for its permit, 0 without a rate limit, or nullopt
  // when it is refused (CountServiceRejected(..., FailReason::kRateLimited)).
  std::optional<int64_t> ReserveRate(int32_t key, int64_t now_ns, int64_t deadline_ns);
  const QueueDiscipline& discipline() const { return discipline_; }

  // The limit gate at `now_ns`: the request's permit, or nullopt when it is over the limit
  // (refuse it: CountServiceRefused(..., FailReason::kLimited), ChildRejectedAnswer()).
  std::optional<ServicePermit> Admit(int64_t now_ns);
  // A request Admit let through that the queue then refused (full): the permit goes back
  // without a sample (as the root's OnIgnore).
  void Abandon(ServicePermit& permit);
  // An admitted request ended at `now_ns` (`u` in [0, 1): the limiter's draw).
  void OnEnd(ServicePermit& permit, OrderStatus status, FailReason reason, int64_t now_ns,
             double u);

  // A free worker's dequeue from `queue` (a deque in arrival order; not empty): the request it
  // serves into `*out` (true), or false when the discipline dropped every waiting request.
  // Each dropped request is passed to `drop` (end it as rejected, reason kQueueDelay).
  // `enqueued_ns(item)` is when the item joined the queue.
  template <typename Queue, typename EnqueuedNs, typename Drop>
  bool Take(Queue& queue, int64_t now_ns, EnqueuedNs enqueued_ns, Drop drop,
            typename Queue::value_type* out) {
    if (discipline_.fifo()) {
      *out = std::move(queue.front());
      queue.pop_front();
      return true;
    }
    QueueDiscipline& d = discipline_;
    while (!queue.empty()) {
      const bool back = d.Next(now_ns, enqueued_ns(queue.front())) == QueueDiscipline::End::kBack;
      typename Queue::value_type item = std::move(back ? queue.back() : queue.front());
      if (back) {
        queue.pop_back();
      } else {
        queue.pop_front();
      }
      if (!d.drops() || d.OnDequeue(now_ns, now_ns - enqueued_ns(item), queue.size()) ==
                            QueueDiscipline::Verdict::kServe) {
        *out = std::move(item);
        return true;
      }
      drop(std::move(item));
      if (queue.empty()) d.OnEmpty(now_ns);
    }
    return false;
  }

 private:
  QueueDiscipline discipline_;
  std::unique_ptr<ConcurrencyLimiter> limiter_;
  std::unique_ptr<RateGate> rate_;
};

}  // namespace rlab

#endif  // RLAB_MODEL_SERVICE_INTAKE_H_
