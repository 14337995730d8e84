#ifndef RLAB_CORE_METRICS_H_
#define RLAB_CORE_METRICS_H_

// A small metrics registry for the live engine (DESIGN §4): counters, gauges and fixed-bucket
// histograms, updated with single atomic operations from any thread. Every family names its label
// values in full when it is created, so the number of series is fixed by construction: a hot path
// can only pick one of the series that exist (by index), never create one from request data.
// Exposition (Prometheus text, HTTP) is the Python side's job; this side offers snapshots.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "rlab/core/mutex.h"

namespace rlab {

// A monotonically increasing count.
class Counter {
 public:
  // Adds `n` (>= 0; callers never pass negative values).
  void Add(int64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  // Adds `delta` (may be negative).
  void Add(double delta);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Counts of observations at fixed upper bounds, plus their sum and count.
class Histogram {
 public:
  // `bounds` ascending (checked by the registry).
  explicit Histogram(std::vector<double> bounds);
  // Records one observation.
  void Observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket (not cumulative) counts; the last entry is the +Inf bucket.
  std::vector<int64_t> BucketCounts() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  int64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<int64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<double> sum_{0.0};
  std::atomic<int64_t> count_{0};
};

// The kind of a metric family.
enum class MetricType : uint8_t { kCounter = 0, kGauge = 1, kHistogram = 2 };

// One series in a snapshot.
struct SeriesSnapshot {
  std::vector<std::string> label_values;
  double value = 0.0;               // counters and gauges
  std::vector<int64_t> cumulative;  // histograms: counts at or below each bound
  double sum = 0.0;                 // histograms
  int64_t count = 0;                // histograms
};

// One family in a snapshot.
struct FamilySnapshot {
  std::string name;
  std::string help;
  MetricType type = MetricType::kCounter;
  std::vector<std::string> label_names;
  std::vector<double> bounds;  // histograms
  std::vector<SeriesSnapshot> series;
};

// A family of series of type M sharing a name and label names, with every label value tuple
// fixed at creation. Series are addressed by index, in the order they were given.
template <typename M>
class Family {
 public:
  // The series at `index` (in [0, size())).
  M& at(size_t index) { return *series_[index]; }
  size_t size() const { return series_.size(); }
  // The index of the series with these label values, or -1.
  int Find(const std::vector<std::string>& label_values) const {
    for (size_t i = 0; i < label_values_.size(); ++i) {
      if (label_values_[i] == label_values) return static_cast<int>(i);
    }
    return -1;
  }

 private:
  friend class MetricsRegistry;
  std::string name_, help_;
  std::vector<std::string> label_names_;
  std::vector<std::vector<std::string>> label_values_;
  std::vector<std::unique_ptr<M>> series_;
};

// Owns metric families; registration and snapshots are thread-safe, and so is every update.
class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Creates a counter family with one series per entry of `label_values` (each as long as
  // `label_names`; with no label names, pass {{}} for the single series). InvalidArgument on a
  // bad or duplicate name, mismatched label tuples, or duplicate tuples.
  absl::StatusOr<Family<Counter>*> AddCounter(const std::string& name, const std::string& help,
                                              std::vector<std::string> label_names,
                                              std::vector<std::vector<std::string>> label_values);
  // Creates a gauge family (as AddCounter).
  absl::StatusOr<Family<Gauge>*> AddGauge(const std::string& name, const std::string& help,
                                          std::vector<std::string> label_names,
                                          std::vector<std::vector<std::string>> label_values);
  // Creates a histogram family whose series share the ascending, finite `bounds`.
  absl::StatusOr<Family<Histogram>*> AddHistogram(
      const std::string& name, const std::string& help, std::vector<std::string> label_names,
      std::vector<std::vector<std::string>> label_values, std::vector<double> bounds);

  // Every family, in registration order, each read series by series (atomically per value).
  std::vector<FamilySnapshot> Snapshot() const;

 private:
  absl::Status CheckNew(const std::string& name, const std::vector<std::string>& label_names,
                        const std::vector<std::vector<std::string>>& label_values) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  template <typename M, typename Make>
  static std::unique_ptr<Family<M>> MakeFamily(const std::string& name, const std::string& help,
                                               std::vector<std::string> label_names,
                                               std::vector<std::vector<std::string>> label_values,
                                               Make make);

  struct Entry {
    MetricType type;
    std::unique_ptr<Family<Counter>> counters;
    std::unique_ptr<Family<Gauge>> gauges;
    std::unique_ptr<Family<Histogram>> histograms;
  };
  mutable Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
};

// Every combination of the given value lists, first list outermost: for building the label
// tuples of a family from its fixed value sets.
std::vector<std::vector<std::string>> LabelProduct(
    const std::vector<std::vector<std::string>>& values);

}  // namespace rlab

#endif  // RLAB_CORE_METRICS_H_
