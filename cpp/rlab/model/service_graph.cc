#include "rlab/model/service_graph.h"

#include <string_view>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "rlab/core/clock.h"
#include "rlab/core/validate.h"

namespace rlab {
namespace {

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

bool UsableName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
      return false;
    }
  }
  return true;
}

// Whether a fault model says nothing a call to a service could honour (the Python Dependency
// checks that it is exactly the default; here, what would be silently ignored).
bool DefaultFaults(const FaultsConfig& f) {
  return f.failure_rate == 0.0 && f.phases.empty() && f.ambiguous_rate == 0.0 &&
         f.capacity.max_in_service == 0;
}

absl::Status CheckCaller(const std::string& path, const DependencyConfig& d) {
  if (d.service.empty()) return absl::OkStatus();
  const char* bad = !DefaultFaults(d.faults) ? "faults"
                    : d.replicas.has_value() ? "replicas"
                    : d.charges              ? "charges"
                                             : nullptr;
  if (bad == nullptr) return absl::OkStatus();
  return Invalid(absl::StrFormat(
      "%s.%s must keep its default when %s.service is set (service='%s': the service's own "
      "dependencies carry faults, replicas and charges)",
      path, bad, path, d.service));
}

}  // namespace

std::string ServiceDependencyPath(const ServiceConfig& service, const DependencyConfig& dep) {
  return absl::StrFormat("services[%s].dependencies[%s]", service.name, dep.name);
}

absl::Status ValidateServiceRules(const ServiceConfig& s) {
  if (!UsableName(s.name)) {
    return Invalid(absl::StrFormat(
        "name must contain only letters, digits and underscores, got \"%s\"", s.name));
  }
  const size_t n = s.dependencies.size();
  if (n < 1 || n > kMaxDependencies) {
    return Invalid(absl::StrFormat("dependencies must have between 1 and %d entries, got %d",
                                   kMaxDependencies, n));
  }
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (s.dependencies[j].name == s.dependencies[i].name) {
        return Invalid(absl::StrFormat("dependencies[%d].name \"%s\" is already used by "
                                       "dependencies[%d]",
                                       i, s.dependencies[i].name, j));
      }
    }
  }
  return absl::OkStatus();
}

const ConfigSchema<ServiceConfig>& ServiceSchema() {
  using C = ServiceConfig;
  constexpr Bound kC = Bound::kClosed;
  static const FieldSpec<C> kFields[] = {
      schema::Required(schema::String<&C::name>("name", "letters, digits and underscores")),
      schema::Int<&C::workers>("workers", 1, 100'000, "workers", "the worker pool"),
      schema::Int<&C::queue_capacity>("queue_capacity", 0, 10'000'000, "requests",
                                      "the bounded job queue"),
      schema::Seconds<&C::deadline_ns>("deadline", 0, kMaxDurationS, kC, kC,
                                       "a request's own deadline; 0: the caller's time only"),
      schema::List<&C::dependencies, &DependencySchema>("dependencies", /*by_name=*/true,
                                                        "called in order by each request"),
      schema::Config<&C::intake, &IntakeSchema>("intake", "its own overload control"),
  };
  static const ConfigSchema<C> kSchema{"Service", kFields, "", &ValidateServiceRules};
  return kSchema;
}

absl::Status ValidateServiceGraph(const ScenarioConfig& config) {
  const auto& services = config.services;
  const int n = static_cast<int>(services.size());
  if (n > kMaxServices) {
    return Invalid(
        absl::StrFormat("services must have at most %d entries, got %d", kMaxServices, n));
  }
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < i; ++j) {
      if (services[j].name == services[i].name) {
        return Invalid(absl::StrFormat("services[%d].name \"%s\" is already used by services[%d]",
                                       i, services[i].name, j));
      }
    }
    names.push_back(services[i].name);
  }
  const std::string known = names.empty() ? "(none)" : absl::StrJoin(names, ", ");
  auto index_of = [&](const std::string& name) {
    for (int i = 0; i < n; ++i) {
      if (names[i] == name) return i;
    }
    return -1;
  };
  // Unknown names and callers with a fault model, root first.
  std::vector<std::vector<int>> edges(n);
  std::vector<int> root_edges;
  auto check = [&](const std::string& path, const DependencyConfig& d,
                   std::vector<int>& out) -> absl::Status {
    if (d.service.empty()) return absl::OkStatus();
    const int t = index_of(d.service);
    if (t < 0) {
      return Invalid(
          absl::StrFormat("%s.service: unknown service '%s'; known: %s", path, d.service, known));
    }
    out.push_back(t);
    return CheckCaller(path, d);
  };
  for (const DependencyConfig& d : config.dependencies) {
    absl::Status s = check(d.name, d, root_edges);
    if (!s.ok()) return s;
  }
  for (int i = 0; i < n; ++i) {
    for (const DependencyConfig& d : services[i].dependencies) {
      absl::Status s = check(ServiceDependencyPath(services[i], d), d, edges[i]);
      if (!s.ok()) return s;
    }
  }
  // Depth-first from the root (iterative: a chain of 256 services is fine either way): a
  // service met again on the current path closes a cycle.
  std::vector<char> seen(n, 0);
  std::vector<int> path;
  std::vector<size_t> next_edge;
  for (int start : root_edges) {
    if (seen[start]) continue;
    seen[start] = 1;
    path = {start};
    next_edge = {0};
    while (!path.empty()) {
      const int at = path.back();
      if (next_edge.back() == edges[at].size()) {
        path.pop_back();
        next_edge.pop_back();
        continue;
      }
      const int to = edges[at][next_edge.back()++];
      for (size_t k = 0; k < path.size(); ++k) {
        if (path[k] != to) continue;
        std::vector<std::string> cycle = {"root"};
        for (int v : path) cycle.push_back(names[v]);
        cycle.push_back(names[to]);
        return Invalid(absl::StrFormat(
            "services form a cycle: %s (a service must not call itself, directly or through "
            "others)",
            absl::StrJoin(cycle, " → ")));
      }
      if (seen[to]) continue;
      seen[to] = 1;
      path.push_back(to);
      next_edge.push_back(0);
    }
  }
  for (int i = 0; i < n; ++i) {
    if (!seen[i]) {
      return Invalid(absl::StrFormat(
          "services[%s] is unreachable: no dependency of the scenario, or of a service it "
          "calls, has service='%s'",
          names[i], names[i]));
    }
  }
  return absl::OkStatus();
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
