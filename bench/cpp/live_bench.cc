// Live engine throughput, end to end: the engine's own C++ load generator submits orders for a
// no-op dependency (zero latency, no failures) through the bounded queue to the worker pool, and
// we count orders that completed per second of wall time. Two conditions: the default queue
// (65,536 places) with the generator offering far more than the pool takes, so a share of the
// offered orders is rejected as queue-full while it is measured (the share is printed beside the
// figure); and a queue that holds every order the run can offer (capacity = rate x duration), so
// none is rejected and the figure is completed orders / time until drained. The generator offers
// rate x duration orders; behind schedule it submits at once, so the wall time exceeds the
// nominal duration. Beside them, the floor: a bare std::mutex + std::condition_variable queue
// moving integers from one producer to one consumer. A plain main (not Google Benchmark): each
// figure is one timed run, repeated; the best repeat is reported. Prints one JSON object per
// line for bench/live_bench.py.
//
//   live_bench [--quick] [--workers=N]
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "rlab/live/live_engine.h"
#include "rlab/model/scenario.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// A benchmark that cannot start its engine must say so, not report a rate.
void Check(const absl::Status& s) {
  if (s.ok()) return;
  std::fprintf(stderr, "live_bench: %s\n", std::string(s.message()).c_str());
  std::exit(1);
}

struct EngineRun {
  int64_t arrived = 0, completed = 0, rejected = 0;
  double seconds = 0;
};

constexpr double kOfferedRate = 1e7;  // the validated maximum: one order per 100 ns

// Runs the open-loop generator far above what the pool can take for `duration_s`; completed
// orders per second measure the pipeline's capacity. With a `queue_capacity` below what the run
// offers, the queue rejects what does not fit.
EngineRun RunEngine(double duration_s, int workers, int queue_capacity) {
  rlab::ScenarioConfig sc;
  sc.arrivals.kind = rlab::ArrivalConfig::Kind::kConstant;
  sc.arrivals.rate = kOfferedRate;
  sc.duration_ns = static_cast<int64_t>(duration_s * 1e9);
  sc.workers = workers;
  sc.queue_capacity = queue_capacity;
  sc.seed = 1;
  rlab::DependencyConfig dep;
  dep.name = "noop";
  dep.faults.latency.kind = rlab::LatencyDist::Kind::kConstant;
  dep.faults.latency.a = 0.0;
  sc.dependencies.push_back(dep);
  rlab::LiveOptions o;
  o.sample_every_ns = 0;
  o.record_orders = false;
  o.record_events = false;
  auto e = rlab::LiveEngine::Create(sc, o);
  if (!e.ok()) {
    std::fprintf(stderr, "live_bench: %s\n", std::string(e.status().message()).c_str());
    std::exit(1);
  }
  Check((*e)->Start());
  const Clock::time_point t0 = Clock::now();
  Check((*e)->StartLoad());
  (*e)->WaitIdle(-1);
  const Clock::time_point t1 = Clock::now();
  (*e)->Shutdown(-1);
  const rlab::SimResult& r = **(*e)->result();
  EngineRun run;
  run.arrived = r.arrived;
  run.completed = r.by_status[static_cast<size_t>(rlab::OrderStatus::kCompleted)];
  run.rejected = r.by_status[static_cast<size_t>(rlab::OrderStatus::kRejected)];
  run.seconds = Seconds(t1 - t0);
  return run;
}

// The floor: one producer, one consumer, a mutex and a condition variable, items one by one.
double MutexCvItemsPerSecond(int64_t items) {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<int64_t> q;
  bool done = false;
  int64_t sum = 0;
  const Clock::time_point t0 = Clock::now();
  std::thread consumer([&] {
    for (;;) {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return !q.empty() || done; });
      if (q.empty()) return;
      sum += q.front();
      q.pop_front();
    }
  });
  for (int64_t i = 0; i < items; ++i) {
    {
      std::lock_guard<std::mutex> lock(mu);
      q.push_back(i);
    }
    cv.notify_one();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
  }
  cv.notify_one();
  consumer.join();
  const double s = Seconds(Clock::now() - t0);
  if (sum != items * (items - 1) / 2) std::fprintf(stderr, "live_bench: lost items\n");
  return static_cast<double>(items) / s;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::vector<int> worker_counts = {1, 2};
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    if (std::strncmp(argv[i], "--workers=", 10) == 0) worker_counts = {std::atoi(argv[i] + 10)};
  }
  const int repeats = quick ? 2 : 3;
  const double duration_s = quick ? 0.5 : 1.5;
  // Without rejections: a shorter run whose every offered order fits in the queue.
  const double no_reject_duration_s = quick ? 0.1 : 0.2;
  const int no_reject_capacity = static_cast<int>(kOfferedRate * no_reject_duration_s) + 1;
  struct Condition {
    const char* name;
    double duration_s;
    int queue_capacity;
  };
  const Condition conditions[] = {
      {"engine_load_generator", duration_s, 1 << 16},
      {"engine_load_generator_no_rejections", no_reject_duration_s, no_reject_capacity}};
  for (const Condition& c : conditions) {
    for (int workers : worker_counts) {
      EngineRun best;
      double best_rate = 0;
      for (int r = 0; r < repeats; ++r) {
        const EngineRun run = RunEngine(c.duration_s, workers, c.queue_capacity);
        const double rate = static_cast<double>(run.completed) / run.seconds;
        if (rate > best_rate) {
          best_rate = rate;
          best = run;
        }
      }
      std::printf(
          "{\"name\": \"%s\", \"workers\": %d, \"queue_capacity\": %d, "
          "\"offered_rate\": %.0f, \"duration_s\": %.3f, \"arrived\": %lld, "
          "\"completed\": %lld, \"rejected\": %lld, \"rejected_share\": %.4f, "
          "\"seconds\": %.6f, \"completed_per_s\": %.1f, \"repeats\": %d}\n",
          c.name, workers, c.queue_capacity, kOfferedRate, c.duration_s,
          static_cast<long long>(best.arrived), static_cast<long long>(best.completed),
          static_cast<long long>(best.rejected),
          best.arrived > 0 ? static_cast<double>(best.rejected) / static_cast<double>(best.arrived)
                           : 0.0,
          best.seconds, best_rate, repeats);
    }
  }
  double floor = 0;
  for (int r = 0; r < repeats; ++r) {
    floor = std::max(floor, MutexCvItemsPerSecond(quick ? 1'000'000 : 3'000'000));
  }
  std::printf("{\"name\": \"mutex_cv_queue\", \"items_per_s\": %.1f, \"repeats\": %d}\n", floor,
              repeats);
  return 0;
}
