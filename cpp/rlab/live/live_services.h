#ifndef RLAB_LIVE_LIVE_SERVICES_H_
#define RLAB_LIVE_LIVE_SERVICES_H_

// Service graphs in the live engine (model/service_graph.h): each non-root service is a pool of
// its own worker threads behind its own bounded job queue, owned by the worker pool
// (LiveWorkerPool; the engine calls in at its hook points, marked "service graphs"). An attempt
// of a dependency whose `service` is set becomes a request (a ServiceCall) to that service: the
// calling worker queues it and waits for the answer, at most until the attempt's `until_ns` (its
// timeout capped by its deadline), and a shutdown wakes it. A worker of the service runs the
// shared OrderFlow over the service's own dependencies, in the loop the root's workers run an
// order's in (LiveWorkerPool::RunFlow).
//
// The rules are the simulated engine's (model/service_accounting.h): the child's deadline is
// the caller's remaining time capped by the service's `deadline`; a request whose caller gave up
// before a worker took it is dropped unstarted; one whose caller gave up while it ran goes on
// and its worker time is counted as wasted; a full queue (or the service's intake.limit or
// intake.rate_limit) answers 503 at once; a request whose rate-limit permit is due within
// max_wait is admitted and parked (rate_waits) until then, then meets the limit and the queue; the
// service's intake.discipline picks which waiting request a worker takes (CoDel drops answer 503,
// model/service_intake.h); the child's end answers the caller by ChildAnswer. Counting, the
// `service.<name>.*` time-series columns and the rlab_service_* families are the simulator's.
//
// Shutdown: the root's workers drain within the grace time while the services keep serving
// them; once those are joined (every order terminal), the services' work is for nobody: every
// wait is interrupted, the queues close, the remaining requests end (expired when their caller
// had gone, cancelled otherwise) and the services' threads are joined.

#include <array>
#include <deque>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "rlab/core/metrics.h"
#include "rlab/core/mutex.h"
#include "rlab/core/outcome.h"
#include "rlab/core/rng.h"
#include "rlab/live/live_worker_pool.h"
#include "rlab/live/rate_wait_queue.h"
#include "rlab/model/run_result.h"
#include "rlab/model/scenario.h"
#include "rlab/model/service_accounting.h"
#include "rlab/model/service_intake.h"

namespace rlab {

// The working copy of `config` the engine and its parts run on: the dependencies are every
// tier's (FlatDependencies: root first, a service's labelled "<service>.<name>"), so that
// everything indexed by dependency covers them. Without services, `config` itself.
ScenarioConfig LiveWorkingConfig(const ScenarioConfig& config);
// What the live engine cannot run in a graph yet (InvalidArgument naming the path).
absl::Status CheckServicesForLive(const ScenarioConfig& config);

// What a caller waiting for several requests at once (the copies of a hedged or fanned-out
// call to a service) waits on: every answer to one of them, and the shutdown, signal it.
struct LiveServiceWake {
  Mutex mu;
  CondVar cv;
  uint64_t answers ABSL_GUARDED_BY(mu) = 0;  // answers delivered so far
};

// One request to a service, shared by the caller (which may stop waiting) and the service's
// worker (which answers it, or finds nobody to answer).
struct LiveWorkerPool::ServiceCall {
  // Written by the caller before the call is queued; read-only afterwards.
  int32_t key = 0;
  int64_t arrival_ns = 0;
  int64_t deadline_ns = kNoDeadline;
  int64_t caller_until_ns = kNoDeadline;
  bool caller_until_is_deadline = false;
  // Its service's intake.limit permit: written by the caller under the tier's lock before the
  // call is queued, released by EndCall under it.
  ServicePermit permit;

  Mutex mu;
  CondVar cv;  // the answer is in
  bool answered ABSL_GUARDED_BY(mu) = false;
  bool caller_gone ABSL_GUARDED_BY(mu) = false;  // the caller stopped waiting
  Outcome answer ABSL_GUARDED_BY(mu);

  // A copy of a hedged or fanned-out call (RunServiceRound): its caller waits for several
  // requests at once, on `wake`, which the answer also signals (set before the call is queued;
  // null for a single call). `answered_ns`: when the answer came (the engine's time).
  std::shared_ptr<LiveServiceWake> wake;
  int64_t answered_ns ABSL_GUARDED_BY(mu) = 0;
};

// One non-root service: its job queue, its workers and its totals.
struct LiveWorkerPool::ServiceTier {
  int tier = 0;  // 1 + its index in the scenario's services
  const ServiceConfig* config = nullptr;
  int first_dep = 0;  // its dependencies in config_.dependencies: [first_dep, first_dep + n)
  int num_deps = 0;

  Mutex mu;
  CondVar cv;  // a request was queued, or the queue closed
  std::deque<std::shared_ptr<ServiceCall>> jobs ABSL_GUARDED_BY(mu);
  int busy ABSL_GUARDED_BY(mu) = 0;  // workers holding one
  bool closed ABSL_GUARDED_BY(mu) = false;
  ServiceTotals totals ABSL_GUARDED_BY(mu);
  // Its own intake (services[name].intake: discipline and limit) and the limiter's draws.
  std::unique_ptr<ServiceIntake> intake ABSL_GUARDED_BY(mu);
  RandomStream intake_rng ABSL_GUARDED_BY(mu){0};

  std::vector<LiveWorker*> workers;  // owned by LiveWorkerPool::service_workers_
  ServiceSample last;                // the sampler thread's
  // rlab_service_requests{service=<name>, outcome} (completed, failed, rejected, expired) and
  // rlab_service_latency_seconds{service=<name>}.
  std::array<Counter*, 4> requests{};
  Histogram* latency = nullptr;
  // intake.rate_limit with max_wait > 0: the admitted requests waiting for their permit, off
  // the queue and the workers (its own thread hands each to ReleaseServiceCall when due).
  std::unique_ptr<RateWaitQueue<std::shared_ptr<ServiceCall>>> rate_waits;
};

}  // namespace rlab

#endif  // RLAB_LIVE_LIVE_SERVICES_H_
