// The floor for the simulated engine (issue 11): a bare discrete-event loop of the same two models
// bench/sim_vs_simpy.py runs through the engine, with nothing but what the model needs. No policy
// objects, no flows, no statistics beyond counters: a 4-ary min-heap of (time, sequence) events,
// FIFO queues of order slots, and the engine's own random streams (rlab/core/rng.h, xoshiro256**),
// in integer nanoseconds like the engine. The engine's figure divided by this one is how close the
// engine is to what a hand-written loop can do on the same machine.
//
// * mmc: Poisson arrivals at 180/s, c = 20 servers, exponential service of mean 0.1 s.
// * retry: the same arrivals and service per attempt, c = 29; each attempt fails with p = 0.3, at
//   most 4 attempts; before attempt k+1 a full-jitter backoff U(0, 0.1 * 2^(k-1)) s during which
//   the server is released. A free server takes an order back from backoff before a new one (FIFO
//   within each class), the simulated engine's rule (SimEngine::DispatchWork).
//
// Arrivals stop at the horizon; the run continues until every order has finished. Prints one JSON
// object per line: orders per wall-clock second, best of the repeats.
//
//   sim_floor --model=mmc|retry [--horizon=S] [--repeats=N] [--seed=N]
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "rlab/core/clock.h"
#include "rlab/core/rng.h"

namespace {

constexpr double kLambda = 180.0;
constexpr double kServiceMean = 0.1;
constexpr int kMmcServers = 20;
constexpr int kRetryServers = 29;
constexpr double kFailP = 0.3;
constexpr int kMaxAttempts = 4;
constexpr double kBackoffInitial = 0.1;

enum EventType : uint32_t { kArrival, kServiceEnd, kSleepEnd };

struct Event {
  int64_t t_ns;
  uint64_t seq;
  uint32_t type;
  uint32_t slot;
};

// A 4-ary min-heap ordered by (time, sequence): same-instant events run in scheduling order.
class Heap {
 public:
  void Push(int64_t t_ns, uint32_t type, uint32_t slot) {
    heap_.push_back({t_ns, seq_++, type, slot});
    size_t i = heap_.size() - 1;
    const Event e = heap_[i];
    while (i > 0) {
      const size_t parent = (i - 1) / 4;
      if (!Before(e, heap_[parent])) break;
      heap_[i] = heap_[parent];
      i = parent;
    }
    heap_[i] = e;
  }
  Event Pop() {
    const Event top = heap_.front();
    const Event last = heap_.back();
    heap_.pop_back();
    const size_t n = heap_.size();
    if (n > 0) {
      size_t i = 0;
      for (;;) {
        const size_t first = 4 * i + 1;
        if (first >= n) break;
        size_t best = first;
        const size_t end = first + 4 < n ? first + 4 : n;
        for (size_t c = first + 1; c < end; ++c) {
          if (Before(heap_[c], heap_[best])) best = c;
        }
        if (!Before(heap_[best], last)) break;
        heap_[i] = heap_[best];
        i = best;
      }
      heap_[i] = last;
    }
    return top;
  }
  bool empty() const { return heap_.empty(); }

