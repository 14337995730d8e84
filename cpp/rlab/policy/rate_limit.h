#ifndef RLAB_POLICY_RATE_LIMIT_H_
#define RLAB_POLICY_RATE_LIMIT_H_

// Rate limiting: admit at most `permits` per `period`, in one of two modes.
//
//   smooth: permits are spaced evenly, one every period / permits, with up to `burst` saved up
//           while idle (failsafe-go's SmoothRateLimiter, with a burst as in a token bucket).
//           Implemented as GCRA: a theoretical arrival time `tat`; a permit is free when
//           tat - now <= (burst - 1) * interval, and taking it moves tat to max(tat, now) +
//           interval.
//   bursty: all `permits` become available at the start of each period, and unused ones are not
//           carried over (Resilience4j's AtomicRateLimiter, failsafe-go's BurstyRateLimiter).
//
// Reserve(now, max_wait) takes a permit that may lie in the future and answers how long to wait
// for it; a wait longer than max_wait is refused and changes nothing. Pure: time comes in as an
// argument; the caller sleeps. KeyedRateLimiter keeps one state per key (per tenant) for at most
// `max_keys` keys, evicting the least recently used one.

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rlab/core/mutex.h"

namespace rlab {

enum class RateLimitMode : uint8_t { kSmooth = 0, kBursty = 1 };

// "smooth" or "bursty".
std::string_view RateLimitModeName(RateLimitMode mode);
absl::StatusOr<RateLimitMode> ParseRateLimitMode(std::string_view name);

// The policy's parameters: built only by ToRateLimiterParams (rlab/model/limits.h) from a
// RateLimitConfig its field table validated, so the ranges below hold by construction
// (tests/cpp/limits_test.cc checks them at the table's extremes).
struct RateLimiterParams {
  RateLimitMode mode = RateLimitMode::kSmooth;
  int64_t permits = 10;               // per period, in [1, 1e9]
  int64_t period_ns = 1'000'000'000;  // in (0, 1e6] s, and >= permits nanoseconds
  int64_t burst = 1;                  // smooth mode: permits saved up while idle, [1, 1e9]
  int64_t max_keys = 10'000;          // keyed limiter: keys kept, in [1, 1e7]
};

// The state of one rate (one key). Not thread-safe; the limiters below serialize it.
class RateState {
 public:
  RateState() = default;
  // A permit at `now_ns`, if one is free.
  bool TryAcquire(const RateLimiterParams& c, int64_t now_ns);
  // The wait (>= 0) for a permit reserved at `now_ns`, or nullopt (nothing changed) when it
  // would exceed `max_wait_ns`.
  std::optional<int64_t> Reserve(const RateLimiterParams& c, int64_t now_ns, int64_t max_wait_ns);
  // Permits free at `now_ns` without waiting (negative: reserved ahead, bursty mode).
  int64_t Available(const RateLimiterParams& c, int64_t now_ns) const;

 private:
  // The wait for one permit at `now_ns` (0 if free now), and the state after taking it.
  int64_t WaitFor(const RateLimiterParams& c, int64_t now_ns, int64_t* tat, int64_t* cycle,
                  int64_t* available) const;

  bool started_ = false;
  int64_t tat_ns_ = 0;     // smooth: theoretical arrival time of the next permit
  int64_t cycle_ = 0;      // bursty: the period index the count belongs to
  int64_t available_ = 0;  // bursty: permits left in that period (negative: reserved ahead)
};

struct RateLimitStats {
  int64_t granted = 0;   // at once
  int64_t reserved = 0;  // with a wait > 0
  int64_t rejected = 0;
  int64_t keys = 0;       // keyed: keys held now
  int64_t evictions = 0;  // keyed: keys dropped to stay within max_keys
};

// One rate. Thread-safe.
class RateLimiter {
 public:
  explicit RateLimiter(const RateLimiterParams& config) : config_(config) {}

  bool TryAcquire(int64_t now_ns);
  std::optional<int64_t> Reserve(int64_t now_ns, int64_t max_wait_ns);
  int64_t Available(int64_t now_ns);
  RateLimitStats Stats();
  const RateLimiterParams& config() const { return config_; }

 private:
  const RateLimiterParams config_;
  Mutex mu_;
  RateState state_ ABSL_GUARDED_BY(mu_);
  RateLimitStats stats_ ABSL_GUARDED_BY(mu_);
};

// One rate per key, for at most max_keys keys: the least recently used key is evicted to make
// room (it comes back with a fresh allowance: memory stays bounded at the price of forgetting
// the oldest key's debt, counted in `evictions`). Thread-safe.
class KeyedRateLimiter {
 public:
  explicit KeyedRateLimiter(const RateLimiterParams& config) : config_(config) {}

  bool TryAcquire(std::string_view key, int64_t now_ns);
  std::optional<int64_t> Reserve(std::string_view key, int64_t now_ns, int64_t max_wait_ns);
  int64_t Available(std::string_view key, int64_t now_ns);
  RateLimitStats Stats();
  const RateLimiterParams& config() const { return config_; }

 private:
  struct Entry {
    RateState state;
    std::list<std::string>::iterator lru;
  };
  Entry& Touch(std::string_view key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RateLimiterParams config_;
  Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);  // front: most recently used
  RateLimitStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rlab

#endif  // RLAB_POLICY_RATE_LIMIT_H_
