#ifndef RLAB_CORE_SLIDING_WINDOW_H_
#define RLAB_CORE_SLIDING_WINDOW_H_

#include <array>
#include <cstdint>
#include <vector>

namespace rlab {

// Counts over the last `window_ns` of time, kept in `num_buckets` equal buckets so that memory and
// time per operation are bounded. A bucket expires whole: the window covers between
// window_ns − bucket_ns and window_ns of history. Time is passed in; never read.
// Not thread-safe: the owning policy locks around it.
class TimeWindowCounter {
 public:
  static constexpr int kCounters = 3;
  using Counts = std::array<int64_t, kCounters>;

  // `window_ns` > 0 and 1 <= `num_buckets` <= window_ns (validated by the owner's config).
  TimeWindowCounter(int64_t window_ns, int num_buckets);

  // Adds `delta` to counter `index` at time `now_ns`.
  void Add(int64_t now_ns, int index, int64_t delta = 1);
  // Adds a whole set of deltas at time `now_ns`.
  void AddAll(int64_t now_ns, const Counts& delta);
  // The totals over the window ending at `now_ns`.
  const Counts& Totals(int64_t now_ns);
  // Forgets everything.
  void Reset();

  int64_t window_ns() const { return window_ns_; }

 private:
  void AdvanceTo(int64_t now_ns);

  int64_t window_ns_;
  int64_t bucket_ns_;
  std::vector<Counts> buckets_;
  std::vector<int64_t> epochs_;  // which bucket period each slot currently holds
  int64_t current_epoch_ = INT64_MIN;
  Counts totals_{};
};

// Outcomes of the last `size` calls (a ring buffer), with running sums: the count-based window.
class CountWindow {
 public:
  explicit CountWindow(int size);

  // Records one call; the oldest falls out once the window is full.
  void Add(bool failure, bool slow);
  int calls() const { return calls_; }
  int failures() const { return failures_; }
  int slow() const { return slow_; }
  void Reset();

 private:
  std::vector<uint8_t> ring_;  // bit 0: failure, bit 1: slow
  int next_ = 0;
  int calls_ = 0;
  int failures_ = 0;
  int slow_ = 0;
};

}  // namespace rlab

#endif  // RLAB_CORE_SLIDING_WINDOW_H_
