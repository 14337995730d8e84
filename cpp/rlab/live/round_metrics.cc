#include "rlab/live/round_metrics.h"

#include "absl/strings/str_format.h"
#include "rlab/core/clock.h"

namespace rlab {

absl::Status RoundMetrics::Init(MetricsRegistry& registry, const std::vector<std::string>& names,
                                const std::vector<DependencyRuntime>& deps,
                                const std::atomic<int64_t>* wasted_ns) {
  wasted_ns_ = wasted_ns;
  std::vector<std::string> round_names, budget_names;
  for (size_t d = 0; d < deps.size(); ++d) {
    if (!deps[d].rounds()) continue;
    deps_.push_back({d, names[d]});
    round_names.push_back(names[d]);
    if (deps[d].hedger && deps[d].hedger->config().budget_ratio >= 0.0) {
      budget_names.push_back(names[d]);
    }
  }
  if (deps_.empty()) return absl::OkStatus();
  const auto labels = LabelProduct({round_names});
  const std::array<std::pair<const char*, const char*>, 4> counters = {{
      {"rlab_dependency_hedges", "Hedge copies sent (included in the dependency's calls)."},
      {"rlab_dependency_hedges_won", "Calls whose winning copy was a hedge."},
      {"rlab_dependency_hedges_denied", "Hedges the hedge budget refused."},
      {"rlab_dependency_copies_cancelled",
       "Hedge or fan-out copies cancelled once their call was decided without them."},
  }};
  for (size_t k = 0; k < counters.size(); ++k) {
    auto f = registry.AddCounter(counters[k].first, counters[k].second, {"dependency"}, labels);
    if (!f.ok()) return f.status();
    for (size_t i = 0; i < deps_.size(); ++i) deps_[i].counters[k] = &(*f)->at(i);
  }
  auto wasted = registry.AddGauge(
      "rlab_dependency_wasted_attempt_seconds",
      "Server time of copies cancelled while in service (only grows), read when scraped.",
      {"dependency"}, labels);
  if (!wasted.ok()) return wasted.status();
  for (size_t i = 0; i < deps_.size(); ++i) deps_[i].wasted_s = &(*wasted)->at(i);
  if (!budget_names.empty()) {
    auto tokens =
        registry.AddGauge("rlab_hedge_budget_tokens",
                          "Tokens left in the dependency's hedge budget, read when scraped.",
                          {"dependency"}, LabelProduct({budget_names}));
    if (!tokens.ok()) return tokens.status();
    size_t b = 0;
    for (Dep& d : deps_) {
      if (deps[d.index].hedger && deps[d.index].hedger->config().budget_ratio >= 0.0) {
        d.tokens = &(*tokens)->at(b++);
      }
    }
  }
  return absl::OkStatus();
}

void RoundMetrics::Publish(size_t dep, const FlowStats& now, FlowStats& published) {
  if (deps_.empty()) return;
  for (Dep& d : deps_) {
    if (d.index != dep) continue;
    auto push = [](Counter* c, int64_t value, int64_t& before) {
      if (value != before) {
        c->Add(value - before);
        before = value;
      }
    };
    push(d.counters[0], now.hedges, published.hedges);
    push(d.counters[1], now.hedges_won, published.hedges_won);
    push(d.counters[2], now.hedges_denied, published.hedges_denied);
    push(d.counters[3], now.cancelled, published.cancelled);
    return;
  }
}

void RoundMetrics::RefreshGauges(const std::vector<DependencyRuntime>& deps) {
  for (Dep& d : deps_) {
    d.wasted_s->Set(NsToSeconds(wasted_ns_[d.index].load(std::memory_order_relaxed)));
    if (d.tokens != nullptr) d.tokens->Set(deps[d.index].hedger->tokens());
  }
}

void RoundMetrics::FillSeriesCounts(std::vector<SeriesDepCounts>& counts) const {
  for (const Dep& d : deps_) {
    SeriesDepCounts& c = counts[d.index];
    c.hedges = d.counters[0]->value();
    c.hedges_won = d.counters[1]->value();
    c.hedges_denied = d.counters[2]->value();
    c.cancelled = d.counters[3]->value();
    c.wasted_attempt_ns = wasted_ns_[d.index].load(std::memory_order_relaxed);
  }
}

}  // namespace rlab
