#include "rlab/model/service_graph.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "rlab/core/clock.h"
#include "rlab/core/validate.h"

namespace rlab {

std::string ServiceDependencyPath(const ServiceConfig& service, const DependencyConfig& dep) {
  return absl::StrFormat("services[%s].dependencies[%s]", service.name, dep.name);
}

absl::Status ValidateUniqueNames(std::string_view list, const std::vector<std::string>& names) {
  for (size_t i = 0; i < names.size(); ++i) {
    const size_t j = std::find(names.begin(), names.end(), names[i]) - names.begin();
    if (j == i) continue;
    return Invalid(absl::StrFormat("%s[%d].name \"%s\" is already used by %s[%d]", list, i,
                                   names[i], list, j));
  }
  return absl::OkStatus();
}

absl::Status ValidateDependencyList(const std::vector<DependencyConfig>& deps) {
  if (deps.empty() || deps.size() > kMaxDependencies) {
    return Invalid(absl::StrFormat("dependencies must have between 1 and %d entries, got %d",
                                   kMaxDependencies, deps.size()));
  }
  std::vector<std::string> names;
  for (const DependencyConfig& d : deps) names.push_back(d.name);
  return ValidateUniqueNames("dependencies", names);
}

absl::Status ValidateServiceRules(const ServiceConfig& s) {
  return FirstError({ValidateName("name", s.name), ValidateDependencyList(s.dependencies)});
}

RLAB_TABLE(ServiceSchema, ServiceConfig, "Service", "", &ValidateServiceRules,
           schema::Required(RLAB_STRING(name, "letters, digits and underscores")),
           RLAB_INT(workers, 1, 100'000, "workers", "the worker pool"),
           RLAB_INT(queue_capacity, 0, 10'000'000, "requests", "the bounded job queue"),
           RLAB_SECONDS(deadline, 0, kMaxDurationS, CC,
                        "a request's own deadline; 0: the caller's time only"),
           RLAB_LIST(dependencies, DependencySchema, true, "called in order by each request"),
           RLAB_CONFIG(intake, IntakeSchema, "its own overload control"));

absl::Status ValidateServiceGraph(const ScenarioConfig& config) {
  const auto& services = config.services;
  const int n = static_cast<int>(services.size());
  if (n > kMaxServices) {
    return Invalid(
        absl::StrFormat("services must have at most %d entries, got %d", kMaxServices, n));
  }
  std::vector<std::string> names;
  for (const ServiceConfig& svc : services) names.push_back(svc.name);
  if (absl::Status s = ValidateUniqueNames("services", names); !s.ok()) return s;
  // The callers' edges (the root's in edges[n]), checking unknown names, root first.
  std::vector<std::vector<int>> edges(n + 1);
  for (int i = -1; i < n; ++i) {
    for (const DependencyConfig& d : i < 0 ? config.dependencies : services[i].dependencies) {
      if (d.service.empty()) continue;
      const std::string path = i < 0 ? d.name : ServiceDependencyPath(services[i], d);
      const int to = ServiceIndexOf(config, d);
      if (to < 0) {
        return Invalid(absl::StrFormat("%s.service: unknown service '%s'; known: %s", path,
                                       d.service, n == 0 ? "(none)" : absl::StrJoin(names, ", ")));
      }
      edges[i < 0 ? n : i].push_back(to);
    }
  }
  // Depth-first from the root (iterative: a chain of 256 services is fine either way): a
  // service met again on the current path closes a cycle.
  std::vector<char> seen(n, 0);
  std::vector<std::pair<int, size_t>> stack = {{n, 0}};  // a caller and its next edge
  while (!stack.empty()) {
    auto& [at, next] = stack.back();
    if (next == edges[at].size()) {
      stack.pop_back();
      continue;
    }
    const int to = edges[at][next++];
    if (std::any_of(stack.begin(), stack.end(), [&](const auto& e) { return e.first == to; })) {
      std::vector<std::string> cycle;
      for (const auto& e : stack) cycle.push_back(e.first == n ? "root" : names[e.first]);
      cycle.push_back(names[to]);
      return Invalid(absl::StrFormat(
          "services form a cycle: %s (a service must not call itself, directly or through "
          "others)",
          absl::StrJoin(cycle, " → ")));
    }
    if (!seen[to]) stack.emplace_back(to, 0);
    seen[to] = 1;
  }
  const auto lost = std::find(seen.begin(), seen.end(), 0) - seen.begin();
  if (lost == n) return absl::OkStatus();
  return Invalid(absl::StrFormat(
      "services[%s] is unreachable: no dependency of the scenario, or of a service it calls, "
      "has service='%s'",
      names[lost], names[lost]));
}

int ServiceIndexOf(const ScenarioConfig& config, const DependencyConfig& dep) {
  if (dep.service.empty()) return -1;
  for (size_t i = 0; i < config.services.size(); ++i) {
    if (config.services[i].name == dep.service) return static_cast<int>(i);
  }
  return -1;
}

std::vector<FlatDependency> FlatDependencies(const ScenarioConfig& config) {
  std::vector<FlatDependency> out;
  for (const DependencyConfig& d : config.dependencies) out.push_back({&d, 0, d.name});
  for (size_t s = 0; s < config.services.size(); ++s) {
    const ServiceConfig& svc = config.services[s];
    for (const DependencyConfig& d : svc.dependencies) {
      out.push_back({&d, static_cast<int>(s) + 1, absl::StrFormat("%s.%s", svc.name, d.name)});
    }
  }
  return out;
}

}  // namespace rlab
