#include "rlab/core/sliding_window.h"

#include <algorithm>

#include "rlab/core/invariant.h"

namespace rlab {
namespace {

// Floor division for possibly negative times.
int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

}  // namespace

TimeWindowCounter::TimeWindowCounter(int64_t window_ns, int num_buckets)
    : window_ns_(window_ns),
      bucket_ns_(std::max<int64_t>(1, window_ns / std::max(1, num_buckets))),
      buckets_(std::max(1, num_buckets)),
      epochs_(std::max(1, num_buckets), INT64_MIN) {}

void TimeWindowCounter::AdvanceTo(int64_t now_ns) {
  const int64_t epoch = FloorDiv(now_ns, bucket_ns_);
  if (epoch <= current_epoch_) return;  // same bucket, or time went back: keep counting here
  const int64_t n = static_cast<int64_t>(buckets_.size());
  // Expire every slot whose period falls out of the window; at most n slots need touching.
  const int64_t first_live = epoch - n + 1;
  for (int64_t i = 0; i < n; ++i) {
    if (epochs_[i] != INT64_MIN && epochs_[i] < first_live) {
      for (int c = 0; c < kCounters; ++c) totals_[c] -= buckets_[i][c];
      buckets_[i] = Counts{};
      epochs_[i] = INT64_MIN;
    }
  }
  current_epoch_ = epoch;
  // The totals are the sum of the live buckets. Recounted only when the window moves (already
  // O(buckets) here), so the check keeps the cost of the window's own bookkeeping.
  if constexpr (kInvariantsOn) {
    Counts sum{};
    for (const Counts& b : buckets_) {
      for (int c = 0; c < kCounters; ++c) sum[c] += b[c];
    }
    RLAB_INVARIANT(sum == totals_, "time window totals (%d, %d, %d) != bucket sums (%d, %d, %d)",
                   totals_[0], totals_[1], totals_[2], sum[0], sum[1], sum[2]);
  }
}

void TimeWindowCounter::Add(int64_t now_ns, int index, int64_t delta) {
  Counts d{};
  d[index] = delta;
  AddAll(now_ns, d);
}

void TimeWindowCounter::AddAll(int64_t now_ns, const Counts& delta) {
  AdvanceTo(now_ns);
  const int64_t n = static_cast<int64_t>(buckets_.size());
  const int64_t slot = ((current_epoch_ % n) + n) % n;
  if (epochs_[slot] != current_epoch_) {
    for (int c = 0; c < kCounters; ++c) totals_[c] -= buckets_[slot][c];
    buckets_[slot] = Counts{};
    epochs_[slot] = current_epoch_;
  }
  for (int c = 0; c < kCounters; ++c) {
    buckets_[slot][c] += delta[c];
    totals_[c] += delta[c];
  }
}

const TimeWindowCounter::Counts& TimeWindowCounter::Totals(int64_t now_ns) {
  AdvanceTo(now_ns);
  return totals_;
}

void TimeWindowCounter::Reset() {
  std::fill(buckets_.begin(), buckets_.end(), Counts{});
  std::fill(epochs_.begin(), epochs_.end(), INT64_MIN);
  totals_ = Counts{};
  current_epoch_ = INT64_MIN;
}

CountWindow::CountWindow(int size) : ring_(std::max(1, size), 0) {}

void CountWindow::Add(bool failure, bool slow) {
  const int size = static_cast<int>(ring_.size());
  if (calls_ == size) {
    const uint8_t old = ring_[next_];
    failures_ -= old & 1;
    slow_ -= (old >> 1) & 1;
  } else {
    ++calls_;
  }
  ring_[next_] = static_cast<uint8_t>((failure ? 1 : 0) | (slow ? 2 : 0));
  failures_ += failure ? 1 : 0;
  slow_ += slow ? 1 : 0;
  next_ = (next_ + 1) % size;
  RLAB_INVARIANT(
      0 <= failures_ && failures_ <= calls_ && 0 <= slow_ && slow_ <= calls_ && calls_ <= size,
      "count window: %d calls (size %d), %d failures, %d slow", calls_, size, failures_, slow_);
  // Once per turn of the ring (amortized O(1)): the counts are the ring's.
  if (kInvariantsOn && next_ == 0) {
    int failures = 0, slow_calls = 0;
    for (uint8_t r : ring_) {
      failures += r & 1;
      slow_calls += (r >> 1) & 1;
    }
    RLAB_INVARIANT(failures == failures_ && slow_calls == slow_,
                   "count window: %d failures and %d slow counted, the ring holds %d and %d",
                   failures_, slow_, failures, slow_calls);
  }
}

void CountWindow::Reset() {
  std::fill(ring_.begin(), ring_.end(), 0);
  next_ = calls_ = failures_ = slow_ = 0;
}

}  // namespace rlab
