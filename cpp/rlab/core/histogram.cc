#include "rlab/core/histogram.h"

#include <algorithm>
#include <cmath>

namespace rlab {

int64_t LogHistogram::Midpoint(int index) {
  if (index < kSub) return index;
  const int shift = index / kSub - 1;
  const uint64_t mantissa = static_cast<uint64_t>(index % kSub + kSub);
  const uint64_t low = mantissa << shift;
  const uint64_t width = uint64_t{1} << shift;
  return static_cast<int64_t>(low + width / 2);
}

void LogHistogram::Merge(const LogHistogram& other) {
  for (int i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  max_ = std::max(max_, other.max_);
  min_ = std::min(min_, other.min_);
}

int64_t LogHistogram::Quantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // The rank of the sample at quantile q (1-based, nearest-rank definition).
  const int64_t rank = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(q * count_)));
  int64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(Midpoint(i), min(), max_);
  }
  return max_;
}

int64_t LogHistogram::CountAtOrBelow(int64_t value) const {
  if (value < 0) return 0;
  const int last = Index(static_cast<uint64_t>(value));
  int64_t n = 0;
  for (int i = 0; i <= last; ++i) n += counts_[i];
  return n;
}

}  // namespace rlab
