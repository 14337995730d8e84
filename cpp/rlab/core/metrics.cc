#include "rlab/core/metrics.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace rlab {
namespace {

void AtomicAdd(std::atomic<double>& a, double delta) {
  double cur = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(cur, cur + delta, std::memory_order_relaxed)) {
  }
}

bool ValidName(const std::string& name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == ':';
  });
}

}  // namespace

template <typename M, typename Make>
std::unique_ptr<Family<M>> MetricsRegistry::MakeFamily(
    const std::string& name, const std::string& help, std::vector<std::string> label_names,
    std::vector<std::vector<std::string>> label_values, Make make) {
  auto f = std::make_unique<Family<M>>();
  f->name_ = name;
  f->help_ = help;
  f->label_names_ = std::move(label_names);
  f->label_values_ = std::move(label_values);
  for (size_t i = 0; i < f->label_values_.size(); ++i) f->series_.push_back(make());
  return f;
}

void Gauge::Add(double delta) { AtomicAdd(value_, delta); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<int64_t>[]>(bounds_.size() + 1)) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  // Prometheus buckets are "less than or equal": the first bound >= v.
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, v);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<int64_t> Histogram::BucketCounts() const {
  std::vector<int64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

absl::Status MetricsRegistry::CheckNew(
    const std::string& name, const std::vector<std::string>& label_names,
    const std::vector<std::vector<std::string>>& label_values) const {
  if (!ValidName(name))
    return absl::InvalidArgumentError(absl::StrFormat("bad metric name %s", name));
  for (const Entry& e : entries_) {
    const std::string& other = e.counters ? e.counters->name_
                               : e.gauges ? e.gauges->name_
                                          : e.histograms->name_;
    if (other == name) {
      return absl::InvalidArgumentError(absl::StrFormat("duplicate metric name %s", name));
    }
  }
  for (const std::string& l : label_names) {
    if (!ValidName(l) || l.find(':') != std::string::npos || l == "le") {
      return absl::InvalidArgumentError(absl::StrFormat("%s: bad label name %s", name, l));
    }
  }
  if (label_values.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: no series", name));
  }
  std::set<std::vector<std::string>> seen;
  for (const auto& v : label_values) {
    if (v.size() != label_names.size()) {
      return absl::InvalidArgumentError(absl::StrFormat("%s: %d label values for %d label names",
                                                        name, v.size(), label_names.size()));
    }
    if (!seen.insert(v).second) {
      return absl::InvalidArgumentError(absl::StrFormat("%s: duplicate label values", name));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Family<Counter>*> MetricsRegistry::AddCounter(
    const std::string& name, const std::string& help, std::vector<std::string> label_names,
    std::vector<std::vector<std::string>> label_values) {
  MutexLock lock(&mu_);
  if (absl::Status s = CheckNew(name, label_names, label_values); !s.ok()) return s;
  Entry e{MetricType::kCounter, nullptr, nullptr, nullptr};
  e.counters = MakeFamily<Counter>(name, help, std::move(label_names), std::move(label_values),
                                   [] { return std::make_unique<Counter>(); });
  Family<Counter>* f = e.counters.get();
  entries_.push_back(std::move(e));
  return f;
}

absl::StatusOr<Family<Gauge>*> MetricsRegistry::AddGauge(
    const std::string& name, const std::string& help, std::vector<std::string> label_names,
    std::vector<std::vector<std::string>> label_values) {
  MutexLock lock(&mu_);
  if (absl::Status s = CheckNew(name, label_names, label_values); !s.ok()) return s;
  Entry e{MetricType::kGauge, nullptr, nullptr, nullptr};
  e.gauges = MakeFamily<Gauge>(name, help, std::move(label_names), std::move(label_values),
                               [] { return std::make_unique<Gauge>(); });
  Family<Gauge>* f = e.gauges.get();
  entries_.push_back(std::move(e));
  return f;
}

absl::StatusOr<Family<Histogram>*> MetricsRegistry::AddHistogram(
    const std::string& name, const std::string& help, std::vector<std::string> label_names,
    std::vector<std::vector<std::string>> label_values, std::vector<double> bounds) {
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: bounds must be finite and strictly ascending", name));
    }
  }
  MutexLock lock(&mu_);
  if (absl::Status s = CheckNew(name, label_names, label_values); !s.ok()) return s;
  Entry e{MetricType::kHistogram, nullptr, nullptr, nullptr};
  e.histograms = MakeFamily<Histogram>(name, help, std::move(label_names), std::move(label_values),
                                       [&bounds] { return std::make_unique<Histogram>(bounds); });
  Family<Histogram>* f = e.histograms.get();
  entries_.push_back(std::move(e));
  return f;
}

std::vector<FamilySnapshot> MetricsRegistry::Snapshot() const {
  std::vector<FamilySnapshot> out;
  MutexLock lock(&mu_);
  out.reserve(entries_.size());
  for (const Entry& e : entries_) {
    FamilySnapshot s;
    s.type = e.type;
    auto fill = [&s](const auto& fam, auto value) {
      s.name = fam.name_;
      s.help = fam.help_;
      s.label_names = fam.label_names_;
      for (size_t i = 0; i < fam.series_.size(); ++i) {
        SeriesSnapshot series;
        series.label_values = fam.label_values_[i];
        value(*fam.series_[i], series);
        s.series.push_back(std::move(series));
      }
    };
    switch (e.type) {
      case MetricType::kCounter:
        fill(*e.counters,
             [](const Counter& c, SeriesSnapshot& x) { x.value = static_cast<double>(c.value()); });
        break;
      case MetricType::kGauge:
        fill(*e.gauges, [](const Gauge& g, SeriesSnapshot& x) { x.value = g.value(); });
        break;
      case MetricType::kHistogram:
        s.bounds = e.histograms->series_.front()->bounds();
        fill(*e.histograms, [](const Histogram& h, SeriesSnapshot& x) {
          // The count is the buckets' total, not count(): with Observe running concurrently the
          // two could differ, and the +Inf bucket must never be below a finite one.
          const std::vector<int64_t> per = h.BucketCounts();
          int64_t run = 0;
          for (size_t i = 0; i + 1 < per.size(); ++i) {
            run += per[i];
            x.cumulative.push_back(run);
          }
          x.count = run + per.back();
          x.sum = h.sum();
        });
        break;
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<std::vector<std::string>> LabelProduct(
    const std::vector<std::vector<std::string>>& values) {
  std::vector<std::vector<std::string>> out = {{}};
  for (const auto& list : values) {
    std::vector<std::vector<std::string>> next;
    for (const auto& prefix : out) {
      for (const std::string& v : list) {
        next.push_back(prefix);
        next.back().push_back(v);
      }
    }
    out = std::move(next);
  }
  return out;
}

}  // namespace rlab
