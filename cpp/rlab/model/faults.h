#ifndef RLAB_MODEL_FAULTS_H_
#define RLAB_MODEL_FAULTS_H_

// The dependency fault model: what one attempt at a dependency does — how long the server works
// on it, and whether it succeeds, fails (and how), hangs, or commits while losing its answer.
// Pure: time and random draws come in; engines own the server's waiting line and the clock.

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "rlab/core/clock.h"
#include "rlab/core/outcome.h"
#include "rlab/core/rng.h"
#include "rlab/core/schema.h"
#include "rlab/core/validate.h"
#include "rlab/model/scenario.h"

namespace rlab {

// The cap on every sampled duration and service time (kMaxDurationS, about 11.6 days). A
// heavy-tailed draw times a multiplier can exceed the int64 range; capped, `now + sample` can
// never overflow, and a call that takes longer than any experiment is as good as infinite.
inline constexpr int64_t kMaxSampleNs = static_cast<int64_t>(kMaxDurationS) * kNsPerSecond;

// The uniform draws one SampleNs consumes, whatever the distribution: a fixed count keeps the
// draws that follow a sample in place when the distribution changes (common random numbers
// across the points of a sweep).
inline constexpr int kDrawsPerSample = 3;

// The uniform draws one FaultModel::Draw consumes (failure, kind, ambiguity, then a sample).
inline constexpr int kDrawsPerAttempt = 3 + kDrawsPerSample;

// Draws one duration from `dist`, in nanoseconds, in [0, kMaxSampleNs]. Consumes exactly
// kDrawsPerSample uniform draws.
int64_t SampleNs(const LatencyDist& dist, RandomStream& rng);

// The distribution's mean, in seconds (for reports and theory checks).
double MeanSeconds(const LatencyDist& dist);

// The latency distributions (Python: rl.Constant, rl.Exponential, rl.LogNormal, rl.Uniform,
// rl.Mixture): a union of one table per distribution over LatencyDist, and the rules a table
// cannot say (low <= high; a mixture's weights match its components, which are not mixtures).
const UnionSchema<LatencyDist>& LatencyUnion();
absl::Status ValidateUniformRules(const LatencyDist& dist);
absl::Status ValidateMixtureRules(const LatencyDist& dist);

// The field table of FailureMix (Python: rl.FailureMix).
const ConfigSchema<FailureMix>& FailureMixSchema();

// The field tables of CapacityConfig, FaultPhase and FaultsConfig (Python: rl.Capacity,
// rl.Phase, rl.Faults), and the rules between their fields (a phase ends after it starts; a mix
// that must fail calls has weight; phases do not overlap).
const ConfigSchema<CapacityConfig>& CapacitySchema();
const ConfigSchema<FaultPhase>& PhaseSchema();
const ConfigSchema<FaultsConfig>& FaultsSchema();
absl::Status ValidatePhaseRules(const FaultPhase& phase);
absl::Status ValidateFaultsRules(const FaultsConfig& config);

// Checks a fault model, phases and capacity included; errors name `path` + ".field".
absl::Status ValidateFaultModel(std::string_view path, const FaultsConfig& config);

// One attempt's fate, drawn when the server starts working on it.
struct AttemptDraw {
  // What the caller will see when the answer arrives (kTimeout when `hangs`).
  Outcome outcome;
  // How long the server works on the attempt (load growth and phase multipliers included).
  int64_t service_ns = 0;
  // The server never answers: the caller waits until its own attempt timeout or deadline.
  bool hangs = false;
  // The attempt's effect happened (a charge was taken), whatever the caller sees.
  bool committed = false;
};

// A dependency's fault model, with its phases resolved by time. Thread-compatible (const after
// construction); the caller owns the random stream.
class FaultModel {
 public:
  // `config` must have passed ValidateFaultModel.
  explicit FaultModel(const FaultsConfig& config);

  // Draws the fate of an attempt whose service starts at `now_ns`, when `load` calls (this one
  // included) are in service or waiting at the server. Consumes exactly kDrawsPerAttempt uniform
  // draws, so that changing a probability changes the fate of only the attempts it must.
  AttemptDraw Draw(int64_t now_ns, int load, RandomStream& rng) const;

  // The phase in force at `now_ns`, or nullptr (phases do not overlap; the first match wins).
  const FaultPhase* PhaseAt(int64_t now_ns) const;

  // The failure probability in force at `now_ns`.
  double FailureRateAt(int64_t now_ns) const;

  const FaultsConfig& config() const { return config_; }

 private:
  FaultsConfig config_;
};

}  // namespace rlab

#endif  // RLAB_MODEL_FAULTS_H_
