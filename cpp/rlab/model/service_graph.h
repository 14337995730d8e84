#ifndef RLAB_MODEL_SERVICE_GRAPH_H_
#define RLAB_MODEL_SERVICE_GRAPH_H_

// Service graphs: the scenario is the root service; `ScenarioConfig::services` are the other
// tiers, called by dependencies whose `service` names one. This file checks the graph as a
// whole and resolves names to indices for the engines.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "rlab/model/scenario.h"

namespace rlab {

// The most services a scenario may declare (the root not counted).
inline constexpr int kMaxServices = 256;

// "services[<service>].dependencies[<dependency>]": how errors and paths name a service's
// dependency.
std::string ServiceDependencyPath(const ServiceConfig& service, const DependencyConfig& dep);

// The field table of ServiceConfig (Python: rl.Service; its dependencies named by name) and its
// rules: a name usable in paths, and ValidateDependencyList.
const ConfigSchema<ServiceConfig>& ServiceSchema();
absl::Status ValidateServiceRules(const ServiceConfig& service);

// A tier's dependencies: 1 to kMaxDependencies of them, with unique names.
absl::Status ValidateDependencyList(const std::vector<DependencyConfig>& deps);

// The first of `names` (the elements of the list field `list`) that an earlier one already has,
// as an error naming both ("dependencies[2].name \"a\" is already used by dependencies[0]").
absl::Status ValidateUniqueNames(std::string_view list, const std::vector<std::string>& names);

// The graph as a whole: unique service names, no unknown service name, no cycle (named, e.g.
// "root → a → b → a"), every service reachable from the root, and a dependency that calls a
// service has no fault model of its own to speak of (default faults, no replicas, no charges).
absl::Status ValidateServiceGraph(const ScenarioConfig& config);

// The index in config.services of the service `dep` calls; -1 for a leaf. `config` must be
// valid.
int ServiceIndexOf(const ScenarioConfig& config, const DependencyConfig& dep);

// Every tier's dependencies in one list, root first, then config.services in order: how the
// simulated engine and its result index dependencies. `tier` is 0 for the root, s + 1 for
// config.services[s]; `label` is the dependency's name at the root, "<service>.<name>" in a
// service (time series columns, result rows).
struct FlatDependency {
  const DependencyConfig* config;
  int tier;
  std::string label;
};
std::vector<FlatDependency> FlatDependencies(const ScenarioConfig& config);

}  // namespace rlab

#endif  // RLAB_MODEL_SERVICE_GRAPH_H_
