#ifndef RLAB_CORE_HISTOGRAM_H_
#define RLAB_CORE_HISTOGRAM_H_

#include <array>
#include <cstdint>

namespace rlab {

// A log-linear histogram of non-negative integer values (e.g. latencies in nanoseconds): each
// power of two is split into 128 equal sub-buckets, so any quantile is reported within 0.8% of
// the true value, in fixed memory (64 KiB) whatever the number of samples.
// Not thread-safe.
class LogHistogram {
 public:
  LogHistogram() { counts_.fill(0); }

  // Adds one value (negative values count as 0). Inline: the simulator adds three per order.
  void Add(int64_t value) {
    const uint64_t v = value < 0 ? 0 : static_cast<uint64_t>(value);
    ++counts_[Index(v)];
    ++count_;
    sum_ += v;
    if (static_cast<int64_t>(v) > max_) max_ = static_cast<int64_t>(v);
    if (static_cast<int64_t>(v) < min_) min_ = static_cast<int64_t>(v);
  }
  // Adds every sample of `other`.
  void Merge(const LogHistogram& other);
  // The value below which a fraction `q` in [0, 1] of samples lie (0 when empty).
  int64_t Quantile(double q) const;

  // How many samples are <= `value`, exact up to the bucket holding `value` (used for fixed
  // Prometheus bucket bounds).
  int64_t CountAtOrBelow(int64_t value) const;

  int64_t count() const { return count_; }
  int64_t max() const { return max_; }
  int64_t min() const { return count_ ? min_ : 0; }
  // The exact mean of the samples added.
  double mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0.0; }

 private:
  static constexpr int kSubBits = 7;
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kBuckets = (64 - kSubBits + 1) * kSub;
  static int Index(uint64_t v) {
    // Values below kSub have their own bucket each; above, the top kSubBits + 1 bits select one.
    if (v < static_cast<uint64_t>(kSub)) return static_cast<int>(v);
    const int msb = 63 - __builtin_clzll(v);
    const int shift = msb - kSubBits;
    return (shift + 1) * kSub + static_cast<int>((v >> shift) - kSub);
  }
  static int64_t Midpoint(int index);

  std::array<int64_t, kBuckets> counts_;
  int64_t count_ = 0;
  __int128 sum_ = 0;
  int64_t max_ = 0;
  int64_t min_ = INT64_MAX;
};

}  // namespace rlab

#endif  // RLAB_CORE_HISTOGRAM_H_