 private:
  static bool Before(const Event& x, const Event& y) {
    return x.t_ns < y.t_ns || (x.t_ns == y.t_ns && x.seq < y.seq);
  }
  std::vector<Event> heap_;
  uint64_t seq_ = 0;
};

struct Order {
  int64_t arrival_ns;
  int attempt;
};

struct Run {
  int64_t arrived = 0, completed = 0, failed = 0, attempts = 0, events = 0;
  double sojourn_sum_s = 0;
  double seconds = 0;
};

// One run of either model; `retry` selects the retrying client.
Run Simulate(bool retry, double horizon_s, uint64_t seed) {
  const rlab::Rng root(seed);
  rlab::RandomStream arrivals = root.Stream("arrivals");
  rlab::RandomStream service = root.Stream("faults/payment");
  rlab::RandomStream policy = root.Stream("policy/payment");
  const int64_t horizon_ns = rlab::SecondsToNs(horizon_s);
  const int64_t backoff_initial_ns = rlab::SecondsToNs(kBackoffInitial);
  int idle = retry ? kRetryServers : kMmcServers;
  Heap events;
  std::vector<Order> orders;
  std::vector<uint32_t> free_slots;
  std::deque<uint32_t> waiting;  // new orders, FIFO
  std::deque<uint32_t> ready;    // orders back from a backoff, FIFO; served first
  Run run;

  const auto start_attempt = [&](uint32_t slot, int64_t now_ns) {
    --idle;
    ++orders[slot].attempt;
    events.Push(now_ns + rlab::SecondsToNs(service.Exponential(kServiceMean)), kServiceEnd, slot);
  };
  const auto dispatch = [&](int64_t now_ns) {
    while (idle > 0) {
      if (!ready.empty()) {
        start_attempt(ready.front(), now_ns);
        ready.pop_front();
      } else if (!waiting.empty()) {
        start_attempt(waiting.front(), now_ns);
        waiting.pop_front();
      } else {
        break;
      }
    }
  };
  const auto finish = [&](uint32_t slot, int64_t now_ns) {
    run.sojourn_sum_s += rlab::NsToSeconds(now_ns - orders[slot].arrival_ns);
    free_slots.push_back(slot);
  };

  const auto t0 = std::chrono::steady_clock::now();
  events.Push(std::max<int64_t>(1, rlab::SecondsToNs(arrivals.Exponential(1.0 / kLambda))),
              kArrival, 0);
  while (!events.empty()) {
    const Event e = events.Pop();
    const int64_t now_ns = e.t_ns;
    ++run.events;
    switch (e.type) {
      case kArrival: {
        ++run.arrived;
        uint32_t slot;
        if (free_slots.empty()) {
          slot = static_cast<uint32_t>(orders.size());
          orders.push_back({});
        } else {
          slot = free_slots.back();
          free_slots.pop_back();
        }
        orders[slot] = {now_ns, 0};
        waiting.push_back(slot);
        dispatch(now_ns);
        const int64_t next =
            now_ns + std::max<int64_t>(1, rlab::SecondsToNs(arrivals.Exponential(1.0 / kLambda)));
        if (next < horizon_ns) events.Push(next, kArrival, 0);
        break;
      }
      case kServiceEnd: {
        ++run.attempts;
        ++idle;
        const int attempt = orders[e.slot].attempt;
        if (!retry || !policy.Bernoulli(kFailP)) {
          ++run.completed;
          finish(e.slot, now_ns);
        } else if (attempt == kMaxAttempts) {
          ++run.failed;
          finish(e.slot, now_ns);
        } else {
          const double cap_ns =
              static_cast<double>(backoff_initial_ns) * std::ldexp(1.0, attempt - 1);
          events.Push(now_ns + static_cast<int64_t>(policy.Uniform(0.0, cap_ns)), kSleepEnd,
                      e.slot);
        }
        dispatch(now_ns);
        break;
      }
      case kSleepEnd:
        ready.push_back(e.slot);
        dispatch(now_ns);
        break;
    }
  }
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "mmc";
  double horizon_s = 10'000.0;
  int repeats = 3;
  uint64_t seed = 12345;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--model=", 8) == 0) {
      model = argv[i] + 8;
    } else if (std::strncmp(argv[i], "--horizon=", 10) == 0) {
      horizon_s = std::atof(argv[i] + 10);
    } else if (std::strncmp(argv[i], "--repeats=", 10) == 0) {
      repeats = std::atoi(argv[i] + 10);
    } else if (std::strncmp(argv[i], "--seed=", 7) == 0) {
      seed = std::strtoull(argv[i] + 7, nullptr, 10);
    } else {
      std::fprintf(stderr, "sim_floor: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if ((model != "mmc" && model != "retry") || !(horizon_s > 0) || repeats < 1) {
    std::fprintf(stderr,
                 "usage: sim_floor --model=mmc|retry [--horizon=S > 0] [--repeats=N >= 1] "
                 "[--seed=N]\n");
    return 2;
  }
  Run best;
  double best_rate = 0;
  for (int r = 0; r < repeats; ++r) {
    const Run run = Simulate(model == "retry", horizon_s, seed);
    const double rate = static_cast<double>(run.arrived) / run.seconds;
    if (rate > best_rate) {
      best_rate = rate;
      best = run;
    }
  }
  const double n = static_cast<double>(best.arrived);
  std::printf(
      "{\"name\": \"sim_floor\", \"model\": \"%s\", \"horizon_s\": %.1f, \"arrived\": %lld, "
      "\"completed\": %lld, \"failed\": %lld, \"calls_per_order\": %.4f, \"events\": %lld, "
      "\"mean_sojourn\": %.6f, \"seconds\": %.6f, \"orders_per_s\": %.1f, \"repeats\": %d}\n",
      model.c_str(), horizon_s, static_cast<long long>(best.arrived),
      static_cast<long long>(best.completed), static_cast<long long>(best.failed),
      static_cast<double>(best.attempts) / n, static_cast<long long>(best.events),
      best.sojourn_sum_s / n, best.seconds, best_rate, repeats);
  return best.completed + best.failed == best.arrived ? 0 : 1;
}
